# UperNet, vim_small_patch16_224 (plain Vim) backbone, ADE20K at 512x512: the Vim-T recipe with the
# small backbone and 384-channel heads (hustvl/Vim seg/configs/vim/upernet), and the official run's
# optimizer (seg/scripts/ft_vim_small_upernet.sh): AdamW lr 1e-4, wd 0.05, layer-wise lr decay 0.95.
# The same script makes the residual stream after each block the feature
# (use_residual_as_feature=True, last_layer_process='add'): feature_type='stream'; its config turns the
# stream by a 2D rotary embedding before every block (if_rope=True, if_rope_residual=True,
# pt_hw_seq_len=14): rope=True.  The checkpoint's class token is dropped from its middle slot (the
# official code, built with if_cls_token=True, drops slot 0 of the mid-class-token pos_embed instead).
# Published mIoU (Vim paper, single-scale): 44.9.
_base_ = ['./upernet_vim-t_4xb8-60k_ade20k-512x512.py']

model = dict(
    backbone=dict(
        arch='vim_small_patch16_224',
        feature_type='stream',
        rope=True,
        rope_pretrain_grid=14,
        init_cfg=dict(type='Pretrained', checkpoint='hf-hub:hustvl/Vim-small-midclstok/vim_s_midclstok_80p5acc.pth')),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=384),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.95))
