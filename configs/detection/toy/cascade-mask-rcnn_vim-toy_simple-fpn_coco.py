# TOY twin of ../cascade-mask-rcnn_vim-t_simple-fpn_lsj-100e_coco.py (Cascade Mask R-CNN on VimBackbone
# 'vim_tiny_patch16_224' with a tiny width / depth and its simple pyramid; large-scale jitter at 128x128;
# CocoMetric bbox + segm).
_base_ = ['../cascade-mask-rcnn_vim-t_simple-fpn_lsj-100e_coco.py']

data_root = 'data/toy/coco/'
metainfo = dict(classes=('square', 'circle', 'triangle'), palette=[(220, 20, 60), (0, 128, 0), (0, 0, 192)])
image_size = (128, 128)
norm_cfg = dict(type='LN2d', requires_grad=True)


def _toy_box_head(stds):  # lists are not merged with the base's: each head in full
    return dict(
        type='Shared4Conv1FCBBoxHead', in_channels=32, conv_out_channels=32, fc_out_channels=64, roi_feat_size=7,
        num_classes=3, norm_cfg=norm_cfg, reg_class_agnostic=True,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


def _toy_stage_train_cfg(iou):  # 64 sampled RoIs per image and stage (the recipe: 512)
    return dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou, match_low_quality=False,
                      ignore_iof_thr=-1),
        sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
        mask_size=28, pos_weight=-1, debug=False)


model = dict(
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(img_size=image_size, embed_dim=32, depth=2, out_indices=(1,), drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[32, 32, 32, 32], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=[_toy_box_head([0.1, 0.1, 0.2, 0.2]), _toy_box_head([0.05, 0.05, 0.1, 0.1]),
                   _toy_box_head([0.033, 0.033, 0.067, 0.067])],
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32, num_classes=3)),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)), rcnn=[_toy_stage_train_cfg(iou) for iou in (0.5, 0.6, 0.7)]),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(score_thr=0.0, max_per_img=20)))  # toy: any score

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CocoDataset', data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train2017.json', data_prefix=dict(img='train2017/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=8), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# the learning schedule: 6 epochs of 50 iterations (batch 4, about 2-3 minutes on 2 CPU cores)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=2e-3))
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=15),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[max_epochs - 1], gamma=0.1)
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=25),
                     checkpoint=dict(type='CheckpointHook', interval=max_epochs))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
