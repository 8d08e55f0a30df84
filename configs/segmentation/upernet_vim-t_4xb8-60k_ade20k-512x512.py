# UperNet, vim_tiny_patch16_224 (plain Vim) backbone, ADE20K at 512x512: the Vim authors' recipe (hustvl/Vim
# seg/configs/vim/upernet): blocks 5/11/17/23 rescaled to strides 4/8/16/32 (x4, x2, x1, x0.5),
# UperNet with 192 channels, AdamW lr 2e-4, wd 0.1, layer-wise lr decay 0.92, poly decay after
# 1500 warm-up iterations, 60k iterations at batch 32 (4 GPUs x 8), sliding-window test.
# Backbone as official VisionMambaSeg with the Vim-T config: no class token (the checkpoint's is
# dropped with its position-embedding slot), the blocks' mixer outputs as features
# (use_residual_as_feature=False), no norm on the outputs.  Its residual_in_fp32=False matters only
# under mixed precision, which this config does not use.
# lr / wd: the official run (seg/scripts/ft_vim_tiny_upernet.sh: optimizer.lr=2e-4
# optimizer.weight_decay=0.1) overrides the config file's 1e-4 / 0.05.
# Published mIoU (Vim paper, single-scale): 41.0.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['vision_ssm.mmlab'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='VimBackbone',
        arch='vim_tiny_patch16_224',
        img_size=crop_size,
        out_indices=(5, 11, 17, 23),
        feature_type='mixer',
        class_token=False,
        out_norm=False,
        pyramid='multi',
        pyramid_norm='syncbn',
        drop_path_rate=0.1,  # not set by the official config: our choice
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:hustvl/Vim-tiny-midclstok/vim_t_midclstok_76p1acc.pth')),
    decode_head=dict(in_channels=[192, 192, 192, 192], channels=192, num_classes=150),
    auxiliary_head=dict(in_channels=192, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(layer_decay_rate=0.92))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=60000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=60000, val_interval=6000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=6000))
train_dataloader = dict(batch_size=8)
