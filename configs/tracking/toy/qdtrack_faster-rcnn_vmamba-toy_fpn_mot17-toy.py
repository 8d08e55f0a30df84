# TOY twin of ../qdtrack_faster-rcnn_vmamba-t-s1l8_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py:
# QDTrack (Faster R-CNN on VMambaBackbone 'vmamba_tiny_s1l8' with tiny dims / depths, quasi-dense
# embedding head, QuasiDenseTracker), the toy MOT17 set (half-train -> half-val), 160x128 frames,
# a couple of epochs; MOTChallengeMetric (HOTA / CLEAR / Identity through TrackEval) and
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
        train_cfg=dict(sampler=dict(num=64))),
    # a toy detector is far from confident after a few iterations: start tracks earlier
    tracker=dict(init_score_thr=0.3, obj_score_thr=0.1))

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
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_epochs = 2
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[max_epochs - 1])
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=1), checkpoint=dict(type='CheckpointHook', interval=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
