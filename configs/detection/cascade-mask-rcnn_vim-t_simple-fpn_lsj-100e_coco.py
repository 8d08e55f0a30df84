# Cascade Mask R-CNN, vim_tiny_patch16_224 (plain Vim) backbone, COCO, large-scale jitter 1024 x 100 epochs:
# the Vim authors' ViTDet recipe (hustvl/Vim det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_t_100ep.py,
# detectron2), in mmdet terms: the last block's output (stride 16) rescaled x4 / x2 / x1 / x0.5 into a
# simple feature pyramid with LayerNorm, plus a max-pooled level; RPN with 2 convs; three cascade
# stages of 4conv1fc box heads with LayerNorm and class-agnostic regression (IoU 0.5 / 0.6 / 0.7);
# AdamW lr 1e-4, betas (0.9, 0.999), wd 0.1 (none on the position embedding), layer-wise lr decay 0.7,
# drop path 0.1, 250 warm-up iterations, lr x0.1 at 88.9% and 96.3% of training, batch 64 (8 GPUs x 8).
# Backbone as official VisionMambaDet: no class token, the 2D rotary embedding before every block
# (if_rope=True, if_rope_residual=True, pt_hw_seq_len=14), the residual stream after the last block
# (last_layer_process='add'), no norm on it.  Differences from the official run: the simple pyramid's
# 1x1 / 3x3 convs to 256 channels are mmdet's FPN (lateral + output conv, LayerNorm); the classification
# weights are the released mid-class-token Vim-T, its class token dropped on loading (the official
# detector started from an unreleased mean-pooled Vim-T pretrained with the rotary embedding).
# Published box / mask AP (Vim paper, Table 3): 45.7 / 39.2.
_base_ = ['mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py', 'mmdet::common/lsj-100e_coco-instance.py']
custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

image_size = (1024, 1024)
norm_cfg = dict(type='LN2d', requires_grad=True)
checkpoint = 'hf-hub:hustvl/Vim-tiny-midclstok/vim_t_midclstok_76p1acc.pth'


def _box_head(stds):
    return dict(
        type='Shared4Conv1FCBBoxHead', in_channels=256, conv_out_channels=256, fc_out_channels=1024,
        roi_feat_size=7, num_classes=80, norm_cfg=norm_cfg, reg_class_agnostic=True,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


model = dict(
    data_preprocessor=dict(
        pad_size_divisor=32, batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='VimBackbone',
        arch='vim_tiny_patch16_224',
        img_size=image_size,
        out_indices=(23,),
        feature_type='stream',
        class_token=False,
        rope=True,
        rope_pretrain_grid=14,
        out_norm=False,
        pyramid='simple',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[192, 192, 192, 192], out_channels=256, num_outs=5, norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=[_box_head([0.1, 0.1, 0.2, 0.2]), _box_head([0.05, 0.05, 0.1, 0.1]),
                   _box_head([0.033, 0.033, 0.067, 0.067])],
        mask_head=dict(norm_cfg=norm_cfg)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.7))
# 100 epochs = RepeatDataset x4 (the lsj base) x 25
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=25, by_epoch=True, milestones=[22, 24], gamma=0.1)
]
train_dataloader = dict(batch_size=8, num_workers=4)
auto_scale_lr = dict(enable=False, base_batch_size=64)
