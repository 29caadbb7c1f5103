"""Write the class-frequency JSON of a classification training set.

The JSON (format ``mmdisalign.class_freq``) feeds ``GRWCrossEntropyLoss``
(``class_freq=...``), ``LogitAdjustCalibration`` and ``LongTailAccuracy``.
Counts are per-class training images, read from

* a "relative/path label" list file (ImageNet-LT, Places-LT,
  Fashion-MNIST-LT)::

      python tools/analysis_tools/class_freq_cls.py \
          --ann-file data/imagenet/ImageNet_LT_train.txt --num-classes 1000 \
          --out data/imagenet/imagenet_lt_class_freq.json

* or any mmpretrain dataset of a config (its ``train_dataloader`` by
  default; labels are counted as the dataset yields them)::

      python tools/analysis_tools/class_freq_cls.py --config CONFIG \
          --out class_freq.json [--split train] [--cfg-options k=v]
"""
import argparse
import os.path as osp

import numpy as np
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from mmdisalign.cls.datasets import (check_no_empty_class,
                                     dataset_class_counts, read_list_file)
from mmdisalign.cls.datasets.list_file import count_labels
from mmdisalign.utils.class_freq import save_class_freq
from mmdisalign.utils.config import CfgOptionsAction, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Per-class training image counts -> class-frequency '
        'JSON')
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--ann-file', help='"relative/path label" list file')
    src.add_argument('--config', help='an mmpretrain config file')
    parser.add_argument('--out', required=True, help='output JSON file')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=None,
        help='number of classes (default: from --classes / the dataset, '
        'else the largest label + 1)')
    parser.add_argument(
        '--classes',
        default=None,
        help='file with one class name per line (with --ann-file)')
    parser.add_argument(
        '--split',
        default='train',
        help='dataloader of the config to count: train, val or test')
    parser.add_argument(
        '--allow-empty',
        action='store_true',
        help='write the file even if a class has no image')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, "key=value"')
    return parser.parse_args(argv)


def counts_from_list(ann_file, num_classes, classes_file):
    classes = None
    if classes_file:
        with open(classes_file) as f:
            classes = [line.strip() for line in f if line.strip()]
        if num_classes is not None and num_classes != len(classes):
            raise ValueError(f'--num-classes {num_classes} but {classes_file} '
                             f'names {len(classes)} classes')
        num_classes = len(classes)
    _, labels, _ = read_list_file(ann_file, num_classes)
    if num_classes is None:
        num_classes = int(labels.max()) + 1
        print(f'num_classes not given: using largest label + 1 = '
              f'{num_classes}')
    return count_labels(labels, num_classes), classes, osp.abspath(ann_file)


def counts_from_config(config, split, num_classes, cfg_options):
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    key = f'{split}_dataloader'
    if cfg.get(key) is None or 'dataset' not in cfg[key]:
        raise KeyError(f'{config} has no {key}.dataset')
    counts, classes = dataset_class_counts(cfg[key]['dataset'], num_classes)
    return counts, classes, f'{osp.abspath(config)}:{key}'


def main(argv=None):
    args = parse_args(argv)
    if args.ann_file:
        counts, classes, source = counts_from_list(args.ann_file,
                                                   args.num_classes,
                                                   args.classes)
    else:
        counts, classes, source = counts_from_config(args.config, args.split,
                                                     args.num_classes,
                                                     args.cfg_options)
    if not args.allow_empty:
        check_no_empty_class(counts, source, classes)
    save_class_freq(
        args.out, counts, classes=classes, count_type='images', source=source)
    nonzero = counts[counts > 0]
    print(f'{len(counts)} classes, {int(counts.sum())} images, max '
          f'{int(counts.max())}, min {int(counts.min())}, imbalance '
          f'{counts.max() / max(nonzero.min(), 1):.1f} (median '
          f'{np.median(counts):.0f}) -> {args.out}')


if __name__ == '__main__':
    main()
