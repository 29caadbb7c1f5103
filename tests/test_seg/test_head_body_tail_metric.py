"""HeadBodyTailIoUMetric: grouping by pixel ratio and the group means."""
import math

import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

import mmdisalign.seg  # noqa: F401
from mmdisalign.seg import (HeadBodyTailIoUMetric, class_pixel_ratios,
                            group_classes)
from mmdisalign.utils.class_freq import save_class_freq

CLASSES = ['a', 'b', 'c', 'd', 'e']


def _freq_file(tmp_path,
               counts,
               total=None,
               classes=CLASSES,
               count_type='pixels',
               name='freq.json'):
    extra = None if total is None else dict(total_pixels=total)
    path = tmp_path / name
    save_class_freq(
        path, counts, classes=classes, count_type=count_type, extra=extra)
    return str(path)


def _metric(path, classes=CLASSES, **kwargs):
    metric = METRICS.build(
        dict(type='HeadBodyTailIoUMetric', class_freq=path, **kwargs))
    metric.dataset_meta = dict(classes=classes)
    return metric


def _areas():
    # intersect, union, pred, label per class (IoUMetric's process output)
    intersect = torch.tensor([2., 1., 0., 3., 1.])
    union = torch.tensor([4., 2., 5., 3., 2.])
    label = torch.tensor([3., 2., 1., 3., 2.])
    pred = union - label + intersect
    return [(intersect, union, pred, label)]


def test_ratios_use_total_pixels_and_ratio_files(tmp_path):
    # 10000 pixels in all (ignored "other" included): ratios of ALL pixels
    path = _freq_file(tmp_path, [5000, 200, 50, 10, 5], total=10000)
    np.testing.assert_allclose(
        class_pixel_ratios(path), [0.5, 0.02, 0.005, 0.001, 0.0005])
    path = _freq_file(tmp_path, [6, 3, 1, 0, 0], name='plain.json')
    np.testing.assert_allclose(class_pixel_ratios(path), [0.6, 0.3, 0.1, 0, 0])
    path = _freq_file(
        tmp_path, [0.1576, 0.0103, 0.0098, 0.0011, 0.001],
        count_type='pixel_ratio',
        name='ratio.json')
    np.testing.assert_allclose(
        class_pixel_ratios(path), [0.1576, 0.0103, 0.0098, 0.0011, 0.001])


def test_group_boundaries_match_the_reference_split():
    # ADE20K: chair 0.0103 head, car 0.0098 body, computer 0.0011 body,
    # swivel chair 0.0010 tail (ratio <= 0.1 %)
    groups = group_classes([0.1576, 0.0103, 0.0098, 0.01, 0.0011, 0.001, 0.])
    assert [g.tolist() for g in groups] == [[0, 1], [2, 3, 4], [5, 6]]
    groups = group_classes([0.3, 0.05, 0.002], thresholds=(0.1, 0.01, 0.001))
    assert [g.tolist() for g in groups] == [[0], [1], [2], []]


def test_group_means_of_iou_and_acc(tmp_path):
    path = _freq_file(tmp_path, [5000, 200, 50, 10, 5], total=10000)
    metric = _metric(path)
    assert metric.class_groups() == dict(head=[0, 1], body=[2], tail=[3, 4])
    metrics = metric.compute_metrics(_areas())
    # IoU = [1/2, 1/2, 0, 1, 1/2], Acc = [2/3, 1/2, 0, 1, 1/2]
    assert metrics['mIoU'] == 50.0
    assert metrics['mAcc'] == pytest.approx(53.33)
    assert metrics['head_mIoU'] == 50.0
    assert metrics['head_mAcc'] == pytest.approx(58.33)
    assert metrics['body_mIoU'] == 0.0
    assert metrics['body_mAcc'] == 0.0
    assert metrics['tail_mIoU'] == 75.0
    assert metrics['tail_mAcc'] == 75.0
    # the overall numbers are IoUMetric's own
    base = IoUMetric()
    base.dataset_meta = dict(classes=CLASSES)
    for key, value in base.compute_metrics(_areas()).items():
        assert metrics[key] == value


def test_absent_classes_are_skipped_and_empty_groups_are_nan(tmp_path):
    path = _freq_file(tmp_path, [5000, 200, 50, 10, 5], total=10000)
    metric = _metric(
        path,
        thresholds=(0.1, 0.01, 0.0001),
        group_names=('many', 'mid', 'few', 'none'))
    intersect = torch.tensor([2., 0., 0., 3., 1.])
    union = torch.tensor([4., 0., 5., 3., 2.])  # class 1 absent: NaN IoU
    label = torch.tensor([3., 0., 1., 3., 2.])
    metrics = metric.compute_metrics([(intersect, union,
                                       union - label + intersect, label)])
    assert metric.class_groups() == dict(
        many=[0], mid=[1], few=[2, 3, 4], none=[])
    assert metrics['many_mIoU'] == 50.0
    assert math.isnan(metrics['mid_mIoU'])
    assert metrics['few_mIoU'] == 50.0
    assert math.isnan(metrics['none_mIoU'])


