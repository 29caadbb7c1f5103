"""Extract the frozen stage-1 features of a classification training set.

Runs the frozen network of a stage-2 config (stage-1 weights from its
``load_from`` or ``--checkpoint``) over the training set once, or
``--passes`` times through the training augmentation (``--augment``), and
stores pooled features, stage-1 logits and labels as memory-mapped
``.npy`` files (see :mod:`mmdisalign.cls.feature_cache`). Then train stage
2 on them with ``tools/train_cached.py``::

    python tools/cache_features.py CONFIG --out work_dirs/cache
    python tools/train_cached.py CONFIG --cache work_dirs/cache
    python tools/test.py CONFIG work_dirs/<config>_cached/epoch_10.pth
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

try:
    import mmdisalign  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmdisalign  # noqa: F401


def add_cache_args(parser: argparse.ArgumentParser) -> None:
    """Options of the extraction (shared with tools/train_cached.py)."""
    parser.add_argument(
        '--checkpoint',
        help='stage-1 checkpoint (default: the config\'s load_from)')
    parser.add_argument(
        '--passes',
        type=int,
        default=1,
        help='passes over the training set (needs --augment when > 1)')
    parser.add_argument(
        '--augment',
        action='store_true',
        help='read the training set through the training pipeline '
        '(default: the test pipeline)')
    parser.add_argument(
        '--dtype',
        choices=['float32', 'float16'],
        default='float32',
        help='storage type of features and logits')
    parser.add_argument(
        '--batch-size',
        type=int,
        help='extraction batch size (default: the training one)')
    parser.add_argument(
        '--num-workers',
        type=int,
        help='data workers (default: the training loader\'s)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument(
        '--seed', type=int, help='overrides the config\'s randomness.seed')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value')


def load_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='stage-2 config')
    parser.add_argument('--out', required=True, help='cache directory')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing cache')
    add_cache_args(parser)
    args = parser.parse_args(argv)
    from mmdisalign.cls.cached_stage2 import cache_features
    meta = cache_features(
        load_config(args),
        args.out,
        checkpoint=args.checkpoint,
        passes=args.passes,
        augment=args.augment,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        seed=args.seed,
        overwrite=args.overwrite,
        log_every=50)
    print(f'cached {meta["passes"]} pass(es) x {meta["num_samples"]} '
          f'samples ({meta["feat_dim"]}-d features, {meta["num_classes"]} '
          f'classes, {meta["dtype"]}) in {args.out} in '
          f'{meta["seconds"]:.1f} s')
    return meta


if __name__ == '__main__':
    main()
