# UperNet, vmamba_tiny_s1l8 backbone, ADE20K 160k iterations at 512x512: Swin's recipe as the VMamba authors
# used it (AdamW lr 6e-5, wd 0.01, poly decay after 1500 warm-up iterations; batch 16).
# Published mIoU single-scale / multi-scale (VMamba authors): 47.9 / 48.8.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

# ImageNet-1K classification weights (official release)
checkpoint = 'https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth'  # noqa: E501
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMambaBackbone',
        arch='vmamba_tiny_s1l8',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
