"""tools/cache_features.py: the frozen network compiled by torch.compile.

``FrozenFeatures`` runs ``model.extract_feat`` compiled (inductor) for the
full batches and eagerly for a batch of another shape; where
``torch.compile`` raises, it logs the reason and runs eagerly.
"""
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger


class TinyNet(nn.Module):
    """conv - BN (eval) - ReLU - global pooling, as a frozen backbone and
    neck give it: ``extract_feat`` returns ``((N, D), )``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
        self.bn.eval()

    def extract_feat(self, inputs):
        return (self.bn(self.conv(inputs)).relu().mean((2, 3)), )


@pytest.fixture
def frozen_features(load_tool):
    return load_tool('cache_features').FrozenFeatures


@pytest.fixture
def log_records():
    """Records of mmengine's current logger (``print_log(logger=
    'current')``)."""
    records = []

    class Collect(logging.Handler):

        def emit(self, record):
            records.append(record)

    logger = MMLogger.get_current_instance()
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_compiled_features_equal_eager(frozen_features):
    torch.manual_seed(0)
    model = TinyNet()
    features = frozen_features(model)
    batches = [torch.randn(6, 1, 10, 10) for _ in range(2)]
    last = torch.randn(4, 1, 10, 10)  # another shape: runs eagerly
    with torch.no_grad():
        for x in batches:
            torch.testing.assert_close(
                features(x)[0], model.extract_feat(x)[0], rtol=1e-5, atol=1e-5)
        assert features.is_compiled and features.reason is None
        torch.testing.assert_close(
            features(last)[0], model.extract_feat(last)[0], rtol=0, atol=0)
    assert not frozen_features(model, compile=False).is_compiled


def test_compile_unavailable_logs_reason(frozen_features, monkeypatch,
                                         log_records):

    def unavailable(*args, **kwargs):
        raise RuntimeError('torch.compile is not supported here\ndetails')

    monkeypatch.setattr(torch, 'compile', unavailable)
    model = TinyNet()
    features = frozen_features(model)
    assert not features.is_compiled
    assert features.reason == ('RuntimeError: torch.compile is not '
                               'supported here')
    x = torch.randn(3, 1, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(
            features(x)[0], model.extract_feat(x)[0], rtol=0, atol=0)
    messages = [r.getMessage() for r in log_records]
    assert messages == [
        'feature extraction runs eagerly: torch.compile failed '
        '(RuntimeError: torch.compile is not supported here)'
    ]


def test_compile_failing_on_first_batch_falls_back(frozen_features,
                                                   monkeypatch, log_records):
    """Compilation is lazy: a missing C++ compiler shows on the first
    call. That batch and all later ones run eagerly."""
    calls = []

    def broken(fn, **kwargs):

        def compiled(*args):
            calls.append(args)
            raise OSError('no C++ compiler found (set CXX)')

        return compiled

    monkeypatch.setattr(torch, 'compile', broken)
    model = TinyNet()
    features = frozen_features(model)
    assert features.is_compiled  # not known before the first batch
    x = torch.randn(3, 1, 10, 10)
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(
                features(x)[0], model.extract_feat(x)[0], rtol=0, atol=0)
    assert len(calls) == 1 and not features.is_compiled
    assert features.reason == 'OSError: no C++ compiler found (set CXX)'
    assert len(log_records) == 1
    assert 'no C++ compiler found' in log_records[0].getMessage()
