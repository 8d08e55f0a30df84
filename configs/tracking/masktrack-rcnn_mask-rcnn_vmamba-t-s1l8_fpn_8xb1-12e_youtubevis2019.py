# MaskTrack R-CNN (mmdet 3.x) with a Mask R-CNN detector on VMamba-T[s1l8], YouTube-VIS 2019.
# mmdet's MaskTrack R-CNN recipe (12 epochs, lr steps at 8 and 11, 8 GPUs x 1 image, 640x360) with
# the VMamba detection optimiser (AdamW lr 1e-4, wd 0.05) instead of SGD; the detector starts from
# ImageNet weights (mmdet's recipe: a COCO Mask R-CNN R50 - to do the same, point the detector's
# init_cfg at the last checkpoint of configs/detection/mask-rcnn_vmamba-t-s1l8_fpn_1x_coco.py).
# The validation split has no public annotations: results are written for the evaluation server
# (format_only), as in mmdet.  No published VMamba figure exists.
_base_ = ['mmdet::masktrack_rcnn/masktrack-rcnn_mask-rcnn_r50_fpn_8xb1-12e_youtubevis2019.py']
custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

# ImageNet-1K classification weights (official release)
checkpoint = 'https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth'  # noqa: E501
model = dict(
    detector=dict(
        backbone=dict(
            _delete_=True,
            type='VMambaBackbone',
            arch='vmamba_tiny_s1l8',
            out_indices=(0, 1, 2, 3),
            drop_path_rate=0.2,
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
        neck=dict(in_channels=[96, 192, 384, 768]),
        init_cfg=None))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=35, norm_type=2))
