"""Build Fashion-MNIST-LT (long-tailed training list, balanced test list).

Reads the Fashion-MNIST IDX files (by default those of the Debian package
``dataset-fashion-mnist`` in /usr/share/datasets/fashion-mnist), keeps
``n_i = n_max * (1/ratio)**(i/(K-1))`` training images of class i (seeded),
and writes PNG images plus list files in the ImageNet-LT format
("relative/path label"), the class names and the class-frequency JSON.

Example::

    python tools/dataset_converters/fashion_mnist_lt.py data/fashion_mnist_lt
    python tools/dataset_converters/fashion_mnist_lt.py out --ratio 50 \
        --seed 1 --src-dir /path/to/idx/files
"""
import argparse
import os.path as osp
import sys
import time

sys.path.append(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/
from disalign_demo.fashion_mnist_lt import (DEFAULT_FASHION_MNIST_DIR,
                                            IDX_FILES, build_fashion_mnist_lt)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Build Fashion-MNIST-LT in the ImageNet-LT list format')
    parser.add_argument('out_dir', help='output directory')
    parser.add_argument(
        '--ratio',
        type=float,
        default=100,
        help='imbalance ratio n_max / n_min (default: 100)')
    parser.add_argument(
        '--seed', type=int, default=0, help='sampling seed (default: 0)')
    parser.add_argument(
        '--max-per-class',
        type=int,
        default=None,
        help='n_max, training images of class 0 (default: all available, '
        '6000 for Fashion-MNIST, minus --val-per-class)')
    parser.add_argument(
        '--val-per-class',
        type=int,
        default=0,
        help='also write a balanced validation list with this many unused '
        'training images per class (default: 0, none)')
    parser.add_argument(
        '--test-per-class',
        type=int,
        default=None,
        help='keep only this many test images per class (default: all)')
    parser.add_argument(
        '--src-dir',
        default=DEFAULT_FASHION_MNIST_DIR,
        help='directory holding the four IDX files '
        f'(default: {DEFAULT_FASHION_MNIST_DIR})')
    for key, name in IDX_FILES.items():
        parser.add_argument(
            '--' + key.replace('_', '-'),
            default=None,
            help=f'path of one IDX file (default: <src-dir>/{name})')
    return parser.parse_args()


def main():
    args = parse_args()
    t0 = time.time()
    try:
        meta = build_fashion_mnist_lt(
            args.out_dir,
            ratio=args.ratio,
            seed=args.seed,
            max_per_class=args.max_per_class,
            val_per_class=args.val_per_class,
            test_per_class=args.test_per_class,
            src_dir=args.src_dir,
            paths={k: getattr(args, k)
                   for k in IDX_FILES})
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        raise SystemExit(f'fashion_mnist_lt.py: error: {e}') from None
    print(f'Fashion-MNIST-LT written to {args.out_dir} in '
          f'{time.time() - t0:.1f} s')
    counts = meta['train_counts']
    print(f'  training counts per class: {counts} (total {sum(counts)}; '
          f'real ratio {counts[0] / counts[-1]:g})')
    print(f'  validation images: {meta["num_val"]}, test images: '
          f'{meta["num_test"]}')


if __name__ == '__main__':
    main()
