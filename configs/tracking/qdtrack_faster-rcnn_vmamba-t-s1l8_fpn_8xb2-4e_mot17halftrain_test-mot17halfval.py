# QDTrack (mmdet 3.x) with a Faster R-CNN detector on VMamba-T[s1l8], MOT17 half-train -> half-val.
# mmdet's QDTrack recipe (4 epochs, lr step at 3, 8 GPUs x 2 images, gradient clipping 35) with the
# VMamba detection optimiser (AdamW lr 1e-4, wd 0.05) instead of SGD 0.02, ImageNet normalisation
# (RGB mean / std) for the backbone, and the detector initialised from ImageNet weights only
# (mmdet's recipe starts from a COCO-person Faster R-CNN R50; no published VMamba figure exists).
_base_ = ['mmdet::qdtrack/qdtrack_faster-rcnn_r50_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py']
custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

# ImageNet-1K classification weights (official release)
checkpoint = 'https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth'  # noqa: E501
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
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
