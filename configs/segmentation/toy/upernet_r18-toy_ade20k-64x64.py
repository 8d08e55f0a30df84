# CONTROL for the UperNet toy twins: mmseg's own ResNet-18 (ResNetV1c, from scratch like the twins,
# at the VMamba twin's widths 16/32/64/128) in the same UperNet, data and 300-iteration schedule as
# upernet_vmamba-toy_ade20k-64x64.py.  A twin far below it points at the integration, not the toy.
_base_ = ['./upernet_vmamba-toy_ade20k-64x64.py']

model = dict(
    backbone=dict(_delete_=True, type='mmseg.ResNetV1c', depth=18, stem_channels=16, base_channels=16,
                  num_stages=4, out_indices=(0, 1, 2, 3), dilations=(1, 1, 1, 1), strides=(1, 2, 2, 2),
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch',
                  contract_dilation=True, init_cfg=None))
