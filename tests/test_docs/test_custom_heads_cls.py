"""docs/custom_heads.md, section cls: each snippet builds, computes a loss
that reaches the calibration, and is the upstream head at init (same
weights, identity calibration; the reference init keeps the ranking)."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.models.heads import (EfficientFormerClsHead,
                                     MultiLabelLinearClsHead)
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmdisalign.cls  # noqa: F401

DOC = 'custom_heads.md'
K, D, N = 4, 6, 3
IDENTITY = dict(type='DisAlignCalibration', init_mode='identity')
CALIBRATION_KEYS = [
    'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
    'calibration.confidence.weight'
]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def _feats():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(N, D, generator=g), )


def _stage1(upstream):
    """A trained-looking upstream head: random weights."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in upstream.parameters():
            param.copy_(torch.randn(param.shape, generator=g))
    return upstream.eval()


def _load(head, upstream):
    result = head.load_state_dict(upstream.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == CALIBRATION_KEYS
    return head.eval()


def _loss_reaches_the_calibration(head, samples):
    head.train()
    for name, param in head.named_parameters():
        param.requires_grad = name.startswith('calibration.')
    loss = head.loss(_feats(), samples)['loss']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    alpha, beta = head.calibration.alpha, head.calibration.beta
    assert alpha.grad.abs().sum() > 0 and beta.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in head.named_parameters()
               if not n.startswith('calibration.'))


def test_multi_label_snippet(exec_doc_snippet):
    ns = exec_doc_snippet(DOC, 'cls-multi-label')
    cls = ns['DisAlignMultiLabelLinearClsHead']
    assert MODELS.get('DisAlignMultiLabelLinearClsHead') is cls
    upstream = _stage1(MultiLabelLinearClsHead(num_classes=K, in_channels=D))
    head = _load(
        MODELS.build(
            dict(
                type='DisAlignMultiLabelLinearClsHead',
                num_classes=K,
                in_channels=D,
                calibration=IDENTITY)), upstream)
    assert head.get_classifier() is head.fc
    torch.testing.assert_close(head(_feats()), upstream(_feats()))
    # the same sigmoid predictions, through the upstream predict
    samples = [DataSample().set_gt_label([0, i % K]) for i in range(N)]
    ours = head.predict(_feats())
    theirs = upstream.predict(_feats())
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.pred_score, b.pred_score)
    _loss_reaches_the_calibration(head, samples)


@pytest.mark.parametrize('distillation', [False, True])
def test_efficientformer_snippet(exec_doc_snippet, distillation):
    ns = exec_doc_snippet(DOC, 'cls-efficientformer')
    assert MODELS.get('DisAlignEfficientFormerClsHead') is (
        ns['DisAlignEfficientFormerClsHead'])
    args = dict(num_classes=K, in_channels=D, distillation=distillation)
    upstream = _stage1(EfficientFormerClsHead(**args))
    head = _load(
        MODELS.build(
            dict(
                type='DisAlignEfficientFormerClsHead',
                calibration=IDENTITY,
                **args)), upstream)
    torch.testing.assert_close(head(_feats()), upstream(_feats()))
    # the default (reference) init: (1 + sigma) z, the same ranking
    ref = _load(
        MODELS.build(dict(type='DisAlignEfficientFormerClsHead', **args)),
        upstream)
    z = upstream(_feats())
    sigma = ref.calibration.get_confidence(_feats()[0])
    torch.testing.assert_close(ref(_feats()), (1 + sigma) * z)
    assert torch.equal(ref(_feats()).argmax(1), z.argmax(1))
    if not distillation:  # mmpretrain trains only this one
        samples = [DataSample().set_gt_label(i % K) for i in range(N)]
        _loss_reaches_the_calibration(head, samples)
