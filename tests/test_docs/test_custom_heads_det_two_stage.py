"""docs/custom_heads.md, section det-two-stage: the snippet that gives a
user's own ConvFCBBoxHead subclass DisAlign builds, computes the GRW loss
of the calibrated logits and equals the upstream head at initialisation."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmdisalign.det import DisAlignConvFCBBoxHeadMixin
from mmdisalign.models.calibration import DisAlignCalibration

C = 3
SMALL = dict(
    in_channels=4,
    roi_feat_size=2,
    conv_out_channels=8,
    fc_out_channels=6,
    num_classes=C)


@pytest.fixture
def snippet(exec_doc_snippet):
    init_default_scope('mmdet')
    return exec_doc_snippet('custom_heads.md', 'det-two-stage')


def build(name, **kwargs):
    head = MODELS.build(dict(SMALL, type=name, **kwargs))
    head.init_weights()
    return head


def test_snippet_builds_and_is_identity_at_init(snippet):
    ours_cls = snippet['DisAlignShared2ConvSplitBBoxHead']
    assert issubclass(ours_cls, DisAlignConvFCBBoxHeadMixin)
    assert issubclass(ours_cls, snippet['Shared2ConvSplitBBoxHead'])
    torch.manual_seed(0)
    plain = build('Shared2ConvSplitBBoxHead')
    ours = build('DisAlignShared2ConvSplitBBoxHead')
    assert isinstance(ours.calibration, DisAlignCalibration)
    # The confidence feature is the cls branch's FC output (6-d), not the
    # reg branch's.
    assert ours.calibration.in_channels == 6
    result = ours.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    x = torch.randn(5, 4, 2, 2)
    z_ref, d_ref = plain(x)
    z, d = ours(x)
    assert z.shape == (5, C + 1) and d.shape == (5, 4 * C)
    assert torch.equal(z, z_ref) and torch.equal(d, d_ref)

    # Away from the identity: zhat_c = z_c + sigma * beta_c with sigma from
    # the cls branch feature; the background column unchanged.
    h = x
    for conv in plain.shared_convs:
        h = conv(h)
    h = plain.cls_convs[0](h).flatten(1)
    feats = F.relu(plain.cls_fcs[0](h))
    calib = ours.calibration
    with torch.no_grad():
        calib.beta.copy_(torch.tensor([1.0, -2.0, 3.0]))
        calib.confidence_layer.weight.fill_(0.3)
    sigma = torch.sigmoid(0.3 * feats.sum(1, keepdim=True))
    z, _ = ours(x)
    expected = z_ref.clone()
    expected[:, :C] += sigma * torch.tensor([1.0, -2.0, 3.0])
    assert torch.allclose(z, expected, rtol=1e-5, atol=1e-5)


def test_snippet_grw_loss_of_calibrated_logits(snippet):
    counts = [100, 10, 1]
    torch.manual_seed(1)
    head = build(
        'DisAlignShared2ConvSplitBBoxHead',
        loss_cls=dict(
            type='GRWCrossEntropyLoss',
            class_freq=counts,
            rho=0.8,
            num_classes=C,
            with_background=True))
    with torch.no_grad():
        head.calibration.alpha.copy_(torch.tensor([0.5, -0.5, 1.0]))
        head.calibration.beta.copy_(torch.tensor([0.2, 0.4, -0.3]))
    x = torch.randn(6, 4, 2, 2)
    cls_score, bbox_pred = head(x)
    labels = torch.tensor([0, 1, 2, 3, 3, 1])
    losses = head.loss(cls_score, bbox_pred, torch.zeros(6, 5), labels,
                       torch.ones(6), torch.zeros(6, 4), torch.zeros(6, 4))
    raw = [n**-0.8 for n in counts]
    weights = torch.tensor([C * r / sum(raw) for r in raw] + [1.0])
    ce = F.cross_entropy(cls_score, labels, reduction='none')
    w = weights[labels]
    assert torch.allclose(losses['loss_cls'], (w * ce).sum() / w.sum())
    losses['loss_cls'].backward()
    assert head.calibration.alpha.grad.abs().sum() > 0
    assert head.calibration.confidence_layer.weight.grad is not None
