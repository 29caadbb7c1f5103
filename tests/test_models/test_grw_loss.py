"""Tests of GRWCrossEntropyLoss: numbers, reductions, errors, and the calls
of the mmpretrain, mmseg and mmdet heads."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS, DefaultScope, init_default_scope

from mmdisalign.models.losses import GRWCrossEntropyLoss, GRWFocalLoss
from mmdisalign.utils.class_freq import (grw_weights, max_grw_rho,
                                         save_class_freq)

COUNTS = [100, 10, 1]
# w_c = 3 * n_c^-1 / sum_k n_k^-1 with rho = 1
W_RHO1 = [1 / 37, 10 / 37, 100 / 37]


def hand_weights(counts, rho):
    """GRW weights written out with Python floats."""
    raw = [c**-rho for c in counts]
    return [len(counts) * r / sum(raw) for r in raw]


def hand_ce(row, label):
    """-log softmax(row)[label] in float64 Python arithmetic."""
    values = [float(v) for v in row]
    top = max(values)
    log_sum = top + math.log(sum(math.exp(v - top) for v in values))
    return log_sum - values[label]


def hand_terms(logits, labels, weights, ignore_index=-100, sample=None):
    """Lists of (s_i w_{y_i} CE_i, s_i w_{y_i}) over flattened elements.

    ``logits`` is (N, K) or (N, K, H, W); ignored elements give (0, 0).
    """
    if logits.dim() == 4:
        logits = logits.permute(0, 2, 3, 1).reshape(-1, logits.size(1))
        labels = labels.reshape(-1)
        sample = None if sample is None else sample.reshape(-1)
    terms, dens = [], []
    for i, (row, label) in enumerate(zip(logits.tolist(), labels.tolist())):
        s = 1.0 if sample is None else float(sample[i])
        if label == ignore_index:
            terms.append(0.0)
            dens.append(0.0)
        else:
            terms.append(s * weights[label] * hand_ce(row, label))
            dens.append(s * weights[label])
    return terms, dens


def as_float(value):
    """A Python float from a number or a (grad-carrying) scalar tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach().item()
    return float(value)


def assert_close(actual, expected, tol=1e-6):
    actual, expected = as_float(actual), as_float(expected)
    assert math.isclose(
        actual, expected, rel_tol=tol, abs_tol=tol), (actual, expected)


@pytest.fixture
def logits():
    torch.manual_seed(0)
    return torch.randn(6, 3) * 2


LABELS = torch.tensor([0, 1, 2, 2, 0, 1])


