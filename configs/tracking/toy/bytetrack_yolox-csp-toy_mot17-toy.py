# CONTROL for the ByteTrack toy twin: mmdet's own CSPDarknet (YOLOX's backbone, from scratch like the
# twin; deepen 0.33 and widen 0.125 give stages 3-5 the twin's widths 32/64/128) in the same ByteTrack,
# data and schedule as bytetrack_yolox-vmamba-toy_mot17-toy.py.  A twin far below it points at the
# integration.
_base_ = ['./bytetrack_yolox-vmamba-toy_mot17-toy.py']

model = dict(
    detector=dict(
        backbone=dict(_delete_=True, type='mmdet.CSPDarknet', deepen_factor=0.33, widen_factor=0.125,
                      out_indices=(2, 3, 4), use_depthwise=False, spp_kernal_sizes=(5, 9, 13),
                      norm_cfg=dict(type='BN', momentum=0.03, eps=0.001), act_cfg=dict(type='Swish'),
                      init_cfg=None)))
