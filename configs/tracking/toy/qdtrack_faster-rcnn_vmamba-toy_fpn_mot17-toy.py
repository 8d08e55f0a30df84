# TOY twin of ../qdtrack_faster-rcnn_vmamba-t-s1l8_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py:
# QDTrack (Faster R-CNN on VMambaBackbone 'vmamba_tiny_s1l8' with tiny dims / depths, quasi-dense
# embedding head, QuasiDenseTracker), the toy MOT17 set (half-train -> half-val), 160x128 frames,
# 500 iterations; MOTChallengeMetric (HOTA / CLEAR / Identity through TrackEval) and
# CocoVideoMetric.
_base_ = ['../qdtrack_faster-rcnn_vmamba-t-s1l8_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py']

data_root = 'data/toy/mot/MOT17/'
img_scale = (160, 128)
model = dict(
    detector=dict(
        backbone=dict(dims=16, depths=(1, 1, 1, 1), drop_path_rate=0.0, init_cfg=None),
        neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
        rpn_head=dict(in_channels=32, feat_channels=32),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=32),
            bbox_head=dict(in_channels=32, fc_out_channels=64)),
        train_cfg=dict(rpn=dict(sampler=dict(num=64)), rcnn=dict(sampler=dict(num=64))),
        test_cfg=dict(rcnn=dict(max_per_img=10))),
    track_head=dict(
        roi_extractor=dict(out_channels=32),
        embed_head=dict(num_convs=1, in_channels=32, conv_out_channels=32, fc_out_channels=64,
                        embed_channels=32, norm_cfg=dict(type='GN', num_groups=8)),
        train_cfg=dict(sampler=dict(num=64))))  # the tracker keeps the recipe's score thresholds

train_pipeline = [
    dict(type='UniformRefFrameSample', num_ref_imgs=1, frame_range=3, filter_key_img=True),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadTrackAnnotations'),
            dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.2), keep_ratio=True,
                 clip_object_border=False),
            dict(type='PhotoMetricDistortion')
        ]),
    dict(
        type='TransformBroadcaster',
        share_random_params=False,
        transforms=[dict(type='RandomCrop', crop_size=img_scale, bbox_clip_border=False)]),
    dict(type='TransformBroadcaster', share_random_params=True, transforms=[dict(type='RandomFlip', prob=0.5)]),
    dict(type='PackTrackInputs')
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='LoadTrackAnnotations')
        ]),
    dict(type='PackTrackInputs')
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# about 3.5 min on 2 CPU cores; the toy MOT half-train set has 120 frames (30 iterations an epoch)
max_iters = 500
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[400])
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=20),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
