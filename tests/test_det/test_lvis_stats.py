"""Per-category image / instance counts of LVIS / COCO files and the
statistics tool."""
import json
import os.path as osp

import numpy as np
import pytest

from mmdisalign.det.lvis_stats import (category_stats, frequency_group,
                                       write_class_freq)
from mmdisalign.utils.class_freq import load_class_freq, load_class_freq_meta

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def coco_file(categories=None, annotations=None):
    """4 images; category 3 in 2 images (3 instances), 7 in 1 image (1),
    11 in 3 images (3 instances) plus a crowd annotation in a 4th image."""
    if categories is None:
        categories = [
            dict(id=3, name='cat'),
            dict(id=7, name='dog'),
            dict(id=11, name='bag')
        ]
    if annotations is None:
        spec = [(1, 3), (1, 3), (2, 3), (2, 7), (1, 11), (3, 11), (4, 11),
                (2, 11)]
        annotations = [
            dict(
                id=i + 1,
                image_id=img,
                category_id=cat,
                bbox=[0, 0, 2, 2],
                area=4,
                iscrowd=0) for i, (img, cat) in enumerate(spec)
        ]
        annotations[-1]['iscrowd'] = 1
    return dict(
        images=[dict(id=i, width=8, height=8) for i in range(1, 5)],
        annotations=annotations,
        categories=categories)


def test_frequency_groups():
    assert [frequency_group(n)
            for n in (1, 10, 11, 100, 101)] == ['r', 'r', 'c', 'c', 'f']


def test_counts_by_hand():
    stats = category_stats(coco_file())
    assert stats['category_ids'] == [3, 7, 11]
    assert stats['names'] == ['cat', 'dog', 'bag']
    assert stats['image_count'] == [2, 1, 3]  # the crowd is not counted
    assert stats['instance_count'] == [3, 1, 3]
    assert stats['frequency'] == ['r', 'r', 'r']
    assert stats['num_images'] == 4 and stats['num_annotations'] == 7
    assert stats['warnings'] == []
    crowd = category_stats(coco_file(), count_crowd=True)
    assert crowd['image_count'] == [2, 1, 4]
    assert crowd['instance_count'] == [3, 1, 4]


def test_lvis_fields_are_checked_and_frequency_kept():
    data = coco_file()
    for cat, (img, inst, freq) in zip(data['categories'], [(2, 3, 'r'),
                                                           (1, 1, 'c'),
                                                           (9, 3, 'r')]):
        cat.update(image_count=img, instance_count=inst, frequency=freq)
    stats = category_stats(data)
    assert stats['frequency'] == ['r', 'c', 'r']  # the file's groups
    text = ' | '.join(stats['warnings'])
    assert '"image_count" of 1 categories' in text and '11 (9 in the file'\
        in text
    assert '"frequency" of 1 categories' in text and '7 (c in the file' in text
    assert 'instance_count' not in text


def test_errors(tmp_path):
    with pytest.raises(ValueError, match=r'no training annotation.*7 \(dog\)'):
        data = coco_file()
        data['annotations'] = [
            a for a in data['annotations'] if a['category_id'] != 7
        ]
        category_stats(data)
    stats = category_stats(data, allow_zero=True)
    assert stats['image_count'] == [2, 0, 3]
    with pytest.raises(ValueError, match='not sorted by id'):
        data = coco_file()
        data['categories'].reverse()
        category_stats(data)
    with pytest.raises(
            ValueError,
            match=r'category ids that are not in '
            r'"categories": 5 \(annotations 9\)'):
        data = coco_file()
        data['annotations'].append(
            dict(id=9, image_id=1, category_id=5, bbox=[0, 0, 1, 1]))
        category_stats(data)
    with pytest.raises(ValueError, match='duplicate category ids: 3'):
        data = coco_file()
        data['categories'].insert(0, dict(id=3, name='x'))
        category_stats(data)
    path = tmp_path / 'bad.json'
    path.write_text('{"images": []}')
    with pytest.raises(
            ValueError, match=r'bad\.json: expected a list under '
            '"annotations"'):
        category_stats(str(path))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        category_stats(str(tmp_path / 'missing.json'))


def test_write_class_freq_and_load(tmp_path):
    ann = tmp_path / 'train.json'
    ann.write_text(json.dumps(coco_file()))
    out = tmp_path / 'freq.json'
    write_class_freq(str(ann), str(out))
    meta = load_class_freq_meta(str(out))
    assert meta['count_type'] == 'images'
    assert meta['counts'] == [2, 1, 3] == meta['image_count']
    assert meta['instance_count'] == [3, 1, 3]
    assert meta['category_ids'] == [3, 7, 11]
    assert meta['classes'] == ['cat', 'dog', 'bag']
    assert meta['frequency'] == ['r', 'r', 'r']
    assert meta['source'] == str(ann)
    np.testing.assert_array_equal(load_class_freq(str(out)), [2., 1., 3.])
    np.testing.assert_array_equal(
        load_class_freq(dict(file=str(out), key='instance_count')),
        [3., 1., 3.])


def test_tool(tmp_path, capsys, load_tool):
    tool = load_tool('analysis_tools/lvis_class_freq')
    data = coco_file()
    for cat in data['categories']:
        cat.update(image_count=5, instance_count=5, frequency='r')
    ann = tmp_path / 'lvis_train.json'
    ann.write_text(json.dumps(data))
    assert tool.main([str(ann)]) == 0
    out = tmp_path / 'lvis_train_class_freq.json'
    assert load_class_freq_meta(str(out))['counts'] == [2, 1, 3]
    captured = capsys.readouterr()
    assert 'rare 3, common 0, frequent 0' in captured.out
    assert 'WARNING' in captured.err and 'image_count' in captured.err
    other = tmp_path / 'strict.json'
    assert tool.main([str(ann), '-o', str(other), '--strict']) == 1
    assert not other.exists()
    with pytest.raises(ValueError, match='refusing to overwrite'):
        tool.main([str(ann), '-o', str(ann)])


def test_annotation_of_a_missing_image(tmp_path, load_tool):
    """An annotation whose image_id is not in "images" is not counted: the
    error names the image id and the annotation id (library and tool)."""
    data = coco_file()
    data['annotations'].append(
        dict(id=42, image_id=99, category_id=3, bbox=[0, 0, 1, 1]))
    with pytest.raises(
            ValueError,
            match=r'image ids that are not in "images": 99 \(annotations '
            r'42\)'):
        category_stats(data)
    ann = tmp_path / 'orphan.json'
    ann.write_text(json.dumps(data))
    out = tmp_path / 'orphan_class_freq.json'
    with pytest.raises(
            ValueError,
            match=r'orphan\.json: annotations refer '
            r'to image ids .* 99 \(annotations 42\)'):
        load_tool('analysis_tools/lvis_class_freq').main([str(ann)])
    assert not out.exists()