# ------------------------------------------------------------- weights
def test_class_weight_buffer():
    loss = GRWCrossEntropyLoss(COUNTS, rho=1.0)
    assert loss.class_weight.dtype == torch.float32
    assert torch.equal(loss.class_weight,
                       torch.tensor(W_RHO1, dtype=torch.float32))
    assert_close(loss.class_weight.sum(), 3.0)
    # non-persistent: not in checkpoints, no missing key when loading one
    assert 'class_weight' in dict(loss.named_buffers())
    assert 'class_weight' not in loss.state_dict()
    result = loss.load_state_dict({}, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    # moves (and casts) with the module
    assert loss.double().class_weight.dtype == torch.float64
    no_rw = GRWCrossEntropyLoss(COUNTS, rho=0)
    assert torch.equal(no_rw.class_weight, torch.ones(3))
    assert no_rw.loss_name == 'loss_grw'
    assert no_rw.use_sigmoid is False
    assert no_rw.custom_cls_channels is False
    assert 'rho=0.0' in repr(no_rw)


def test_background_weight():
    loss = GRWCrossEntropyLoss(COUNTS, rho=0.8, with_background=True)
    assert loss.class_weight.numel() == 4
    assert loss.class_weight[-1].item() == 1.0
    assert_close(loss.class_weight[:3].sum(), 3.0)
    fg = torch.tensor(hand_weights(COUNTS, 0.8), dtype=torch.float32)
    torch.testing.assert_close(loss.class_weight[:3], fg, rtol=1e-7, atol=0)
    other = GRWCrossEntropyLoss(
        COUNTS, rho=0.8, with_background=True, background_weight=2.5)
    assert other.class_weight[-1].item() == 2.5
    assert torch.equal(other.class_weight[:3], loss.class_weight[:3])


# ----------------------------------------------------------- reductions
def test_weighted_mean_matches_hand_and_torch(logits):
    loss = GRWCrossEntropyLoss(COUNTS, rho=1.0)
    terms, dens = hand_terms(logits, LABELS, W_RHO1)
    expected = sum(terms) / sum(dens)
    score = logits.clone().requires_grad_()
    ours = loss(score, LABELS)
    assert_close(ours, expected)
    # the reference call: F.cross_entropy(weight=w, reduction='mean')
    ref_score = logits.clone().requires_grad_()
    reference = F.cross_entropy(
        ref_score, LABELS, weight=torch.tensor(W_RHO1), reduction='mean')
    assert_close(ours, reference)
    ours.backward()
    reference.backward()
    torch.testing.assert_close(score.grad, ref_score.grad)
    # the heads' avg_factor does not change the weighted mean
    assert_close(loss(logits, LABELS, avg_factor=6), expected)
    assert_close(loss(logits, LABELS, avg_factor=torch.tensor(6.)), expected)


def test_pixel_mean_counts_ignored_pixels():
    torch.manual_seed(1)
    score = torch.randn(2, 3, 2, 3)
    label = torch.tensor([[[0, 1, 255], [2, 2, 0]], [[255, 255, 1], [0, 2,
                                                                     1]]])
    weights = hand_weights(COUNTS, 0.2)
    terms, _ = hand_terms(score, label, weights, ignore_index=255)
    loss = GRWCrossEntropyLoss(COUNTS, rho=0.2, avg_mode='pixel')
    # 12 pixels, 3 ignored: the denominator still counts all 12
    pixel = loss(score, label, weight=None, ignore_index=255)
    assert_close(pixel, sum(terms) / 12)
    # the mmseg-0.x reference: per-pixel w*CE, plain mean over all pixels
    reference = F.cross_entropy(
        score,
        label,
        weight=torch.tensor(weights, dtype=torch.float32),
        reduction='none',
        ignore_index=255).mean()
    assert_close(pixel, reference)
    # 'valid' divides by the 9 non-ignored pixels
    valid = GRWCrossEntropyLoss(COUNTS, rho=0.2, avg_mode='valid')
    assert_close(valid(score, label, ignore_index=255), sum(terms) / 9)
    # a given avg_factor replaces the count in these two modes
    assert_close(
        loss(score, label, ignore_index=255, avg_factor=5),
        sum(terms) / 5)
    # default ignore_index from the constructor
    ctor = GRWCrossEntropyLoss(
        COUNTS, rho=0.2, avg_mode='pixel', ignore_index=255)
    assert_close(ctor(score, label), sum(terms) / 12)


def test_sample_weights(logits):
    sample = torch.tensor([1.0, 0.0, 0.5, 2.0, 1.0, 1.0])
    terms, dens = hand_terms(logits, LABELS, W_RHO1, sample=sample)
    loss = GRWCrossEntropyLoss(COUNTS, rho=1.0)
    assert_close(loss(logits, LABELS, sample), sum(terms) / sum(dens))
    # any shape with one value per element is accepted
    assert_close(
        loss(logits, LABELS, sample.view(6, 1)),
        sum(terms) / sum(dens))
    pixel = GRWCrossEntropyLoss(COUNTS, rho=1.0, avg_mode='pixel')
    assert_close(pixel(logits, LABELS, sample), sum(terms) / 6)
    none = loss(logits, LABELS, sample, reduction_override='none')
    torch.testing.assert_close(none, torch.tensor(terms), rtol=1e-6, atol=1e-7)


def test_soft_labels(logits):
    loss = GRWCrossEntropyLoss(COUNTS, rho=1.0)
    one_hot = F.one_hot(LABELS, 3).float()
    hard_score = logits.clone().requires_grad_()
    soft_score = logits.clone().requires_grad_()
    hard = loss(hard_score, LABELS)
    soft = loss(soft_score, one_hot)
    assert_close(soft, hard, tol=1e-7)
    hard.backward()
    soft.backward()
    torch.testing.assert_close(soft_score.grad, hard_score.grad)

    # mixup of two label sets: numerator sum_k w_k y_k (-log p_k),
    # denominator sum_k y_k w_k
    other = torch.tensor([1, 2, 0, 1, 2, 0])
    lam = 0.7
    target = lam * one_hot + (1 - lam) * F.one_hot(other, 3).float()
    terms_a, dens_a = hand_terms(logits, LABELS, W_RHO1)
    terms_b, dens_b = hand_terms(logits, other, W_RHO1)
    numerator = lam * sum(terms_a) + (1 - lam) * sum(terms_b)
    denominator = lam * sum(dens_a) + (1 - lam) * sum(dens_b)
    assert_close(loss(logits, target), numerator / denominator)
    assert_close(loss(logits, target, reduction_override='sum'), numerator)
    torch_sum = F.cross_entropy(
        logits, target, weight=torch.tensor(W_RHO1), reduction='sum')
    assert_close(torch_sum, numerator)

    # dense soft targets (N, K, H, W)
    torch.manual_seed(2)
    score = torch.randn(1, 3, 2, 2)
    label = torch.tensor([[[0, 1], [2, 1]]])
    dense = F.one_hot(label, 3).permute(0, 3, 1, 2).float()
    pixel = GRWCrossEntropyLoss(COUNTS, rho=1.0, avg_mode='pixel')
    assert_close(pixel(score, dense), pixel(score, label), tol=1e-7)


def test_loss_weight_and_reduction_override(logits):
    base = GRWCrossEntropyLoss(COUNTS, rho=1.0)
    half = GRWCrossEntropyLoss(COUNTS, rho=1.0, loss_weight=0.5)
    assert_close(half(logits, LABELS), 0.5 * base(logits, LABELS))

    terms, _ = hand_terms(logits, LABELS, W_RHO1)
    none = half(logits, LABELS, avg_factor=6, reduction_override='none')
    assert none.shape == (6, )
    torch.testing.assert_close(
        none, 0.5 * torch.tensor(terms), rtol=1e-6, atol=1e-7)
    assert_close(
        half(logits, LABELS, avg_factor=6, reduction_override='sum'),
        0.5 * sum(terms))
    summed = GRWCrossEntropyLoss(COUNTS, rho=1.0, reduction='sum')
    assert_close(summed(logits, LABELS), sum(terms))
    assert_close(
        summed(logits, LABELS, reduction_override='mean'),
        base(logits, LABELS))
    # ignored elements are 0 in the per-element output
    label = LABELS.clone()
    label[1] = -100
    none = base(logits, label, reduction_override='none')
    assert none[1].item() == 0.0
    assert_close(none[0], terms[0])


@pytest.mark.parametrize('avg_mode', ['weighted', 'pixel', 'valid'])
def test_empty_inputs_give_zero_with_grad(avg_mode):
    loss = GRWCrossEntropyLoss(COUNTS, avg_mode=avg_mode)
    cases = [
        (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), None),
        (torch.randn(4, 3), torch.full((4, ), -100), None),
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.zeros(4)),
        (torch.randn(1, 3, 2, 2), torch.full((1, 2, 2), -100), None),
        (torch.randn(4, 3), torch.zeros(4, 3), None),  # empty soft targets
    ]
    for score, label, weight in cases:
        score = score.requires_grad_()
        value = loss(score, label, weight)
        assert value.item() == 0.0
        assert value.grad_fn is not None
        value.backward()
        assert score.grad.shape == score.shape
        assert torch.equal(score.grad, torch.zeros_like(score))


