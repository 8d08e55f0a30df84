# CONTROL for the MaskTrack R-CNN toy twin: mmdet's own ResNet-18 (from scratch like the twin, at the
# VMamba twin's widths 16/32/64/128) in the same MaskTrack R-CNN, data and schedule as
# masktrack-rcnn_vmamba-toy_fpn_youtubevis-toy.py.  A twin far below it points at the integration.
_base_ = ['./masktrack-rcnn_vmamba-toy_fpn_youtubevis-toy.py']

model = dict(
    detector=dict(
        backbone=dict(_delete_=True, type='mmdet.ResNet', depth=18, base_channels=16, num_stages=4,
                      out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                      norm_eval=False, style='pytorch', init_cfg=None)))
