"""LearnableScaleNormedLinear: the reference cosine box classifier (scale
learned from 20) as a drop-in ``cls_predictor_cfg`` of mmdet's heads."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.layers import NormedLinear
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmdisalign.det import LearnableScaleNormedLinear
from mmdisalign.engine.hooks.freeze_hook import plan_freeze

SMALL = dict(in_channels=4, roi_feat_size=2, fc_out_channels=8, num_classes=3)
COSINE = dict(type='LearnableScaleNormedLinear', tempearture=20, bias=False)


@pytest.fixture(autouse=True)
def _mmdet_scope():
    init_default_scope('mmdet')


def _head(type_='Shared2FCBBoxHead', **kwargs):
    head = MODELS.build(
        dict(type=type_, cls_predictor_cfg=COSINE, **SMALL, **kwargs))
    head.init_weights()
    return head


def test_same_forward_and_names_as_normed_linear():
    torch.manual_seed(0)
    layer = _head().fc_cls
    assert isinstance(layer, LearnableScaleNormedLinear)
    assert isinstance(layer.tempearture, nn.Parameter)
    assert layer.tempearture.item() == 20.0
    assert [n
            for n, _ in layer.named_parameters()] == ['weight', 'tempearture']
    fixed = NormedLinear(8, 4, tempearture=20, bias=False)
    fixed.load_state_dict(layer.state_dict(), strict=False)
    x = torch.randn(5, 8)
    assert torch.equal(layer(x), fixed(x))
    # A NormedLinear checkpoint loads; only the scale is new.
    torch.manual_seed(1)
    fresh = LearnableScaleNormedLinear(8, 4, tempearture=20, bias=False)
    missing, unexpected = fresh.load_state_dict(
        fixed.state_dict(), strict=False)
    assert missing == ['tempearture'] and unexpected == []
    assert torch.equal(fresh.weight, fixed.weight)


def test_scale_is_learned_as_the_reference():
    """One SGD step on the scale: d loss / d scale = sum(dL/dz * cos),
    the reference cosine classifier ``scale * cos(x, w)`` (F.normalize).
    ``eps=1e-12`` as F.normalize's (NormedLinear adds its 1e-6 to the
    norms, a relative difference of 1e-6 / norm: 3e-5 for the N(0, 0.01)
    init of this 8-wide layer)."""
    torch.manual_seed(0)
    layer = LearnableScaleNormedLinear(8, 4, bias=False, eps=1e-12)
    x = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    # reference: a learnable scale times the cosine of feature and weight
    scale = nn.Parameter(torch.tensor(20.0))
    weight = nn.Parameter(layer.weight.detach().clone())
    ref_logits = scale * F.normalize(x) @ F.normalize(weight).t()
    torch.testing.assert_close(layer(x), ref_logits, rtol=1e-6, atol=1e-6)

    optim = torch.optim.SGD(layer.parameters(), lr=0.5)
    ref_optim = torch.optim.SGD([scale, weight], lr=0.5)
    F.cross_entropy(layer(x), labels).backward()
    F.cross_entropy(ref_logits, labels).backward()
    torch.testing.assert_close(
        layer.tempearture.grad, scale.grad, rtol=1e-4, atol=1e-6)
    optim.step()
    ref_optim.step()
    torch.testing.assert_close(
        layer.tempearture.detach(), scale.detach(), rtol=0, atol=1e-5)
    assert abs(layer.tempearture.item() - 20.0) > 1e-3  # it moved


def test_stage2_freezes_the_learned_scale():
    head = _head(
        'DisAlignShared2FCBBoxHead',
        calibration=dict(type='DisAlignCalibration'))
    plan = plan_freeze(head)
    assert 'fc_cls.tempearture' in plan.frozen
    assert plan.required['fc_cls.tempearture'] == ()
    assert not any(n.startswith('fc_cls') for n in plan.trainable)
