# DisAlign stage 2: Cascade Mask R-CNN R-50-FPN on LVIS v1, cosine box
# classifiers (NormedLinear, scale fixed at 20; see the stage-1 config). The
# calibrations' confidence uses the raw (un-normalised) RoI feature.
_base_ = './cascade-mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py'

load_from = ('work_dirs/cascade-mask-rcnn_r50_fpn_cosine_8xb2-ms-180k_lvis-v1/'
             'iter_180000.pth')

model = dict(
    roi_head=dict(bbox_head=[
        dict(
            head,
            cls_predictor_cfg=dict(
                type='NormedLinear', tempearture=20, bias=False))
        for head in _base_.model.roi_head.bbox_head
    ]))
