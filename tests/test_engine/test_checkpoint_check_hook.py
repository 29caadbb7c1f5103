"""CheckpointCheckHook's helpers: which keys a checkpoint must hold for
the calibration, and which run wrote a checkpoint (the tools tests in
tests/test_tools/test_checkpoint_safety.py run the hook itself)."""
import pytest
import torch.nn as nn

from mmdisalign.engine.hooks import CheckpointCheckHook
from mmdisalign.engine.hooks.checkpoint_check_hook import (calibration_keys,
                                                           checkpoint_origin)
from mmdisalign.models.calibration import (DisAlignCalibration,
                                           LogitAdjustCalibration,
                                           TauNormCalibration)


def _model(calibration):
    model = nn.Module()
    model.head = nn.Module()
    model.head.fc = nn.Linear(4, 3)
    model.head.calibration = calibration
    return model


def test_calibration_keys():
    keys = calibration_keys(
        _model(DisAlignCalibration(num_classes=3, in_channels=4)))
    assert keys == [
        'head.calibration.alpha', 'head.calibration.beta',
        'head.calibration.confidence.weight',
        'head.calibration.confidence.bias'
    ]
    # Post-hoc calibrations learn nothing: a stage-1 checkpoint fits them.
    assert calibration_keys(_model(TauNormCalibration(num_classes=3))) == []
    assert calibration_keys(
        _model(LogitAdjustCalibration(num_classes=3, class_freq=[3, 2,
                                                                 1]))) == []
    assert calibration_keys(_model(nn.Identity())) == []


def test_checkpoint_origin():
    meta = dict(
        experiment_name='resnet18_fmnist_20261204_203321', epoch=30, iter=3510)
    assert checkpoint_origin(meta) == (
        "run 'resnet18_fmnist_20261204_203321' (config 'resnet18_fmnist'), "
        'epoch 30, iter 3510')
    assert checkpoint_origin({}) == 'an unknown run'
    assert checkpoint_origin(None) == (
        'a checkpoint without mmengine meta information')


def test_mode_is_checked():
    with pytest.raises(ValueError, match="mode must be one of"):
        CheckpointCheckHook('val')
