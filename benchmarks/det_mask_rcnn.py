"""DisAlign cost on mmdet's Mask R-CNN R-50-FPN (LVIS v1 shape).

Models (random weights; nothing is downloaded), built from the shipped
configs:

- upstream / stage 1: ``configs/det/mask_rcnn/``
  ``mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py`` (mmdet's LVIS v1 Mask
  R-CNN, ``Shared2FCBBoxHead``, 1203 classes, 300 detections per image at
  score threshold 1e-4);
- DisAlign / stage 2: ``configs/det/mask_rcnn/``
  ``mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py``
  (``DisAlignShared2FCBBoxHead``, GRW rho 0.8 on an
  LVIS-like image-count profile, SGD lr 0.02, momentum 0.9, wd 1e-4),
  frozen by ``DisAlignFreezeHook``.

A batch is ``--batch-size`` random uint8 images of ``--size`` squared with
``--num-gts`` random boxes per image (random classes) and their filled-box
masks, with unit scale factors.

Inference uses score threshold 0.05 and 100 detections per image (COCO's
test settings) by default, not the LVIS configs' 1e-4 and 300: with random
weights all 1203 class scores of every proposal are about 1/1204, all pass
1e-4, and the per-class NMS over 1.2 million boxes then takes most of a
minute per image on a CPU, the same in both models. At 0.05 no random
score passes, so the mask head does not run at inference: the timed model
is backbone + RPN + box head, which makes the relative overhead of the
calibration look larger, not smaller. ``--score-thr 1e-4 --max-per-img
300`` gives the LVIS settings.

The stage-2 step is also reported against a no-grad forward of the same
model and batch, its physical limit (see ``_bench_utils``): the training
forward (``mode='loss'``: RPN, sampled RoIs, box and mask heads, losses)
under ``torch.no_grad()``.

Usage (defaults: 512 x 512, batch 1, 8 objects per image, 2 threads)::

    python benchmarks/det_mask_rcnn.py
    python benchmarks/det_mask_rcnn.py --device cuda --size 1024 \
        --batch-size 2 --repeats 20 --infer-repeats 30 [--amp bf16]
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench_utils as bu

CONFIG_DIR = os.path.join(bu._ROOT, 'configs', 'det', 'mask_rcnn')
CONFIGS = dict(
    upstream=os.path.join(CONFIG_DIR,
                          'mask-rcnn_r50_fpn_8xb2-ms-180k_lvis-v1.py'),
    disalign=os.path.join(CONFIG_DIR,
                          'mask-rcnn_r50_fpn_8xb2-ms-9k_lvis-v1_disalign.py'))


def add_args(parser) -> None:
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--num-gts', type=int, default=8)
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.05,
        help='test score threshold (the LVIS configs: 1e-4)')
    parser.add_argument(
        '--max-per-img',
        type=int,
        default=100,
        help='test detections per image (the LVIS configs: 300)')


def image_count_profile(num_classes: int) -> list:
    """Per-class image counts from 10000 down to 1 (LVIS-like)."""
    k = np.arange(num_classes) / max(1, num_classes - 1)
    return np.maximum(1, np.round(1e4 * (1e-4)**k)).astype(int).tolist()


def load_model_cfg(kind: str, args):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIGS[kind]).model
    cfg.backbone.init_cfg = None
    cfg.test_cfg.rcnn.score_thr = args.score_thr
    cfg.test_cfg.rcnn.max_per_img = args.max_per_img
    loss = cfg.roi_head.bbox_head.loss_cls
    if loss.get('type') == 'GRWCrossEntropyLoss':
        loss.class_freq = image_count_profile(loss.num_classes)
    return cfg


def build(args, kind: str):
    import mmdet.models  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdisalign.det  # noqa: F401
    register_all_modules(init_default_scope=True)
    model = MODELS.build(load_model_cfg(kind, args))
    model.init_weights()
    return model


def make_batch(args, train: bool) -> dict:
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    num_classes = 1203
    g = torch.Generator().manual_seed(args.seed + 1)
    n, s = args.batch_size, args.size
    images = torch.randint(
        0, 256, (n, 3, s, s), generator=g, dtype=torch.uint8)
    samples = []
    for _ in range(n):
        k = args.num_gts
        wh = torch.rand(k, 2, generator=g) * 0.4 * s + 0.05 * s
        xy = torch.rand(k, 2, generator=g) * (s - wh)
        boxes = torch.cat([xy, xy + wh], 1).floor()
        masks = np.zeros((k, s, s), dtype=np.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[j, y1:y2, x1:x2] = 1
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(s, s),
                ori_shape=(s, s),
                scale_factor=(1.0, 1.0),
                flip=False))
        sample.gt_instances = InstanceData(
            bboxes=boxes,
            labels=torch.randint(0, num_classes, (k, ), generator=g),
            masks=BitmapMasks(masks, s, s))
        samples.append(sample)
    return dict(inputs=list(images), data_samples=samples)


def optim_cfg(args) -> dict:
    return dict(
        optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))


def describe(args) -> str:
    return ('Mask R-CNN R-50-FPN, LVIS v1 heads (1203 classes); batch '
            f'{args.batch_size} x 3 x {args.size} x {args.size}, '
            f'{args.num_gts} objects per image; test score threshold '
            f'{args.score_thr}, {args.max_per_img} detections per image')


SPEC = bu.TaskSpec(
    name='detection: mmdet Mask R-CNN R-50-FPN, DisAlignShared2FCBBoxHead',
    add_args=add_args,
    build=build,
    make_batch=make_batch,
    optim_cfg=optim_cfg,
    describe=describe)

if __name__ == '__main__':
    bu.main(
        SPEC,
        os.path.abspath(__file__),
        defaults=dict(
            repeats=3,
            infer_repeats=3,
            modes='stage1,stage2,stage2-fast,stage2-fast-rpn'))
