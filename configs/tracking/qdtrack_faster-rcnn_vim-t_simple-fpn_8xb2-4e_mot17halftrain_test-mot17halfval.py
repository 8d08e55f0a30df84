# QDTrack (mmdet 3.x) with a Faster R-CNN detector on Vim-T, MOT17 half-train -> half-val: the recipe of
# ./qdtrack_faster-rcnn_vmamba-t-s1l8_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py (mmdet's QDTrack
# schedule with AdamW lr 1e-4, wd 0.05, ImageNet weights only) with the plain Vim backbone set up as in
# the Vim detector (../detection/cascade-mask-rcnn_vim-t_simple-fpn_lsj-100e_coco.py, official
# VisionMambaDet: no class token, rotary embedding, no output norm): its last block (stride 16)
# rescaled x4 / x2 / x1 / x0.5 into ViTDet's simple feature pyramid, then the FPN with LayerNorm (as in
# the Vim detector; without it the plain backbone's unnormalised stream trains markedly worse).
# No published Vim tracking figure exists.
_base_ = ['./qdtrack_faster-rcnn_vmamba-t-s1l8_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py']

# ImageNet-1K classification weights (official release)
checkpoint = 'hf-hub:hustvl/Vim-tiny-midclstok/vim_t_midclstok_76p1acc.pth'
model = dict(
    detector=dict(
        backbone=dict(
            _delete_=True,
            type='VimBackbone',
            arch='vim_tiny_patch16_224',
            img_size=(1088, 1088),
            out_indices=(23,),
            feature_type='stream',
            class_token=False,
            rope=True,
            out_norm=False,
            pyramid='simple',
            drop_path_rate=0.1,
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
        neck=dict(in_channels=[192, 192, 192, 192], norm_cfg=dict(type='LN2d', requires_grad=True))))