# ---------------------------------------------------------------- errors
def test_score_columns_mismatch(tmp_path):
    path = tmp_path / 'lvis_freq.json'
    save_class_freq(path, COUNTS, classes=['a', 'b', 'c'])
    loss = GRWCrossEntropyLoss(str(path))
    assert loss.source == str(path)
    with pytest.raises(
            ValueError,
            match=r"cls_score has 4 class scores \(dim 1\) but "
            r'GRWCrossEntropyLoss has 3 class weights: 3 frequencies from '
            r"the frequency file '.*lvis_freq\.json'"):
        loss(torch.randn(2, 4), torch.tensor([0, 1]))
    det = GRWCrossEntropyLoss(dict(file=path), with_background=True)
    with pytest.raises(
            ValueError,
            match=r'cls_score has 3 class scores .* 4 class weights: 3 '
            r'frequencies .* \+ 1 background'):
        det(torch.randn(2, 3), torch.tensor([0, 1]))


def test_check_num_classes(tmp_path):
    """The class-count check of every DisAlign head: the head's classes
    (+ background column) against the loss's frequencies (+ background
    column); the sigmoid loss has a background weight but no column."""
    path = tmp_path / 'freq.json'
    save_class_freq(path, COUNTS)
    softmax = GRWCrossEntropyLoss(str(path))
    det = GRWCrossEntropyLoss(COUNTS, with_background=True)
    focal = GRWFocalLoss(COUNTS)
    assert not focal.with_background and focal.class_weight.numel() == 4
    # Accepted: the same count and background convention.
    softmax.check_num_classes(3, 'Head', tool='tool.py')
    det.check_num_classes(3, 'Head', tool='tool.py', background=True)
    focal.check_num_classes(3, 'Head', tool='tool.py')
    with pytest.raises(
            ValueError,
            match=r'^MyHead predicts out_channels=4 classes but its '
            r'loss_decode GRWCrossEntropyLoss has 3 class frequencies from '
            r"the class_freq file '.*freq\.json'; class_freq must count the "
            r"classes of this model's training set: write its frequency "
            r'file with tools/x\.py$'):
        softmax.check_num_classes(
            4, 'MyHead', 'tools/x.py', 'loss_decode', field='out_channels')
    with pytest.raises(
            ValueError,
            match=r'^Head predicts num_classes=2 classes \+ 1 background '
            r'column but its loss_cls GRWCrossEntropyLoss has 3 class '
            r'frequencies from its class_freq list \+ 1 background column '
            r'\(with_background=True\); class_freq must count'):
        det.check_num_classes(2, 'Head', 'tool.py', background=True)
    with pytest.raises(
            ValueError,
            match=r'GRWFocalLoss has 3 class frequencies from its class_freq '
            r'list; class_freq must count'):
        focal.check_num_classes(4, 'Head', 'tool.py')
    # The same classes, another background convention.
    with pytest.raises(
            ValueError,
            match=r'predicts num_classes=3 classes but .*3 class frequencies '
            r'from its class_freq list \+ 1 background column \('
            r'with_background=True\); the classes agree, the background '
            r'column does not: build the loss with with_background=False$'):
        det.check_num_classes(3, 'Head', 'tool.py')
    with pytest.raises(
            ValueError, match=r'build the loss with with_background=True$'):
        softmax.check_num_classes(3, 'Head', 'tool.py', background=True)
    # K - 1 frequencies + a background column on a head of K classes and
    # no background column: as many columns, but the last class would get
    # the background weight
    with pytest.raises(
            ValueError,
            match=r'predicts num_classes=4 classes but .*3 class frequencies '
            r'from its class_freq list \+ 1 background column '
            r'\(with_background=True\); class_freq must count'):
        det.check_num_classes(4, 'Head', 'tool.py')


