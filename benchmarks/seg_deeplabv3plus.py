"""DisAlign cost on mmseg's DeepLabV3+ R-50-D8 (ADE20K shape).

Models (random weights; nothing is downloaded), built from the shipped
configs with SyncBN replaced by BN (one process, CPU):

- upstream / stage 1: mmseg's
  ``deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py``
  (DepthwiseSeparableASPPHead + FCN auxiliary head, loss weight 0.4);
- DisAlign / stage 2: ``configs/seg/``
  ``deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py``
  (``DisAlignDepthwiseSeparableASPPHead`` with the
  reference confidence, GRW loss rho 0.2 over all pixels on an
  ADE20K-like pixel-ratio profile, auxiliary loss weight 0, SGD lr 0.01,
  momentum 0.9, wd 5e-4), frozen by ``DisAlignFreezeHook``.

A batch is ``--batch-size`` random uint8 images of ``--crop`` squared with
random per-pixel labels in blocks of 16 x 16 pixels (some pixels 255,
ignored). ``--crop`` also sets the data preprocessor's pad size.

The stage-2 step is also reported against a no-grad forward of the same
model and batch, its physical limit (see ``_bench_utils``).

Usage (defaults: 256 x 256, batch 2, 2 threads)::

    python benchmarks/seg_deeplabv3plus.py
    python benchmarks/seg_deeplabv3plus.py --device cuda --crop 512 \
        --batch-size 4 --repeats 20 --infer-repeats 50 [--amp bf16]
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench_utils as bu

STAGE2_CONFIG = os.path.join(
    bu._ROOT, 'configs', 'seg',
    'deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py')
STAGE1_CONFIG = ('deeplabv3plus/'
                 'deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py')


def add_args(parser) -> None:
    parser.add_argument('--crop', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-classes', type=int, default=150)


def pixel_profile(num_classes: int) -> list:
    """Pixel ratios falling exponentially over 3 decades (ADE20K-like)."""
    k = np.arange(num_classes) / max(1, num_classes - 1)
    ratio = 0.15 * (1e-3)**k
    return (ratio / ratio.sum()).tolist()


def _no_syncbn(cfg):
    """Replace every SyncBN norm config by BN (in place)."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for value in cfg.values():
            _no_syncbn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _no_syncbn(value)
    return cfg


def load_model_cfg(kind: str, args):
    """The model config of stage 1 (``'upstream'``) or 2 (``'disalign'``).
    """
    import mmseg
    from mmengine.config import Config
    if kind == 'disalign':
        cfg = Config.fromfile(STAGE2_CONFIG).model
    else:
        path = os.path.join(
            os.path.dirname(mmseg.__file__), '.mim', 'configs', STAGE1_CONFIG)
        cfg = Config.fromfile(path).model
    _no_syncbn(cfg)
    cfg.pretrained = None
    cfg.backbone.pop('init_cfg', None)
    cfg.data_preprocessor.size = (args.crop, args.crop)
    for head in (cfg.decode_head, cfg.auxiliary_head):
        head.num_classes = args.num_classes
    loss = cfg.decode_head.loss_decode
    if loss.get('type') == 'GRWCrossEntropyLoss':
        loss.class_freq = pixel_profile(args.num_classes)
        loss.num_classes = args.num_classes
    return cfg


def build(args, kind: str):
    import mmseg.models  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import mmdisalign.seg  # noqa: F401
    register_all_modules(init_default_scope=True)
    model = MODELS.build(load_model_cfg(kind, args))
    model.init_weights()
    return model


def make_batch(args, train: bool) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(args.seed + 1)
    n, s = args.batch_size, args.crop
    images = torch.randint(
        0, 256, (n, 3, s, s), generator=g, dtype=torch.uint8)
    blocks = torch.randint(
        0, args.num_classes, (n, 1, -(-s // 16), -(-s // 16)), generator=g)
    blocks[torch.rand(blocks.shape, generator=g) < 0.05] = 255
    labels = blocks.repeat_interleave(16, 2).repeat_interleave(16, 3)
    samples = []
    for i in range(n):
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(s, s), ori_shape=(s, s), pad_shape=(s, s)))
        sample.gt_sem_seg = PixelData(data=labels[i, :, :s, :s].clone())
        samples.append(sample)
    return dict(inputs=list(images), data_samples=samples)


def optim_cfg(args) -> dict:
    return dict(
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))


def describe(args) -> str:
    return (f'DeepLabV3+ R-50-D8 (BN), {args.num_classes} classes; batch '
            f'{args.batch_size} x 3 x {args.crop} x {args.crop}')


SPEC = bu.TaskSpec(
    name='segmentation: mmseg DeepLabV3+ R-50-D8, '
    'DisAlignDepthwiseSeparableASPPHead',
    add_args=add_args,
    build=build,
    make_batch=make_batch,
    optim_cfg=optim_cfg,
    describe=describe)

if __name__ == '__main__':
    bu.main(SPEC, os.path.abspath(__file__), defaults=dict(infer_repeats=6))
