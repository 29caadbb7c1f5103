"""Stage 2 under mixed precision: calibration and GRW loss in float32.

Under autocast (mmengine's ``AmpOptimWrapper``) the frozen network and the
classifier run in bfloat16 / float16; ``BaseCalibration.forward`` and
``GRWCrossEntropyLoss.forward`` turn autocast off and compute in float32
(docs/performance.md, "Mixed precision"). Checked here on the CPU with
``torch.autocast('cpu')`` for the three tasks' shapes: classification
``(N, K)``, segmentation ``(N, K, H, W)`` with a dense (per-pixel) sigma
and ignored pixels, detection ``(N, K + 1)`` with the uncalibrated
background column and label weights.
"""
import pytest
import torch
import torch.nn as nn

from mmdisalign.models import DisAlignCalibration, GRWCrossEntropyLoss

K, C, N = 6, 16, 32
COUNTS = [400, 200, 90, 40, 12, 5]
DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)
#: Largest difference to float32 of the calibrated logits (relative to
#: their largest magnitude) and of the loss and the calibration's gradients
#: (relative), for a classifier that runs in bfloat16 / float16 in front.
#: Measured (torch 2.14, CPU): bfloat16 up to 4.2e-3 / 8.3e-4 / 1.2e-2,
#: float16 up to 4.7e-4 / 2.5e-4 / 3.7e-4.
TOLERANCE = dict(
    bf16=dict(logits=1e-2, loss=3e-3, grad=3e-2),
    fp16=dict(logits=1.5e-3, loss=1e-3, grad=2e-3))


def _case(task, seed=0):
    """Classifier, calibration, loss and a batch of one task's shapes."""
    gen = torch.Generator().manual_seed(seed)
    dense = task == 'seg'
    columns = K + 1 if task == 'det' else K
    calib = DisAlignCalibration(
        num_classes=K,
        in_channels=C,
        dense=dense,
        uncalibrated_columns=(-1, ) if task == 'det' else ())
    classifier = nn.Conv2d(C, columns, 1) if dense else nn.Linear(C, columns)
    loss = GRWCrossEntropyLoss(
        COUNTS,
        rho=1.2,
        with_background=task == 'det',
        avg_mode='valid' if dense else 'weighted',
        ignore_index=255)
    with torch.no_grad():  # a trained-looking calibration, logits ~ +-10
        for param in (*calib.parameters(), *classifier.parameters()):
            param.copy_(torch.randn(param.shape, generator=gen))
        calib.alpha.mul_(0.1)
        classifier.weight.mul_(2.0)
    shape = (N, C, 8, 8) if dense else (N, C)
    feats = torch.randn(shape, generator=gen).relu()
    label_shape = (N, 8, 8) if dense else (N, )
    labels = torch.randint(0, columns, label_shape, generator=gen)
    extra = {}
    if dense:
        labels[:, :2] = 255  # ignored pixels
    if task == 'det':
        extra['weight'] = torch.rand(N, generator=gen)
        extra['avg_factor'] = float(N)
    return classifier, calib, loss, feats, labels, extra


def _step(case, dtype=None):
    """Calibrated logits, loss and gradients of the calibration, under
    ``torch.autocast('cpu', dtype)`` (None: float32)."""
    classifier, calib, loss_fn, feats, labels, extra = case
    calib.zero_grad()
    with torch.autocast(
            'cpu', dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = classifier(feats)
        calibrated = calib(logits, feats)
        loss = loss_fn(calibrated, labels, **extra)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in calib.named_parameters()}
    return logits, calibrated, loss, grads


@pytest.mark.parametrize('task', ['cls', 'seg', 'det'])
@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_float32_region_adds_no_error(task, amp):
    """Given the low-precision logits and features, the calibration and the
    loss under autocast equal, bit for bit, their float32 computation on
    the same values: AMP rounds the network in front, nothing here."""
    classifier, calib, loss_fn, feats, labels, extra = _case(task)
    with torch.no_grad():
        low_logits = classifier(feats).to(DTYPES[amp])
    low_feats = feats.to(DTYPES[amp])
    with torch.autocast('cpu', dtype=DTYPES[amp]):
        calibrated = calib(low_logits, low_feats)
        loss = loss_fn(calibrated, labels, **extra)
        # a low-precision score reaching the loss directly is upcast too
        loss_low = loss_fn(low_logits, labels, **extra)
    ref = calib(low_logits.float(), low_feats.float())
    assert calibrated.dtype == loss.dtype == loss_low.dtype == torch.float32
    torch.testing.assert_close(calibrated, ref, rtol=0, atol=0)
    torch.testing.assert_close(
        loss, loss_fn(ref, labels, **extra), rtol=0, atol=0)
    torch.testing.assert_close(
        loss_low, loss_fn(low_logits.float(), labels, **extra), rtol=0, atol=0)
    # What the region protects: the calibration's own change of the logits
    # computed in the low precision loses a visible part of it.
    sigma = calib.get_confidence(low_feats.float()).to(DTYPES[amp])
    alpha = calib._to_logit_columns(calib.alpha.detach(), low_logits)
    beta = calib._to_logit_columns(calib.beta.detach(), low_logits)
    naive = low_logits * (1 + sigma * alpha.to(DTYPES[amp])) + sigma * beta.to(
        DTYPES[amp])
    change = ref - low_logits.float()
    naive_error = (naive.float() - low_logits.float() - change).abs().max()
    assert naive_error > 1e-3 * change.abs().max()


@pytest.mark.parametrize('task', ['cls', 'seg', 'det'])
@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_within_tolerance_of_float32(task, amp):
    """The whole classifier -> calibration -> loss step under autocast
    against float32: calibrated logits, loss and the calibration's
    gradients within :data:`TOLERANCE`."""
    case = _case(task)
    ref_logits, ref_calibrated, ref_loss, ref_grads = _step(case)
    logits, calibrated, loss, grads = _step(case, DTYPES[amp])
    assert logits.dtype == DTYPES[amp]  # the classifier did run in AMP
    assert calibrated.dtype == loss.dtype == torch.float32
    tol = TOLERANCE[amp]
    scale = ref_calibrated.abs().max()
    logit_err = (calibrated - ref_calibrated).abs().max() / scale
    loss_err = ((loss - ref_loss).abs() / ref_loss.abs()).item()
    assert logit_err <= tol['logits'], logit_err
    assert loss_err <= tol['loss'], loss_err
    for name, ref in ref_grads.items():
        err = (grads[name] - ref).norm() / ref.norm()
        assert err <= tol['grad'], (name, err)
    if task == 'det':  # the background column passes through unchanged
        torch.testing.assert_close(
            calibrated[:, -1], logits[:, -1].float(), rtol=0, atol=0)


def test_float64_without_autocast_is_untouched():
    """Without autocast nothing is cast: float64 stays float64."""
    classifier, calib, loss_fn, feats, labels, _ = _case('cls')
    calib.double()
    out = calib(classifier.double()(feats.double()), feats.double())
    assert out.dtype == loss_fn(out, labels).dtype == torch.float64