def test_label_errors(logits):
    loss = GRWCrossEntropyLoss(COUNTS)
    with pytest.raises(
            ValueError,
            match=r'labels must be in \[0, 2\] or equal ignore_index=-100, '
            r'found \[-1, 3\]'):
        loss(logits, torch.tensor([0, 3, -1, 1, 3, 0]))
    det = GRWCrossEntropyLoss(COUNTS, with_background=True)
    assert det(torch.randn(2, 4), torch.tensor([3, 0])) > 0
    with pytest.raises(ValueError, match=r'\[0, 3\].*found \[4\]'):
        det(torch.randn(2, 4), torch.tensor([4, 0]))
    seg = GRWCrossEntropyLoss(COUNTS, avg_mode='pixel')
    with pytest.raises(ValueError, match=r'found \[255\]'):
        seg(torch.randn(1, 3, 1, 2), torch.tensor([[[0, 255]]]))
    # labels of another shape: torch's own error
    with pytest.raises(RuntimeError, match='target tensor expected'):
        loss(logits, LABELS.view(6, 1, 1))
    with pytest.raises(TypeError, match='hard labels must be integers'):
        loss(logits, LABELS.float())
    with pytest.raises(ValueError, match='soft targets must have the shape'):
        loss(logits, torch.zeros(6, 4))
    with pytest.raises(
            ValueError, match=r'cls_score must be a tensor of '
            r'shape \(N, C\)'):
        loss(torch.randn(3), torch.tensor([0, 1, 2]))
    with pytest.raises(
            ValueError,
            match=r'weight must have one value per '
            r'element, shape \(6,\), got \(5,\)'):
        loss(logits, LABELS, torch.ones(5))
    with pytest.raises(
            TypeError, match=r"unexpected keyword argument "
            r"'avg_non_ignore'"):
        loss(logits, LABELS, avg_non_ignore=True)
    with pytest.raises(ValueError, match="reduction_override must be one"):
        loss(logits, LABELS, reduction_override='avg')


