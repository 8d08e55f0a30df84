# TOY twin of ../masktrack-rcnn_mask-rcnn_vmamba-t-s1l8_fpn_8xb1-12e_youtubevis2019.py: MaskTrack
# R-CNN (Mask R-CNN on VMambaBackbone 'vmamba_tiny_s1l8' with tiny dims / depths, RoI track head,
# MaskTrackRCNNTracker) on the toy YouTube-VIS 2019 set at 160x128, 600 iterations; unlike the
# real validation split, the toy one is annotated, so YouTubeVISMetric computes its AP here.
_base_ = ['../masktrack-rcnn_mask-rcnn_vmamba-t-s1l8_fpn_8xb1-12e_youtubevis2019.py']

data_root = 'data/toy/youtube_vis_2019/'
img_scale = (160, 128)
model = dict(
    detector=dict(
        backbone=dict(dims=16, depths=(1, 1, 1, 1), drop_path_rate=0.0, init_cfg=None),
        neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
        rpn_head=dict(in_channels=32, feat_channels=32),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=32),
            bbox_head=dict(in_channels=32, fc_out_channels=64),
            mask_roi_extractor=dict(out_channels=32),
            mask_head=dict(in_channels=32, conv_out_channels=32))),
    track_head=dict(
        roi_extractor=dict(out_channels=32),
        embed_head=dict(in_channels=32, fc_out_channels=64),
        train_cfg=dict(sampler=dict(num=64))))

train_pipeline = [
    dict(type='UniformRefFrameSample', num_ref_imgs=1, frame_range=3, filter_key_img=True),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadTrackAnnotations', with_mask=True),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
        ]),
    dict(type='PackTrackInputs')
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='LoadTrackAnnotations', with_mask=True),
        ]),
    dict(type='PackTrackInputs')
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/youtube_vis_2019_train.json',
                 data_prefix=dict(img_path='train/JPEGImages'), pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/youtube_vis_2019_valid.json',
                 data_prefix=dict(img_path='valid/JPEGImages'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(format_only=False, outfile_prefix=None)
test_evaluator = val_evaluator

# about 4 min on 2 CPU cores; the toy train split has 320 frames (80 iterations an epoch)
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[480])
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=20),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
