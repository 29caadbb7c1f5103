"""The running mean sigma of DisAlignCalibration (training forwards only,
non-persistent buffers), checked by DisAlignFreezeHook."""
import pytest
import torch

from mmdisalign.models import DisAlignCalibration


def _calib(dense=False, seed=0):
    calib = DisAlignCalibration(3, 4, dense=dense)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        calib.beta.copy_(torch.randn(3, generator=gen))
        calib.confidence.weight.normal_(generator=gen)
        calib.confidence.bias.fill_(0.3)
    return calib


def _sigma(calib, feats):
    return torch.sigmoid(calib.confidence(feats)).detach()


@pytest.mark.parametrize('shape, value', [('2d', 0.64087), ('dense', 0.58507),
                                          ('anchors', 0.54671)])
def test_mean_sigma_of_training_forwards(shape, value):
    dense = shape != '2d'
    calib = _calib(dense)
    gen = torch.Generator().manual_seed(1)
    assert torch.isnan(calib.mean_sigma())  # no forward yet
    means = []
    for n in (2, 5, 3):
        if shape == '2d':
            feats = torch.randn(n, 4, generator=gen)
            logits = torch.randn(n, 3, generator=gen)
        else:
            feats = torch.randn(n, 4, 3, 2, generator=gen)
            logits_shape = (n, 3, 3, 2) if shape == 'dense' else (n, 3, 2, 3,
                                                                  2)
            logits = torch.randn(logits_shape, generator=gen)
        calib(logits, feats).sum().backward()
        # per-sample / per-pixel sigma, averaged per forward
        means.append(_sigma(calib, feats).mean())
    expected = torch.stack(means).mean()
    assert calib.sigma_count.item() == 3
    assert torch.allclose(calib.mean_sigma(), expected, atol=1e-6)
    assert float(expected) == pytest.approx(value, abs=1e-5)

    # evaluation forwards do not change it
    calib.eval()
    with torch.no_grad():
        calib(logits, feats)
    calib(logits, feats)
    assert calib.sigma_count.item() == 3
    assert torch.allclose(calib.mean_sigma(), expected, atol=1e-6)

    calib.reset_sigma_statistic()
    assert calib.sigma_count.item() == 0 and calib.sigma_sum.item() == 0
    assert torch.isnan(calib.mean_sigma())


def test_statistic_changes_no_output_and_no_state_dict():
    calib = _calib()
    keys = ['alpha', 'beta', 'confidence.weight', 'confidence.bias']
    assert list(calib.state_dict()) == keys
    assert {'sigma_sum', 'sigma_count'} <= dict(calib.named_buffers()).keys()
    feats, logits = torch.randn(4, 4), torch.randn(4, 3)
    train_out = calib(logits, feats)
    calib.eval()
    assert torch.equal(calib(logits, feats), train_out)
    assert list(calib.state_dict()) == keys
    # a checkpoint without the buffers loads strictly
    fresh = _calib(seed=5)
    fresh.load_state_dict(calib.state_dict())
    assert fresh.sigma_count.item() == 0


def test_collapsed_confidence_gives_mean_sigma_near_zero():
    calib = _calib()
    with torch.no_grad():
        calib.confidence.bias.fill_(-30.0)
    feats = torch.randn(8, 4, generator=torch.Generator().manual_seed(2))
    calib(torch.randn(8, 3), feats)
    assert calib.mean_sigma().item() < 1e-10


def test_statistic_under_torch_compile():
    calib = _calib(dense=True)
    ref = _calib(dense=True)
    feats = torch.randn(2, 4, 3, 2, generator=torch.Generator().manual_seed(4))
    logits = torch.randn(2, 3, 3, 2)
    torch._dynamo.reset()
    compiled = torch.compile(calib, backend='eager', fullgraph=True)
    for _ in range(2):
        out = compiled(logits, feats)
        assert torch.equal(out, ref(logits, feats))
    torch._dynamo.reset()
    assert calib.sigma_count.item() == 2
    assert torch.allclose(calib.mean_sigma(), ref.mean_sigma())
    assert torch.allclose(calib.mean_sigma(), _sigma(ref, feats).mean())