def test_constructor_errors():
    with pytest.raises(ValueError, match=r'3 entries but num_classes=4'):
        GRWCrossEntropyLoss(COUNTS, num_classes=4)
    assert GRWCrossEntropyLoss(COUNTS, num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match=r"class 1 has 0 training samples"):
        GRWCrossEntropyLoss([4, 0, 1])
    with pytest.raises(ValueError, match=r'rho must be finite and >= 0'):
        GRWCrossEntropyLoss(COUNTS, rho=-1)
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        GRWCrossEntropyLoss(COUNTS, reduction='avg')
    with pytest.raises(ValueError, match=r"avg_mode must be one of"):
        GRWCrossEntropyLoss(COUNTS, avg_mode='batch')
    with pytest.raises(ValueError, match=r"loss_name must start with "):
        GRWCrossEntropyLoss(COUNTS, loss_name='grw')
    with pytest.raises(ValueError, match=r'loss_weight must be a finite'):
        GRWCrossEntropyLoss(COUNTS, loss_weight=float('nan'))
    with pytest.raises(ValueError, match=r'background_weight must be'):
        GRWCrossEntropyLoss(
            COUNTS, with_background=True, background_weight=-1.0)
    with pytest.raises(FileNotFoundError, match=r'missing\.json'):
        GRWCrossEntropyLoss('missing.json')


# ------------------------------------------------------- OpenMMLab heads
@pytest.fixture
def restore_scope():
    """Give the global default scope back after the test."""
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict = saved


def test_builds_from_root_registry():
    loss = MODELS.build(
        dict(type='GRWCrossEntropyLoss', class_freq=COUNTS, rho=1.2))
    assert isinstance(loss, GRWCrossEntropyLoss)
    assert loss.rho == 1.2


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmseg', 'mmdet'])
def test_builds_by_bare_name_in_downstream_scopes(scope, restore_scope):
    registry = pytest.importorskip(f'{scope}.registry')
    init_default_scope(scope)
    assert DefaultScope.get_current_instance().scope_name == scope
    loss = registry.MODELS.build(
        dict(type='GRWCrossEntropyLoss', class_freq=COUNTS, rho=0.8))
    assert isinstance(loss, GRWCrossEntropyLoss)
    torch.testing.assert_close(
        loss.class_weight,
        torch.tensor(hand_weights(COUNTS, 0.8), dtype=torch.float32),
        rtol=1e-7,
        atol=0)


