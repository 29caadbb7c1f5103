"""Per-class pixel counts through mmseg datasets, and the CLI tool."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmseg.datasets import BaseSegDataset
from PIL import Image

import mmdisalign.seg  # noqa: F401
from mmdisalign.models.losses import GRWCrossEntropyLoss
from mmdisalign.seg import check_classes_present, count_class_pixels
from mmdisalign.utils.class_freq import load_class_freq, load_class_freq_meta

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('cat', 'dog', 'cow')

# Raw annotation maps (ADE-like: 0 = other); 255 is already "ignore".
MAPS = [
    np.array([[0, 1, 1, 2], [3, 3, 3, 255]], np.uint8),
    np.array([[1, 1, 1, 1], [0, 0, 2, 2]], np.uint8),
]


class ThreeAnimals(BaseSegDataset):
    METAINFO = dict(classes=CLASSES, palette=[[1, 1, 1]] * 3)


def _write_set(root, maps, split='training'):
    for index, label in enumerate(maps):
        for kind, array, ext in (('images',
                                  np.zeros(label.shape + (3, ), np.uint8),
                                  '.jpg'), ('annotations', label, '.png')):
            folder = root / kind / split
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(folder / f'{index:03d}{ext}')
    return str(root)


def _dataset(root, cls=BaseSegDataset, **kwargs):
    kwargs.setdefault('metainfo', dict(classes=CLASSES))
    return cls(
        data_root=root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        **kwargs)


def test_counts_with_reduce_zero_label(tmp_path):
    root = _write_set(tmp_path, MAPS)
    stats = count_class_pixels(_dataset(root, reduce_zero_label=True))
    # 1 -> 0, 2 -> 1, 3 -> 2; 0 and 255 ignored
    assert stats['counts'].tolist() == [2 + 4, 1 + 2, 3]
    assert stats['image_counts'].tolist() == [2, 2, 1]
    assert stats['total_pixels'] == 16
    assert stats['ignored_pixels'] == 2 + 2  # 0 -> 255, and the 255
    assert stats['num_images'] == 2
    assert stats['classes'] == list(CLASSES)
    assert stats['reduce_zero_label'] is True


def test_counts_without_reduce_zero_label(tmp_path):
    maps = [m.copy() for m in MAPS]
    maps[0][1] = [2, 2, 2, 255]  # no label 3 (out of range without reduce)
    root = _write_set(tmp_path, maps)
    stats = count_class_pixels(_dataset(root, reduce_zero_label=False))
    assert stats['counts'].tolist() == [1 + 2, 2 + 4, 1 + 3 + 2]
    assert stats['ignored_pixels'] == 1


def test_label_map_of_a_class_subset(tmp_path):
    root = _write_set(tmp_path, MAPS)
    # keep 'cow' and 'cat' (in this order): dog pixels become ignored
    dataset = _dataset(
        root,
        cls=ThreeAnimals,
        reduce_zero_label=True,
        metainfo=dict(classes=('cow', 'cat')))
    stats = count_class_pixels(dataset)
    assert stats['classes'] == ['cow', 'cat']
    assert stats['counts'].tolist() == [3, 6]
    assert stats['ignored_pixels'] == 4 + 3


def test_wrappers_count_each_dataset_once(tmp_path):
    root = _write_set(tmp_path, MAPS)
    dataset = _dataset(root, reduce_zero_label=True)
    repeated = RepeatDataset(dataset, times=3)
    assert count_class_pixels(repeated)['counts'].tolist() == [6, 3, 3]
    both = ConcatDataset([dataset, _dataset(root, reduce_zero_label=True)])
    assert count_class_pixels(both)['counts'].tolist() == [12, 6, 6]


def test_label_outside_the_classes_is_an_error(tmp_path):
    maps = [MAPS[0], np.array([[7, 1], [1, 1]], np.uint8)]
    root = _write_set(tmp_path, maps)
    with pytest.raises(
            ValueError,
            match=r'001\.png has label value\(s\) '
            r'\[6\].*outside \[0, 3\)'):
        count_class_pixels(_dataset(root, reduce_zero_label=True))


def test_missing_class_error_names_it():
    with pytest.raises(ValueError, match=r"class 1 \('dog'\)"):
        check_classes_present([3, 0, 1], CLASSES)
    check_classes_present([3, 1, 1], CLASSES)


def _config(tmp_path, root, num_classes=3):
    cfg = Config(
        dict(
            default_scope='mmseg',
            model=dict(decode_head=dict(num_classes=num_classes)),
            train_dataloader=dict(
                dataset=dict(
                    type='BaseSegDataset',
                    data_root=root,
                    metainfo=dict(classes=CLASSES),
                    reduce_zero_label=True,
                    data_prefix=dict(
                        img_path='images/training',
                        seg_map_path='annotations/training'),
                    pipeline=[dict(type='RandomCrop', crop_size=(1, 1))]))))
    path = tmp_path / 'cfg.py'
    cfg.dump(str(path))
    return str(path)


def test_tool_writes_the_frequency_file(tmp_path, load_tool):
    tool = load_tool('analysis_tools/seg_pixel_freq')
    root = _write_set(tmp_path / 'data', MAPS)
    out = tmp_path / 'freq.json'
    tool.main([_config(tmp_path, root), str(out)])
    meta = load_class_freq_meta(str(out))
    assert meta['count_type'] == 'pixels'
    assert meta['counts'] == [6, 3, 3]
    assert meta['classes'] == list(CLASSES)
    assert meta['total_pixels'] == 16 and meta['ignored_pixels'] == 4
    assert meta['image_counts'] == [2, 2, 1]
    assert meta['reduce_zero_label'] is True
    # the file feeds the GRW loss directly
    loss = GRWCrossEntropyLoss(str(out), rho=1.0, num_classes=3)
    np.testing.assert_allclose(
        loss.class_weight.numpy(),
        3 * np.array([1 / 6, 1 / 3, 1 / 3]) / (5 / 6),
        rtol=1e-6)


def test_tool_class_that_never_occurs(tmp_path, load_tool):
    tool = load_tool('analysis_tools/seg_pixel_freq')
    maps = [np.array([[0, 1], [1, 3]], np.uint8)]  # no 'dog' (label 2)
    root = _write_set(tmp_path / 'data', maps)
    out = tmp_path / 'freq.json'
    with pytest.raises(ValueError, match=r"never occur .*class 1 \('dog'\)"):
        tool.main([_config(tmp_path, root), str(out)])
    assert not out.exists()
    tool.main([_config(tmp_path, root), str(out), '--allow-missing'])
    assert json.loads(out.read_text())['counts'] == [2, 0, 1]
    # the GRW loss refuses such a file, naming the class
    with pytest.raises(ValueError, match=r"dog.*0 training"):
        GRWCrossEntropyLoss(str(out), rho=0.2)
    assert load_class_freq(str(out), allow_zero=True).tolist() == [2, 0, 1]


def test_tool_checks_the_decode_head_classes(tmp_path, load_tool):
    tool = load_tool('analysis_tools/seg_pixel_freq')
    root = _write_set(tmp_path / 'data', MAPS)
    with pytest.raises(
            ValueError,
            match='3 classes but model.decode_head'
            '.num_classes is 4'):
        tool.main([_config(tmp_path, root, 4), str(tmp_path / 'f.json')])
