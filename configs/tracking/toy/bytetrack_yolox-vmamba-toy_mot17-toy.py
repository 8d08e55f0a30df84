# TOY twin of ../bytetrack_yolox-vmamba-t-s1l8_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py:
# ByteTrack (YOLOX on VMambaBackbone 'vmamba_tiny_s1l8' stages 1-3 with tiny dims / depths, PAFPN,
# YOLOX head, ByteTracker), trained with the same Mosaic / RandomAffine / MixUp pipeline on the toy
# MOT17 half-train frames (no CrowdHuman) at 160x128, tested on toy half-val with
# MOTChallengeMetric (HOTA / CLEAR / Identity through TrackEval).
_base_ = ['../bytetrack_yolox-vmamba-t-s1l8_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py']

data_root = 'data/toy/mot/MOT17/'
img_scale = (160, 128)  # width, height
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchSyncRandomResize', random_size_range=(96, 160), size_divisor=32, interval=1)]),
    detector=dict(
        backbone=dict(dims=16, depths=(1, 1, 1, 1), drop_path_rate=0.0, init_cfg=None),
        neck=dict(in_channels=[32, 64, 128], out_channels=32, num_csp_blocks=1),
        bbox_head=dict(in_channels=32, feat_channels=32)))
# (the smoke test's ten iterations leave YOLOX's scores near their 1e-4 prior: the tracker finds no
# track, which exercises the empty-video path of the MOT evaluation)

train_pipeline = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0, bbox_clip_border=False),
    dict(type='RandomAffine', scaling_ratio_range=(0.5, 1.5), border=(-img_scale[0] // 2, -img_scale[1] // 2),
         bbox_clip_border=False),
    dict(type='MixUp', img_scale=img_scale, ratio_range=(0.8, 1.6), pad_val=114.0, bbox_clip_border=False),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=img_scale, keep_ratio=True, clip_object_border=False),
    dict(type='Pad', size_divisor=32, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='Pad', size_divisor=32, pad_val=dict(img=(114.0, 114.0, 114.0))),
            dict(type='LoadTrackAnnotations'),
        ]),
    dict(type='PackTrackInputs')
]
train_dataloader = dict(
    _delete_=True,
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiImageMixDataset',
        dataset=dict(
            type='CocoDataset',
            data_root=data_root,
            ann_file='annotations/half-train_cocoformat.json',
            data_prefix=dict(img='train'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            metainfo=dict(classes=('pedestrian', )),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# about 1.5 min on 2 CPU cores: 20 epochs of the toy half-train frames (30 iterations each) with the
# recipe's warm-up, cosine decay and last epochs without Mosaic / MixUp, scaled down
base_lr = 2e-3
optim_wrapper = dict(optimizer=dict(lr=base_lr))
max_epochs = 20
num_last_epochs = 5
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=1, T_max=max_epochs - num_last_epochs,
         end=max_epochs - num_last_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='ConstantLR', by_epoch=True, factor=1, begin=max_epochs - num_last_epochs, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_begin=max_epochs, val_interval=1)
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True, priority=49)
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=30))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
