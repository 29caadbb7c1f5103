"""Per-category training statistics of an LVIS (or COCO-format) file, in
mmdet's label order (``categories`` sorted by id), counted from the
annotations."""
import os
from collections import Counter, defaultdict
from typing import Any, Dict, List, Optional, Union

from mmdisalign.utils.class_freq import save_class_freq
from mmdisalign.utils.misc import listed, read_json_file

__all__ = [
    'LVIS_RARE_MAX', 'LVIS_COMMON_MAX', 'frequency_group', 'load_annotations',
    'category_stats', 'write_class_freq'
]

#: LVIS frequency groups by training image count: rare up to 10 images,
#: common up to 100, frequent above.
LVIS_RARE_MAX = 10
LVIS_COMMON_MAX = 100


def frequency_group(image_count: int,
                    rare_max: int = LVIS_RARE_MAX,
                    common_max: int = LVIS_COMMON_MAX) -> str:
    """The LVIS frequency group (``'r'``, ``'c'`` or ``'f'``) of a
    category annotated in ``image_count`` training images."""
    if image_count <= rare_max:
        return 'r'
    if image_count <= common_max:
        return 'c'
    return 'f'


def load_annotations(ann_file: Union[str, 'os.PathLike[str]']) -> dict:
    """Read an LVIS / COCO-format JSON annotation file."""
    path = os.fspath(ann_file)
    data = read_json_file(path, 'annotation file')
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a JSON object with "images", '
                         f'"annotations" and "categories", got a '
                         f'{type(data).__name__}')
    return data


