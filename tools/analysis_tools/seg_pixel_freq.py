"""Count the pixels of every class over an mmseg training set.

Writes the class-frequency JSON (``count_type`` ``'pixels'``) that
``GRWCrossEntropyLoss(class_freq=...)`` and ``HeadBodyTailIoUMetric`` read.
The annotation maps are read through the dataset of the config (its data
list, ``reduce_zero_label``, label map and ``ignore_index``), without the
training pipeline.

Example::

    python tools/analysis_tools/seg_pixel_freq.py \\
        mmseg::fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py \\
        data/ade/ADEChallengeData2016/ade20k_train_pixel_freq.json \\
        --num-workers 8
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Any, List, Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdisalign.utils.config import CfgOptionsAction, load_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Per-class pixel counts of an mmseg dataset, written '
        'as a mmdisalign class-frequency JSON file')
    parser.add_argument('config', help='config file (mmseg:: prefix ok)')
    parser.add_argument('out', help='output JSON file')
    parser.add_argument(
        '--split',
        default='train',
        choices=['train', 'val', 'test'],
        help='which dataloader\'s dataset to count (default: train)')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=0,
        help='processes reading the annotation maps (default: 0)')
    parser.add_argument(
        '--allow-missing',
        action='store_true',
        help='write the file even if some class never occurs (the GRW '
        'loss will refuse it; the metric accepts it)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.data_root=/data/ade')
    return parser.parse_args(argv)


def _drop_pipelines(cfg: Any) -> None:
    """Remove the transforms of a dataset config and of wrapped ones."""
    if isinstance(cfg, dict):
        if 'pipeline' in cfg:
            cfg['pipeline'] = []
        for key in ('dataset', 'datasets'):
            if key in cfg:
                _drop_pipelines(cfg[key])
    elif isinstance(cfg, (list, tuple)):
        for item in cfg:
            _drop_pipelines(item)


def build_dataset(cfg: Config, split: str = 'train') -> Any:
    """Build the dataset of ``{split}_dataloader`` without its pipeline."""
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    key = f'{split}_dataloader'
    if key not in cfg or 'dataset' not in cfg[key]:
        raise KeyError(f'the config has no {key}.dataset')
    dataset_cfg = copy.deepcopy(cfg[key]['dataset'])
    _drop_pipelines(dataset_cfg)
    return DATASETS.build(dataset_cfg)


def head_num_classes(cfg: Config) -> Optional[int]:
    """``model.decode_head.num_classes`` of the config, if any."""
    head = cfg.get('model', {}).get('decode_head')
    if isinstance(head, (list, tuple)):
        head = head[-1] if head else None
    if isinstance(head, dict):
        return head.get('num_classes')
    return None


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    import mmdisalign.seg  # noqa: F401  (registries)
    from mmdisalign.seg import (check_classes_present, count_class_pixels,
                                save_pixel_freq)

    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    dataset = build_dataset(cfg, args.split)
    stats = count_class_pixels(dataset, num_workers=args.num_workers)
    num_head = head_num_classes(cfg)
    if num_head is not None and num_head != len(stats['counts']):
        raise ValueError(
            f'the dataset of {args.config} has {len(stats["counts"])} '
            f'classes but model.decode_head.num_classes is {num_head}')
    data_root = cfg[f'{args.split}_dataloader']['dataset'].get('data_root')
    source = f'{args.split} set of {args.config}'
    if data_root:
        source += f' (data_root {data_root})'
    if not args.allow_missing:
        check_classes_present(stats['counts'], stats['classes'], source)
    data = save_pixel_freq(args.out, stats, source=source)
    labelled = stats['total_pixels'] - stats['ignored_pixels']
    print(f'{stats["num_images"]} images, {stats["total_pixels"]} pixels '
          f'({labelled} labelled, {stats["ignored_pixels"]} ignored), '
          f'{len(stats["counts"])} classes -> {osp.abspath(args.out)}')
    return data


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
