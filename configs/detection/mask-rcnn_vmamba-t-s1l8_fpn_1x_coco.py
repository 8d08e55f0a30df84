# Mask R-CNN + FPN, vmamba_tiny_s1l8 backbone, COCO 1x: Swin's recipe as the VMamba authors used it:
# AdamW lr 1e-4, wd 0.05, 12 epochs, lr steps at 8 and 11;
# batch 16 (8 GPUs x 2).  Published box / mask AP (VMamba authors): 47.3 / 42.7.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']
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
    neck=dict(in_channels=[96, 192, 384, 768]))