def category_stats(annotations: Union[dict, str, 'os.PathLike[str]'],
                   allow_zero: bool = False,
                   count_crowd: bool = False) -> Dict[str, Any]:
    """Count images and instances per category of an annotation file.

    Args:
        annotations (dict | str | PathLike): The parsed file or its path.
        allow_zero (bool): Accept categories without any (counted)
            annotation. GRW needs every category to occur, so by default
            they raise. Defaults to False.
        count_crowd (bool): Count ``iscrowd=1`` annotations too. mmdet
            ignores them in training, so by default they are not counted
            (LVIS has none). Defaults to False.

    Returns:
        dict: With lists in label order (categories sorted by id):
        ``category_ids``, ``names``, ``image_count`` (images with at least
        one counted annotation of the category), ``instance_count``,
        ``frequency`` (the file's groups if every category has one, else
        computed from ``image_count`` with the LVIS thresholds), the totals
        ``num_images`` and ``num_annotations`` (counted), and
        ``warnings``: disagreements between the counts and the
        ``image_count`` / ``instance_count`` / ``frequency`` fields of the
        file, if it has them.
    """
    source = None
    if not isinstance(annotations, dict):
        source = os.fspath(annotations)
        annotations = load_annotations(source)
    where = f'{source}: ' if source else ''
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(annotations.get(key), list):
            raise ValueError(f'{where}expected a list under "{key}" (LVIS / '
                             f'COCO format), found '
                             f'{type(annotations.get(key)).__name__}')
    categories = annotations['categories']
    if not categories:
        raise ValueError(f'{where}the file lists no categories')

    ids: List[int] = []
    for index, cat in enumerate(categories):
        if not isinstance(cat, dict) or 'id' not in cat:
            raise ValueError(f'{where}categories[{index}] has no "id"')
        ids.append(cat['id'])
    dups = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dups:
        raise ValueError(f'{where}duplicate category ids: {listed(dups)}')
    if ids != sorted(ids):
        raise ValueError(
            f'{where}the categories are not sorted by id. mmdet numbers the '
            'labels in file order while frequency files and LVIS use the '
            'sorted-id order; sort "categories" by "id" first.')

    position = {cat_id: i for i, cat_id in enumerate(ids)}
    image_sets = [set() for _ in ids]
    instances = [0] * len(ids)
    unknown = defaultdict(list)
    orphans = defaultdict(list)
    image_ids = {
        img.get('id')
        for img in annotations['images'] if isinstance(img, dict)
    }
    num_counted = 0
    for ann in annotations['annotations']:
        cat_id = ann.get('category_id')
        if ann.get('image_id') not in image_ids:
            orphans[ann.get('image_id')].append(ann.get('id'))
        if cat_id not in position:
            unknown[cat_id].append(ann.get('id'))
            continue
        if ann.get('iscrowd', 0) and not count_crowd:
            continue
        i = position[cat_id]
        instances[i] += 1
        image_sets[i].add(ann.get('image_id'))
        num_counted += 1
    if unknown:
        details = [
            f'{cat_id} (annotations {listed(ann_ids)})'
            for cat_id, ann_ids in sorted(unknown.items(), key=str)
        ]
        raise ValueError(f'{where}annotations refer to category ids that '
                         f'are not in "categories": {listed(details)}')
    if orphans:
        details = [
            f'{image_id} (annotations {listed(ann_ids)})'
            for image_id, ann_ids in sorted(orphans.items(), key=str)
        ]
        raise ValueError(
            f'{where}annotations refer to image ids that are not in '
            f'"images": {listed(details)}. They would be counted for '
            'images that do not exist; fix or drop them.')
    image_count = [len(s) for s in image_sets]
    names = [str(cat.get('name', cat['id'])) for cat in categories]

    zero = [
        f'{cat_id} ({name})' for cat_id, name, n in zip(ids, names, instances)
        if n == 0
    ]
    if zero and not allow_zero:
        raise ValueError(
            f'{where}{len(zero)} of {len(ids)} categories have no training '
            f'annotation, so they have no frequency for GRW: '
            f'{listed(zero)}. Use the training annotation file of the '
            'dataset; pass allow_zero=True (--allow-zero) only to inspect '
            'such a file.')

    warnings = []
    for key, counted in (('image_count', image_count), ('instance_count',
                                                        instances)):
        if not all(key in cat for cat in categories):
            continue
        diff = [
            f'{cat["id"]} ({cat[key]} in the file, {n} counted)'
            for cat, n in zip(categories, counted) if cat[key] != n
        ]
        if diff:
            warnings.append(f'"{key}" of {len(diff)} categories differs from '
                            f'the annotations: {listed(diff)}')
    computed = [frequency_group(n) for n in image_count]
    if all('frequency' in cat for cat in categories):
        frequency = [cat['frequency'] for cat in categories]
        diff = [
            f'{cat["id"]} ({f} in the file, {g} from {n} images)' for cat, f,
            g, n in zip(categories, frequency, computed, image_count) if f != g
        ]
        if diff:
            warnings.append(f'"frequency" of {len(diff)} categories differs '
                            'from the LVIS thresholds applied to the counted '
                            f'image counts: {listed(diff)}')
    else:
        frequency = computed

    return dict(
        category_ids=ids,
        names=names,
        image_count=image_count,
        instance_count=instances,
        frequency=frequency,
        num_images=len(annotations['images']),
        num_annotations=num_counted,
        warnings=warnings)


def write_class_freq(ann_file: Union[str, 'os.PathLike[str]'],
                     out_file: Union[str, 'os.PathLike[str]'],
                     allow_zero: bool = False,
                     count_crowd: bool = False,
                     stats: Optional[Dict[str, Any]] = None) -> dict:
    """Write the class-frequency JSON of an LVIS / COCO training file.

    ``"counts"`` (read by the GRW loss by default) are the IMAGE counts,
    as LVIS groups categories by them; ``"instance_count"`` can be selected
    with ``class_freq=dict(file=..., key='instance_count')``;
    ``"category_ids"`` let the run check that the file fits the dataset.

    Args:
        ann_file (str | PathLike): The training annotation file.
        out_file (str | PathLike): The JSON file to write.
        allow_zero (bool): See :func:`category_stats`. Defaults to False.
        count_crowd (bool): See :func:`category_stats`. Defaults to False.
        stats (dict, optional): Precomputed :func:`category_stats` of
            ``ann_file``. Defaults to None.

    Returns:
        dict: The statistics (:func:`category_stats`).
    """
    if stats is None:
        stats = category_stats(
            ann_file, allow_zero=allow_zero, count_crowd=count_crowd)
    save_class_freq(
        out_file,
        stats['image_count'],
        classes=stats['names'],
        count_type='images',
        source=os.fspath(ann_file),
        extra={
            key: stats[key]
            for key in ('image_count', 'instance_count', 'category_ids',
                        'frequency', 'num_images', 'num_annotations')
        })
    return stats
