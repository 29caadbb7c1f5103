# mmdet's RetinaNet R-50-FPN (sigmoid focal-loss classifier, no background
# column) with the test settings of mmdet's LVIS recipe: 0.0001 score
# threshold, up to 300 detections per image. The configs set the number of
# classes of the LVIS version they train on.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(test_cfg=dict(score_thr=0.0001, max_per_img=300))