def test_mmpretrain_linear_cls_head(restore_scope):
    pytest.importorskip('mmpretrain')
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    from mmpretrain.structures import DataSample
    init_default_scope('mmpretrain')
    head = PRETRAIN_MODELS.build(
        dict(
            type='LinearClsHead',
            num_classes=3,
            in_channels=4,
            loss=dict(type='GRWCrossEntropyLoss', class_freq=COUNTS, rho=1.2)))
    torch.manual_seed(3)
    feats = torch.randn(5, 4)
    labels = [0, 2, 1, 2, 0]
    samples = [DataSample().set_gt_label(label) for label in labels]
    losses = head.loss((feats, ), samples)
    with torch.no_grad():
        logits = head.fc(feats)
    weights = hand_weights(COUNTS, 1.2)
    terms, dens = hand_terms(logits, torch.tensor(labels), weights)
    assert_close(losses['loss'], sum(terms) / sum(dens))

    # batch augmentation (mixup) hands soft scores to the loss
    other = [1, 0, 2, 0, 1]
    soft = [
        DataSample().set_gt_score(0.6 * F.one_hot(torch.tensor(a), 3) +
                                  0.4 * F.one_hot(torch.tensor(b), 3))
        for a, b in zip(labels, other)
    ]
    terms_b, dens_b = hand_terms(logits, torch.tensor(other), weights)
    expected = (0.6 * sum(terms) + 0.4 * sum(terms_b)) / (0.6 * sum(dens) +
                                                          0.4 * sum(dens_b))
    assert_close(head.loss((feats, ), soft)['loss'], expected)


def test_mmseg_fcn_head(restore_scope):
    pytest.importorskip('mmseg')
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS as SEG_MODELS
    from mmseg.structures import SegDataSample
    init_default_scope('mmseg')
    head = SEG_MODELS.build(
        dict(
            type='FCNHead',
            in_channels=4,
            channels=4,
            num_convs=1,
            concat_input=False,
            num_classes=3,
            loss_decode=dict(
                type='GRWCrossEntropyLoss',
                class_freq=COUNTS,
                rho=0.2,
                avg_mode='pixel')))
    assert head.ignore_index == 255
    torch.manual_seed(4)
    seg_logits = torch.randn(2, 3, 3, 3)
    label = torch.randint(0, 3, (2, 3, 3))
    label[0, 0, :] = 255
    label[1, 2, 1] = 255
    samples = []
    for i in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[i:i + 1].clone())
        samples.append(sample)
    losses = head.loss_by_feat(seg_logits, samples)
    assert set(losses) == {'loss_grw', 'acc_seg'}
    terms, _ = hand_terms(
        seg_logits, label, hand_weights(COUNTS, 0.2), ignore_index=255)
    assert_close(losses['loss_grw'], sum(terms) / 18)  # 18 pixels, 4 ignored

    # mmseg's OHEM sampler asks for per-pixel losses
    per_pixel = head.loss_decode(
        seg_logits,
        label,
        weight=None,
        ignore_index=255,
        reduction_override='none')
    assert per_pixel.shape == (2, 3, 3)
    assert_close(per_pixel.sum(), sum(terms))
    assert per_pixel[0, 0].abs().sum().item() == 0.0


def test_mmdet_shared2fc_bbox_head(restore_scope):
    pytest.importorskip('mmdet')
    from mmdet.registry import MODELS as DET_MODELS
    init_default_scope('mmdet')
    head = DET_MODELS.build(
        dict(
            type='Shared2FCBBoxHead',
            in_channels=2,
            fc_out_channels=8,
            roi_feat_size=2,
            num_classes=3,
            loss_cls=dict(
                type='GRWCrossEntropyLoss',
                class_freq=COUNTS,
                rho=0.8,
                num_classes=3,
                with_background=True)))
    assert head.fc_cls.out_features == 4  # 3 classes + background
    assert head.custom_cls_channels is False
    assert head.custom_activation is False
    torch.manual_seed(5)
    cls_score = torch.randn(8, 4)
    labels = torch.tensor([0, 3, 1, 3, 2, 3, 3, 0])  # 3 = background
    label_weights = torch.tensor([1., 1., 1., 1., 1., 1., 0., 1.])
    losses = head.loss(cls_score, None, None, labels, label_weights, None,
                       None)
    weights = hand_weights(COUNTS, 0.8) + [1.0]
    terms, dens = hand_terms(cls_score, labels, weights, sample=label_weights)
    assert_close(losses['loss_cls'], sum(terms) / sum(dens))
    assert 'acc' in losses
    # mmdet's OHEM samplers ask for per-RoI losses
    none = head.loss(
        cls_score,
        None,
        None,
        labels,
        label_weights,
        None,
        None,
        reduction_override='none')['loss_cls']
    torch.testing.assert_close(none, torch.tensor(terms), rtol=1e-6, atol=1e-7)


