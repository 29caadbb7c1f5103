"""DisAlign cost on mmpretrain's ResNet-50 classifier (ImageNet-LT shape).

Models (random weights; nothing is downloaded):

- upstream / stage 1: mmpretrain's ``_base_/models/resnet50.py``
  (``ImageClassifier``, ResNet-50, global average pooling,
  ``LinearClsHead`` 2048 -> ``--num-classes``, cross-entropy);
- DisAlign / stage 2: the same with ``DisAlignLinearClsHead``
  (``DisAlignCalibration``, reference classification init) and
  ``GRWCrossEntropyLoss`` (rho 1.2) on an ImageNet-LT-like class profile
  (1280 down to 5 images per class, exponential), frozen by
  ``DisAlignFreezeHook``.

Optimizer: SGD lr 0.1, momentum 0.9, weight decay 5e-4 (ImageNet-LT
stage 2). A batch is ``--batch-size`` random uint8 images of
``--image-size`` squared with random labels, through the model's data
preprocessor (ImageNet mean / std).

The stage-2 step is also reported against a no-grad forward of the same
model and batch, its physical limit (see ``_bench_utils``).

Usage (defaults: 224 x 224, batch 8, 2 threads)::

    python benchmarks/cls_resnet50.py
    python benchmarks/cls_resnet50.py --device cuda --batch-size 64 \
        --repeats 20 --infer-repeats 50 [--amp bf16]
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench_utils as bu


def add_args(parser) -> None:
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--num-classes', type=int, default=1000)


def lt_profile(num_classes: int, most: int = 1280, fewest: int = 5) -> list:
    """Exponentially decaying per-class counts from ``most`` to ``fewest``.
    """
    if num_classes == 1:
        return [most]
    k = np.arange(num_classes) / (num_classes - 1)
    return np.round(most * (fewest / most)**k).astype(int).tolist()


def _mmpretrain_base(name: str) -> str:
    import mmpretrain
    path = os.path.join(
        os.path.dirname(mmpretrain.__file__), '.mim', 'configs', '_base_',
        'models', name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'mmpretrain base config {path} not found')
    return path


def build(args, kind: str):
    import mmpretrain.models  # noqa: F401
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import mmdisalign.cls  # noqa: F401
    cfg = Config.fromfile(_mmpretrain_base('resnet50.py')).model
    cfg.head.num_classes = args.num_classes
    cfg.data_preprocessor = dict(
        type='ClsDataPreprocessor',
        num_classes=args.num_classes,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True)
    if kind == 'disalign':
        cfg.head.type = 'DisAlignLinearClsHead'
        cfg.head.calibration = dict(
            type='DisAlignCalibration', init_mode='reference_cls')
        cfg.head.loss = dict(
            type='GRWCrossEntropyLoss',
            class_freq=lt_profile(args.num_classes),
            rho=1.2,
            num_classes=args.num_classes)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def make_batch(args, train: bool) -> dict:
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(args.seed + 1)
    n, s = args.batch_size, args.image_size
    images = torch.randint(
        0, 256, (n, 3, s, s), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, args.num_classes, (n, ), generator=g)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return dict(inputs=list(images), data_samples=samples)


def optim_cfg(args) -> dict:
    return dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))


def describe(args) -> str:
    return (f'ResNet-50 + linear head, {args.num_classes} classes; batch '
            f'{args.batch_size} x 3 x {args.image_size} x {args.image_size}')


SPEC = bu.TaskSpec(
    name='classification: mmpretrain ResNet-50, DisAlignLinearClsHead',
    add_args=add_args,
    build=build,
    make_batch=make_batch,
    optim_cfg=optim_cfg,
    describe=describe)

if __name__ == '__main__':
    bu.main(SPEC, os.path.abspath(__file__))
