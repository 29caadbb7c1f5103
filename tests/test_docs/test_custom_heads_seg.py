"""docs/custom_heads.md, section seg: the snippet builds, computes a loss
that reaches the calibration, and is the upstream head at init with the
same weights."""
import torch
from mmengine.structures import PixelData
from mmseg.models.decode_heads import PSPHead
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmdisalign.seg  # noqa: F401

ARGS = dict(
    in_channels=4,
    channels=3,
    pool_scales=(1, 2),
    num_classes=3,
    dropout_ratio=0.0,
    norm_cfg=dict(type='BN'))


def test_psp_snippet(exec_doc_snippet):
    ns = exec_doc_snippet('custom_heads.md', 'seg-psp')
    assert MODELS.get('DisAlignPSPHead') is ns['DisAlignPSPHead']
    torch.manual_seed(0)
    upstream = PSPHead(**ARGS)
    upstream.init_weights()
    head = MODELS.build(dict(type='DisAlignPSPHead', **ARGS))
    head.init_weights()
    result = head.load_state_dict(upstream.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    upstream.eval()
    head.eval()
    inputs = [torch.randn(2, 4, 4, 4)]
    torch.testing.assert_close(head(inputs), upstream(inputs))
    assert head.calibration.in_channels == 3

    # a loss through the upstream loss path reaches the calibration
    head.train()
    for name, param in head.named_parameters():
        param.requires_grad = name.startswith('calibration.')
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 8, 8)))
        samples.append(sample)
    losses = head.loss(inputs, samples, train_cfg={})
    assert torch.isfinite(losses['loss_ce']) and losses['loss_ce'] > 0
    losses['loss_ce'].backward()
    # at the identity init only alpha and beta get a gradient (sigma
    # multiplies alpha * z + beta = 0)
    calib = head.calibration
    assert calib.alpha.grad.abs().sum() > 0 and calib.beta.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in head.named_parameters()
               if not n.startswith('calibration.'))