def test_pixel_ratio_file_gives_the_reference_weights(tmp_path):
    """ADE20K: the reference weights come from objectInfo150's pixel
    ratios, K * r^-rho / sum_k r_k^-rho in float64, then float32 (rho 0.2).
    A 'pixel_ratio' class-frequency file with those ratios gives them."""
    ratios = [0.1576, 0.1072, 0.0103, 0.0098, 0.0011, 0.0010, 0.0002]
    path = tmp_path / 'objectinfo_ratio.json'
    save_class_freq(path, ratios, count_type='pixel_ratio')
    loss = GRWCrossEntropyLoss(str(path), rho=0.2, avg_mode='pixel')
    r = np.asarray(ratios, dtype=np.float64)
    w = r**-0.2
    expected = torch.from_numpy(len(r) * w / w.sum()).float()
    assert torch.equal(loss.class_weight, expected)
    # scale-free: the pixel counts behind the ratios give the same weights
    counts = GRWCrossEntropyLoss([x * 1e6 for x in ratios], rho=0.2)
    torch.testing.assert_close(
        counts.class_weight, expected, rtol=1e-6, atol=0)


# Fashion-MNIST-LT's training counts (imbalance 100), the shipped profile.
FMNIST_LT_COUNTS = [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]


def test_rho_underflowing_float32_is_refused(tmp_path):
    path = tmp_path / 'freq.json'
    save_class_freq(
        path, FMNIST_LT_COUNTS, classes=[f'c{i}' for i in range(10)])
    limit = max_grw_rho(FMNIST_LT_COUNTS)
    assert limit == pytest.approx(19.46)
    tiny = float(np.finfo(np.float32).tiny)
    # The limit is usable, 0.01 more is not (the head class underflows).
    assert grw_weights(FMNIST_LT_COUNTS, limit).min() >= tiny
    assert grw_weights(FMNIST_LT_COUNTS, limit + 0.01).min() < tiny
    loss = GRWCrossEntropyLoss(str(path), rho=limit)
    assert float(loss.class_weight.min()) > 0
    with pytest.raises(ValueError) as info:
        GRWCrossEntropyLoss(str(path), rho=1000)
    message = str(info.value)
    assert 'rho=1000 gives 9 of 10 class weights' in message
    assert "class 0 ('c0'): 0" in message
    assert 'largest usable rho for this frequency profile' in message
    assert 'is 19.46' in message
    # A list of counts gets the same error, without names.
    with pytest.raises(ValueError, match=r'class 0: 0.*is 19\.46'):
        GRWCrossEntropyLoss(FMNIST_LT_COUNTS, rho=1000)
    # The sigmoid GRW loss shares the weights, and their check.
    with pytest.raises(ValueError) as info:
        GRWFocalLoss(str(path), rho=1000)
    assert str(info.value) == message.replace('GRWCrossEntropyLoss',
                                              'GRWFocalLoss')
    focal = GRWFocalLoss(str(path), rho=limit)
    assert torch.equal(focal.class_weight[:10], loss.class_weight)
    assert focal.class_freq_file == loss.class_freq_file == str(path)


def test_max_grw_rho_of_a_balanced_profile_is_unbounded():
    assert max_grw_rho([5, 5, 5]) == math.inf
    GRWCrossEntropyLoss([5, 5, 5], rho=1e6)
