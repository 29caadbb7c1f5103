# mmdet's Mask R-CNN R-50-FPN with the test settings of mmdet's LVIS recipe
# (mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py): 0.0001 score
# threshold, up to 300 detections per image. The box head is mmdet's
# Shared2FCBBoxHead; the configs set the number of classes of the LVIS
# version they train on.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))