def test_process_then_compute_through_iou_metric(tmp_path):
    path = _freq_file(tmp_path, [5000, 200, 50, 10, 5], total=10000)
    metric = _metric(path)
    gt = torch.tensor([[0, 0, 1, 255], [2, 3, 4, 4]])
    pred = torch.tensor([[0, 1, 1, 0], [2, 3, 4, 0]])
    sample = dict(
        pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))
    metric.process({}, [sample])
    metrics = metric.evaluate(1)
    # IoU: class0 1/3, class1 1/2, class2 1, class3 1, class4 1/2
    assert metrics['head_mIoU'] == pytest.approx(41.67)
    assert metrics['body_mIoU'] == 100.0
    assert metrics['tail_mIoU'] == 75.0


def test_frequency_file_must_describe_the_dataset(tmp_path):
    # checked when the Runner hands the dataset meta over, before training
    path = _freq_file(tmp_path, [5, 4, 3, 2], classes=CLASSES[:4])
    with pytest.raises(ValueError, match=r'4 classes .* dataset has 5'):
        _metric(path)
    metric = _metric(path, classes=CLASSES[:4])
    metric._dataset_meta = dict(classes=CLASSES)  # changed behind its back
    with pytest.raises(ValueError, match=r'4 classes .* dataset has 5'):
        metric.compute_metrics(_areas())
    path = _freq_file(
        tmp_path, [5, 4, 3, 2, 1],
        classes=['a', 'b', 'x', 'd', 'e'],
        name='names.json')
    with pytest.raises(ValueError, match=r"class 2 is 'c' .* 'x'"):
        _metric(path)
    metric = _metric(path, check_class_names=False)
    assert metric.compute_metrics(_areas())['mIoU'] == 50.0


def test_bad_arguments(tmp_path):
    path = _freq_file(tmp_path, [5, 4, 3, 2, 1])
    with pytest.raises(ValueError, match='strictly decreasing'):
        HeadBodyTailIoUMetric(path, thresholds=(0.001, 0.01))
    with pytest.raises(ValueError, match='group_names has 2 names'):
        HeadBodyTailIoUMetric(path, group_names=('head', 'tail'))
    with pytest.raises(ValueError, match="needs 'mIoU'"):
        HeadBodyTailIoUMetric(path, iou_metrics=['mDice'])
    with pytest.raises(FileNotFoundError, match='nope.json'):
        HeadBodyTailIoUMetric(str(tmp_path / 'nope.json'))
    bad = _freq_file(tmp_path, [5, 4, 3, 2, 1], total=10, name='bad.json')
    with pytest.raises(ValueError, match='more than "total_pixels"'):
        HeadBodyTailIoUMetric(bad)


def test_objectinfo150_ratios_give_the_reference_index_split(tmp_path):
    """The reference splits ADE20K by class index ([:20], [20:75],
    [75:]), which is objectInfo150's order by descending pixel ratio. With
    those ratios as a 'pixel_ratio' file the thresholds give the same
    groups and the group means of the reference (np.nanmean of IoU / Acc
    per slice). Ratios here: descending, 20 / 55 / 75 per group, the
    boundary classes at the published values (chair 0.0103, car 0.0098,
    computer 0.0011, swivel chair 0.0010)."""
    ratios = np.concatenate([
        np.linspace(0.1576, 0.0103, 20),
        np.linspace(0.0098, 0.0011, 55),
        np.linspace(0.0010, 0.0001, 75)
    ])
    assert np.all(np.diff(ratios) < 0)
    names = [f'c{i}' for i in range(150)]
    path = _freq_file(
        tmp_path, ratios.tolist(), classes=names, count_type='pixel_ratio')
    metric = _metric(path, classes=names)
    groups = metric.class_groups()
    assert groups == dict(
        head=list(range(20)),
        body=list(range(20, 75)),
        tail=list(range(75, 150)))

    gen = torch.Generator().manual_seed(0)
    label = torch.randint(1, 50, (150, ), generator=gen).double()
    intersect = (torch.rand(150, generator=gen, dtype=torch.float64) *
                 label).floor()
    pred = intersect + torch.randint(0, 20, (150, ), generator=gen)
    absent = [3, 40, 120]  # NaN IoU and Acc, skipped by nanmean
    label[absent], pred[absent], intersect[absent] = 0, 0, 0
    union = pred + label - intersect
    metrics = metric.compute_metrics([(intersect, union, pred, label)])
    with np.errstate(invalid='ignore'):
        iou = (intersect / union).numpy()
        acc = (intersect / label).numpy()
    for name, part in (('head', slice(0, 20)), ('body', slice(20, 75)),
                       ('tail', slice(75, 150))):
        assert metrics[f'{name}_mIoU'] == pytest.approx(
            np.nanmean(iou[part]) * 100, abs=0.005), name
        assert metrics[f'{name}_mAcc'] == pytest.approx(
            np.nanmean(acc[part]) * 100, abs=0.005), name
