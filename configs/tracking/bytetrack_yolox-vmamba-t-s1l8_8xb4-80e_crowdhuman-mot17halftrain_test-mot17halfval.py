# ByteTrack (mmdet 3.x) with a YOLOX detector on VMamba-T[s1l8] (stages 1-3, strides 8/16/32, into
# YOLOX-X's PAFPN and head), trained on CrowdHuman + MOT17 half-train, tested on MOT17 half-val.
# mmdet's ByteTrack recipe (80 epochs, Mosaic / MixUp, multi-scale batches, EMA, the last 10 epochs
# without strong augmentation, 8 GPUs x 4 images) with the VMamba detection optimiser (AdamW lr 1e-4
# at batch 32, wd 0.05) instead of SGD, ImageNet normalisation for the backbone, and ImageNet-only
# initialisation (mmdet's recipe starts from COCO YOLOX-X).  No published VMamba figure exists.
_base_ = ['mmdet::bytetrack/bytetrack_yolox_x_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py']
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
            out_indices=(1, 2, 3),
            drop_path_rate=0.2,
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
        neck=dict(in_channels=[192, 384, 768]),
        init_cfg=None))

base_lr = 1e-4
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
max_epochs = 80
num_last_epochs = 10
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=1, T_max=max_epochs - num_last_epochs,
         end=max_epochs - num_last_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='ConstantLR', by_epoch=True, factor=1, begin=max_epochs - num_last_epochs, end=max_epochs),
]
