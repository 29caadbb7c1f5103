"""INaturalist2018: JSON annotations, checks, and the statistics tool."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmdisalign.cls.datasets import INaturalist2018, dataset_class_counts
from mmdisalign.utils.class_freq import load_class_freq, load_class_freq_meta

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# category 0: 3 images, 1: 1 image, 2: 2 images
LABELS = [0, 2, 0, 1, 0, 2]


def _ann(labels=LABELS):
    return dict(
        images=[
            dict(id=100 + i, file_name=f'train_val2018/c{y}/{i}.jpg')
            for i, y in enumerate(labels)
        ],
        annotations=[
            dict(id=i, image_id=100 + i, category_id=y)
            for i, y in enumerate(labels)
        ],
        categories=[
            dict(id=2, name='Zeta'),
            dict(id=0, name='Alpha'),
            dict(id=1, name='Beta')
        ])


def _write(root, ann, name='train2018.json'):
    for img in ann['images']:
        path = osp.join(root, img['file_name'])
        if not osp.exists(path):
            import os
            os.makedirs(osp.dirname(path), exist_ok=True)
            Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(
                path, format='PNG')
    with open(osp.join(root, name), 'w') as f:
        json.dump(ann, f)
    return name


def _build(root, ann_file='train2018.json', **kwargs):
    return INaturalist2018(
        ann_file=ann_file, data_root=str(root), pipeline=[], **kwargs)


def test_loads_labels_paths_and_classes(tmp_path):
    _write(tmp_path, _ann())
    ds = _build(tmp_path)
    assert len(ds) == 6
    assert ds.get_gt_labels().tolist() == LABELS
    assert ds.metainfo['classes'] == ('Alpha', 'Beta', 'Zeta')
    assert ds.class_counts.tolist() == [3, 1, 2]
    info = ds.get_data_info(1)
    assert info['img_path'] == osp.join(
        str(tmp_path), 'train_val2018/c2/1.jpg')
    counts, classes = dataset_class_counts(ds)
    assert counts.tolist() == [3, 1, 2]
    assert classes == ['Alpha', 'Beta', 'Zeta']


def test_pipeline_reads_image(tmp_path):
    _write(tmp_path, _ann())
    ds = _build(tmp_path)
    ds.pipeline = ds.pipeline.__class__([dict(type='LoadImageFromFile')])
    out = ds[3]
    assert out['img'].shape == (4, 4, 3) and int(out['img'][0, 0, 0]) == 7
    assert out['gt_label'] == 1


def test_missing_image(tmp_path):
    _write(tmp_path, _ann())
    import os
    os.remove(tmp_path / 'train_val2018/c1/3.jpg')
    with pytest.raises(
            FileNotFoundError,
            match=r'train2018.json: images\[3\] \(id 103\).*'
            r'c1/3.jpg'):
        _build(tmp_path)
    assert len(_build(tmp_path, check_images=False)) == 6


def test_category_out_of_range(tmp_path):
    ann = _ann()
    ann['annotations'][4]['category_id'] = 3
    _write(tmp_path, ann)
    with pytest.raises(
            ValueError,
            match=r'annotations\[4\] \(image_id 104\) has '
            r'category_id 3, out of range \[0, 3\)'):
        _build(tmp_path)


def test_image_without_annotation(tmp_path):
    ann = _ann()
    del ann['annotations'][2]
    _write(tmp_path, ann)
    with pytest.raises(
            ValueError, match=r'images\[2\] \(id 102.*has no '
            'annotation'):
        _build(tmp_path)


def test_missing_key_and_bad_category_ids(tmp_path):
    ann = _ann()
    del ann['images'][1]['file_name']
    _write(tmp_path, _ann())
    (tmp_path / 'bad.json').write_text(json.dumps(ann))
    with pytest.raises(
            ValueError, match=r'bad.json: images\[1\] has no '
            '"file_name"'):
        _build(tmp_path, 'bad.json')
    ann = _ann()
    ann['categories'][0]['id'] = 5
    (tmp_path / 'bad.json').write_text(json.dumps(ann))
    with pytest.raises(ValueError, match=r'category ids must be 0..2.*\[5\]'):
        _build(tmp_path, 'bad.json')


def test_class_with_zero_training_images(tmp_path):
    labels = [0, 2, 0, 0, 2]  # no image of class 1 ('Beta')
    _write(tmp_path, _ann(labels))
    with pytest.raises(ValueError, match='Beta'):
        _build(tmp_path)
    # a validation split may lack classes
    ds = _build(tmp_path, test_mode=True)
    assert ds.class_counts.tolist() == [3, 0, 2]


def test_class_freq_tool_from_config(tmp_path, monkeypatch, load_tool):
    _write(tmp_path, _ann())
    cfg = Config(
        dict(
            custom_imports=dict(imports=['mmdisalign.cls']),
            train_dataloader=dict(
                dataset=dict(
                    type='INaturalist2018',
                    data_root=str(tmp_path),
                    ann_file='train2018.json',
                    pipeline=[dict(type='LoadImageFromFile')]))))
    cfg_path = str(tmp_path / 'inat_cfg.py')
    cfg.dump(cfg_path)
    out = str(tmp_path / 'freq.json')
    tool = load_tool('analysis_tools/class_freq_cls')
    monkeypatch.setattr(
        sys, 'argv', ['class_freq_cls.py', '--config', cfg_path, '--out', out])
    tool.main()
    assert load_class_freq(out).tolist() == [3.0, 1.0, 2.0]
    meta = load_class_freq_meta(out)
    assert meta['classes'] == ['Alpha', 'Beta', 'Zeta']
    assert meta['num_classes'] == 3


def test_empty_image(tmp_path):
    """A 0-byte image: named when the annotations are loaded, and by the
    dataset (not by cv2) when the load-time check is off."""
    _write(tmp_path, _ann())
    (tmp_path / 'train_val2018/c1/3.jpg').write_bytes(b'')
    with pytest.raises(
            ValueError,
            match=r'train2018.json: images\[3\] \(id 103\): image '
            r"'train_val2018/c1/3.jpg' under .* is empty \(0 bytes\)"):
        _build(tmp_path)
    ds = _build(tmp_path, check_images=False)
    ds.pipeline = ds.pipeline.__class__([dict(type='LoadImageFromFile')])
    with pytest.raises(
            ValueError,
            match=r"train2018.json: image '.*c1/3.jpg' of sample 3 is empty"):
        ds[3]
