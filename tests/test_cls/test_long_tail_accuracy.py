"""LongTailAccuracy on a hand-made example."""
import csv
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import METRICS

import mmdisalign.cls  # noqa: F401
from mmdisalign.cls import LongTailAccuracy, long_tail_groups
from mmdisalign.utils.class_freq import save_class_freq

# 6 classes; ImageNet-LT thresholds: many > 100, medium 20..100, few < 20.
TRAIN_COUNTS = [150, 101, 100, 20, 19, 5]
CLASSES = ['a', 'b', 'c', 'd', 'e', 'f']
# Test samples per class and how many of them are predicted right.
NUM_TEST = [4, 2, 5, 1, 2, 10]
NUM_CORRECT = [4, 1, 0, 1, 2, 3]


def _samples():
    samples = []
    for c, (n, k) in enumerate(zip(NUM_TEST, NUM_CORRECT)):
        for i in range(n):
            pred = c if i < k else (c + 1) % 6
            score = torch.zeros(6)
            score[pred] = 1.0
            samples.append(dict(pred_score=score, gt_label=torch.tensor([c])))
    return samples


def _evaluate(metric):
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, _samples())
    return metric.evaluate(len(metric.results))


def _expected():
    acc = 100.0 * np.array(NUM_CORRECT) / np.array(NUM_TEST)
    return dict(
        top1=100.0 * sum(NUM_CORRECT) / sum(NUM_TEST),  # 11 / 24
        many=acc[[0, 1]].mean(),  # (100 + 50) / 2 = 75
        medium=acc[[2, 3]].mean(),  # (0 + 100) / 2 = 50
        few=acc[[4, 5]].mean(),  # (100 + 30) / 2 = 65
        mean_class=acc.mean())


def test_groups_follow_thresholds():
    groups = long_tail_groups(TRAIN_COUNTS)
    assert list(groups) == ['many', 'many', 'medium', 'medium', 'few', 'few']
    groups = long_tail_groups(TRAIN_COUNTS, many_thr=150, few_thr=100)
    assert list(groups) == ['medium', 'medium', 'medium', 'few', 'few', 'few']


def test_metric_from_class_freq_json(tmp_path):
    freq = tmp_path / 'freq.json'
    save_class_freq(freq, TRAIN_COUNTS, classes=CLASSES)
    metric = METRICS.build(
        dict(
            type='LongTailAccuracy',
            class_freq=str(freq),
            out_dir=str(tmp_path / 'out')))
    result = _evaluate(metric)
    expected = _expected()
    assert set(result) == {f'lt/{k}' for k in expected}
    for key, value in expected.items():
        assert result[f'lt/{key}'] == pytest.approx(value)
    assert result['lt/top1'] == pytest.approx(100 * 11 / 24)
    assert result['lt/many'] == pytest.approx(75.0)
    assert result['lt/medium'] == pytest.approx(50.0)
    assert result['lt/few'] == pytest.approx(65.0)

    with open(tmp_path / 'out' / 'per_class_accuracy.json') as f:
        saved = json.load(f)
    rows = saved['classes']
    assert [r['name'] for r in rows] == CLASSES
    assert [r['train_count'] for r in rows] == TRAIN_COUNTS
    assert [r['num_test'] for r in rows] == NUM_TEST
    assert [r['num_correct'] for r in rows] == NUM_CORRECT
    assert [r['group'] for r in rows] == list(long_tail_groups(TRAIN_COUNTS))
    assert rows[5]['accuracy'] == pytest.approx(30.0)
    with open(tmp_path / 'out' / 'per_class_accuracy.csv') as f:
        csv_rows = list(csv.DictReader(f))
    assert [float(r['accuracy'])
            for r in csv_rows] == pytest.approx([100, 50, 0, 100, 100, 30])


def test_metric_from_training_list_file(tmp_path):
    lines = [
        f'train/{c}/{i}.png {c}\n' for c, n in enumerate(TRAIN_COUNTS)
        for i in range(n)
    ]
    (tmp_path / 'train.txt').write_text(''.join(lines[::-1]))
    metric = LongTailAccuracy(
        train_ann_file='train.txt',
        data_root=str(tmp_path),
        many_thr=100,
        few_thr=20,
        out_dir=str(tmp_path))
    result = _evaluate(metric)
    for key, value in _expected().items():
        assert result[f'lt/{key}'] == pytest.approx(value)
    assert metric.get_train_counts().tolist() == TRAIN_COUNTS


def test_custom_thresholds_and_empty_group(tmp_path):
    metric = LongTailAccuracy(
        class_freq=TRAIN_COUNTS, many_thr=1000, few_thr=50, out_dir=None)
    result = _evaluate(metric)
    acc = 100.0 * np.array(NUM_CORRECT) / np.array(NUM_TEST)
    assert 'lt/many' not in result  # no class has > 1000 images
    assert result['lt/medium'] == pytest.approx(acc[[0, 1, 2]].mean())
    assert result['lt/few'] == pytest.approx(acc[[3, 4, 5]].mean())


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match='exactly one'):
        LongTailAccuracy()
    with pytest.raises(ValueError, match='few_thr'):
        LongTailAccuracy(class_freq=TRAIN_COUNTS, many_thr=10, few_thr=20)
    # A frequency file of another dataset: wrong number of classes ...
    freq = tmp_path / 'other.json'
    save_class_freq(freq, [10, 20, 30])
    metric = LongTailAccuracy(class_freq=str(freq), out_dir=str(tmp_path))
    with pytest.raises(ValueError, match='num_classes=6'):
        _evaluate(metric)
    # ... or other class names.
    save_class_freq(freq, TRAIN_COUNTS, classes=list('abcxef'))
    metric = LongTailAccuracy(class_freq=str(freq), out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="class 3 is 'x'"):
        _evaluate(metric)
    assert not osp.exists(tmp_path / 'per_class_accuracy.json')
