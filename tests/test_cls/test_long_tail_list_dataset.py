"""LongTailListDataset: loading and the errors for bad list files."""
import re

import numpy as np
import pytest
from mmpretrain.registry import DATASETS
from PIL import Image

import mmdisalign.cls  # noqa: F401
from mmdisalign.cls import (LongTailListDataset, dataset_class_counts,
                            read_list_file)

CLASSES = ('cat', 'dog', 'emu')


@pytest.fixture
def root(tmp_path):
    """4 images: class 0 x2, class 1 x1, class 2 x1."""
    for rel in ('train/cat/1.png', 'train/cat/2.png', 'train/dog/1.png',
                'train/emu/1.png'):
        path = tmp_path / 'images' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    return tmp_path


def _write(root, lines, name='train.txt'):
    (root / name).write_text(''.join(line + '\n' for line in lines))
    return str(root / name)


GOOD = [
    'train/cat/1.png 0', 'train/dog/1.png 1', '', 'train/cat/2.png 0',
    'train/emu/1.png 2'
]


def _build(root, lines, **kwargs):
    ann = _write(root, lines)
    cfg = dict(
        type='LongTailListDataset',
        data_root=str(root),
        ann_file='train.txt',
        data_prefix='images',
        classes=list(CLASSES))
    cfg.update(kwargs)
    return ann, DATASETS.build(cfg)


def test_loads_list_and_counts(root):
    _, ds = _build(root, GOOD)
    assert len(ds) == 4
    assert ds.get_gt_labels().tolist() == [0, 1, 0, 2]
    assert ds.get_data_info(1)['img_path'] == str(root / 'images' /
                                                  'train/dog/1.png')
    assert ds.class_counts.tolist() == [2, 1, 1]
    assert ds.metainfo['classes'] == CLASSES
    counts, classes = dataset_class_counts(ds)
    assert counts.tolist() == [2, 1, 1] and classes == list(CLASSES)
    paths, labels, line_numbers = read_list_file(str(root / 'train.txt'))
    assert line_numbers == [1, 2, 4, 5]  # the blank line is skipped


def test_missing_image_names_file_and_line(root):
    lines = GOOD[:3] + ['train/cat/404.png 0'] + GOOD[3:]
    ann = str(root / 'train.txt')
    with pytest.raises(
            FileNotFoundError,
            match=re.escape(ann) + r", line 4: image 'train/cat/404.png' "
            r'not found.*1 of 5'):
        _build(root, lines)
    # The check can be switched off (e.g. for a remote image root).
    _, ds = _build(root, lines, check_images=False)
    assert len(ds) == 5


def test_bad_label_names_file_and_line(root):
    ann = str(root / 'train.txt')
    with pytest.raises(
            ValueError,
            match=re.escape(ann) + r", line 2: label 'one' is not an "
            'integer'):
        _build(root, ['train/cat/1.png 0', 'train/dog/1.png one'])
    with pytest.raises(
            ValueError,
            match=re.escape(ann) + r', line 3: label 3 is out of range '
            r"\[0, 3\) for 'train/emu/1.png'"):
        _build(root, GOOD[:2] + ['train/emu/1.png 3'])
    with pytest.raises(
            ValueError,
            match=re.escape(ann) + r', line 1: label -1 is out of range'):
        _build(root, ['train/emu/1.png -1'])


def test_malformed_line_names_file_and_line(root):
    ann = str(root / 'train.txt')
    with pytest.raises(
            ValueError,
            match=re.escape(ann) + r", line 2: malformed line "
            r"'train/dog/1.png'"):
        _build(root, ['train/cat/1.png 0', 'train/dog/1.png'])
    with pytest.raises(ValueError, match='holds no sample'):
        _build(root, ['', '  '])


def test_class_without_training_image_names_the_class(root):
    lines = ['train/cat/1.png 0', 'train/emu/1.png 2']
    ann = str(root / 'train.txt')
    with pytest.raises(
            ValueError,
            match=re.escape(ann) + r": 1 class\(es\) have zero training "
            r"images: 1 \('dog'\)"):
        _build(root, lines)
    # A test split may lack classes.
    _, ds = _build(root, lines, test_mode=True)
    assert ds.class_counts.tolist() == [1, 0, 1]
    # Without class names, num_classes bounds the labels.
    with pytest.raises(ValueError, match=r'zero training images: 1, 3'):
        _build(root, lines, classes=None, num_classes=4)


def test_num_classes_and_classes_must_agree(root):
    with pytest.raises(ValueError, match='num_classes=4 but 3 class names'):
        _build(root, GOOD, num_classes=4)
    _, ds = _build(root, GOOD, classes=None)
    assert ds.metainfo['classes'] == ('0', '1', '2')
    assert isinstance(ds, LongTailListDataset)


def test_empty_image_names_file_and_line(root):
    """A 0-byte image: named with its list line when the list is loaded."""
    (root / 'images' / 'train/dog/1.png').write_bytes(b'')
    with pytest.raises(
            ValueError,
            match=r"train\.txt, line 2: image 'train/dog/1\.png' under .* "
            r'is empty \(0 bytes; 1 of 4 listed images are empty\)'):
        _build(root, GOOD)


def test_undecodable_image_named_by_the_pipeline(root):
    """Without the load-time check (check_images=False), a 0-byte or a
    non-image file fails in the loading transform (cv2 / mmcv, which do not
    name it): the dataset names the list file, the sample and the image."""
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    _, ds = _build(root, GOOD, check_images=False, pipeline=pipeline)
    assert ds[0]['inputs'].shape == (3, 4, 4)
    (root / 'images' / 'train/dog/1.png').write_bytes(b'')
    with pytest.raises(
            ValueError,
            match=r"train\.txt: image '.*train/dog/1\.png' of sample 1 is "
            r'empty \(0 bytes\)'):
        ds[1]
    (root / 'images' / 'train/emu/1.png').write_text('not an image')
    with pytest.raises(
            RuntimeError,
            match=r"train\.txt: the data pipeline failed on sample 3, image "
            r"'.*train/emu/1\.png'"):
        ds[3]
