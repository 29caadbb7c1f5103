"""Build the toy long-tailed LVIS-format instance-segmentation set.

Real Fashion-MNIST objects (Debian package ``dataset-fashion-mnist``) pasted
onto 128x128 noise canvases, with exact RLE masks and tight boxes; training
scenes from the training split (long-tailed), validation scenes from t10k
(balanced). See ``tools/disalign_demo/fmnist_lvis.py``. Example::

    python tools/dataset_converters/fmnist_lvis_scenes.py data/fmnist_lvis
    python tools/analysis_tools/lvis_class_freq.py \\
        data/fmnist_lvis/annotations/lvis_fmnist_train.json
"""
import argparse
import os.path as osp
import sys

sys.path.append(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/
from disalign_demo.fmnist_lvis import build_fmnist_lvis


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Long-tailed LVIS-format scenes of Fashion-MNIST objects')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--fmnist-dir',
        default='/usr/share/datasets/fashion-mnist',
        help='folder of the gzipped Fashion-MNIST IDX files')
    parser.add_argument(
        '--n-max', type=int, default=200, help='training instances of class 0')
    parser.add_argument(
        '--imbalance-ratio',
        type=float,
        default=50.,
        help='instances of class 0 / instances of class 9')
    parser.add_argument('--val-per-class', type=int, default=10)
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument(
        '--objects-per-image',
        type=int,
        nargs=2,
        default=(1, 3),
        metavar=('MIN', 'MAX'))
    parser.add_argument(
        '--object-size',
        type=int,
        nargs=2,
        default=(28, 56),
        metavar=('MIN', 'MAX'))
    parser.add_argument(
        '--threshold',
        type=int,
        default=40,
        help='mask threshold on the object intensity')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    result = build_fmnist_lvis(
        args.out_dir,
        fmnist_dir=args.fmnist_dir,
        n_max=args.n_max,
        imbalance_ratio=args.imbalance_ratio,
        val_per_class=args.val_per_class,
        img_size=args.img_size,
        objects_per_image=tuple(args.objects_per_image),
        object_size=tuple(args.object_size),
        threshold=args.threshold,
        seed=args.seed)
    stats = result['stats']
    print(f'train: {result["train"]} ({stats["num_images"]} images, '
          f'{stats["num_annotations"]} instances)')
    print(f'val:   {result["val"]}')
    for name, images, instances, freq in zip(stats['names'],
                                             stats['image_count'],
                                             stats['instance_count'],
                                             stats['frequency']):
        print(f'  {name:12s} {freq}  {images:4d} images  {instances:4d} '
              'instances')
    return 0


if __name__ == '__main__':
    sys.exit(main())
