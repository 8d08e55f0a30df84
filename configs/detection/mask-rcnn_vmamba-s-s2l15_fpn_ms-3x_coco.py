# Mask R-CNN + FPN, vmamba_small_s2l15 backbone, COCO ms-3x: Swin's recipe as the VMamba authors used it:
# AdamW lr 1e-4, wd 0.05, 36 epochs, lr steps at 27 and 33, multi-scale (+crop) training;
# batch 16 (8 GPUs x 2).  Published box / mask AP (VMamba authors): 49.9 / 44.2.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py']
custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

# ImageNet-1K classification weights (official release)
checkpoint = 'https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth'  # noqa: E501
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMambaBackbone',
        arch='vmamba_small_s2l15',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))
