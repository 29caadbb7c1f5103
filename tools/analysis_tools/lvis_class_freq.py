"""Write the per-category training frequencies of an LVIS / COCO file.

Example::

    python tools/analysis_tools/lvis_class_freq.py \\
        data/lvis_v1/annotations/lvis_v1_train.json
    # -> data/lvis_v1/annotations/lvis_v1_train_class_freq.json

The output (mmdisalign's class-frequency JSON) holds, in label order
(categories sorted by id): ``"counts"`` = per-category IMAGE counts (what
the DisAlign detection configs use), ``"image_count"`` (the same),
``"instance_count"``, ``"category_ids"``, ``"frequency"`` (r / c / f) and
the class names. Works for LVIS v0.5, v1 and any COCO-format file.
"""
import argparse
import os.path as osp
import sys

from mmdisalign.det.lvis_stats import category_stats, write_class_freq


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Per-category image and instance counts of an LVIS / '
        'COCO-format training annotation file, for the GRW loss.')
    parser.add_argument('ann_file', help='training annotation JSON file')
    parser.add_argument(
        '-o',
        '--out',
        help='output JSON (default: <ann_file without .json>_class_freq.json)')
    parser.add_argument(
        '--allow-zero',
        action='store_true',
        help='write the file even if some categories have no annotation '
        '(the GRW loss refuses such a file)')
    parser.add_argument(
        '--count-crowd',
        action='store_true',
        help='also count iscrowd=1 annotations (mmdet ignores them)')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='fail if the image_count / instance_count / frequency fields of '
        'the file disagree with the annotations')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out
    if out is None:
        stem = args.ann_file[:-5] if args.ann_file.endswith(
            '.json') else args.ann_file
        out = stem + '_class_freq.json'
    if osp.abspath(out) == osp.abspath(args.ann_file):
        raise ValueError(f'refusing to overwrite the annotation file {out}')
    stats = category_stats(
        args.ann_file,
        allow_zero=args.allow_zero,
        count_crowd=args.count_crowd)
    for warning in stats['warnings']:
        print(f'WARNING: {args.ann_file}: {warning}', file=sys.stderr)
    if stats['warnings'] and args.strict:
        print('--strict: nothing written', file=sys.stderr)
        return 1
    write_class_freq(args.ann_file, out, stats=stats)
    groups = {g: stats['frequency'].count(g) for g in 'rcf'}
    print(f'{out}: {len(stats["category_ids"])} categories '
          f'(rare {groups["r"]}, common {groups["c"]}, frequent '
          f'{groups["f"]}), {stats["num_annotations"]} instances in '
          f'{stats["num_images"]} images; "counts" = image counts, '
          f'min {min(stats["image_count"])}, max '
          f'{max(stats["image_count"])}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
