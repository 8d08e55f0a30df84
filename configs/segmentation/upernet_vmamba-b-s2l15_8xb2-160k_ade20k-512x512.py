# UperNet, vmamba_base_s2l15 backbone, ADE20K 160k iterations at 512x512: Swin's recipe as the VMamba authors
# used it (AdamW lr 6e-5, wd 0.01, poly decay after 1500 warm-up iterations; batch 16).
# Published mIoU single-scale / multi-scale (VMamba authors): 51.0 / 51.6.
_base_ = ['mmseg::swin/swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

# ImageNet-1K classification weights (official release)
checkpoint = 'https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_base_0229_ckpt_epoch_237.pth'  # noqa: E501
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMambaBackbone',
        arch='vmamba_base_s2l15',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[128, 256, 512, 1024], num_classes=150),
    auxiliary_head=dict(in_channels=512, num_classes=150))
