"""ClassFreqCheckHook: the class order of the frequency files of a model
(GRW loss, logit adjustment) against the data sets of every split."""
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmengine.config import Config

from mmdisalign.engine.hooks import ClassFreqCheckHook, class_freq_users
from mmdisalign.models.calibration import LogitAdjustCalibration
from mmdisalign.models.losses import GRWCrossEntropyLoss
from mmdisalign.utils.class_freq import save_class_freq

CLASSES = ('cat', 'dog', 'bag')
LOGIT_ADJUST_CONFIG = (
    'configs/cls/fashion_mnist_lt/'
    'resnet18-s3w16_1xb128_fashion-mnist-lt_logit-adjust.py')


class Data:
    """A data set with ``metainfo`` (or none)."""

    def __init__(self, classes=CLASSES):
        self.metainfo = {} if classes is None else dict(classes=classes)


class Logger:
    """Collects warnings."""

    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def runner(model, train=None, test=None):
    logger = Logger()
    return SimpleNamespace(
        model=model,
        logger=logger,
        train_dataloader=SimpleNamespace(dataset=train),
        val_loop=None,
        test_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=test)))


def logit_adjust_model(path):
    model = nn.Module()
    model.head = nn.Module()
    model.head.calibration = LogitAdjustCalibration(3, class_freq=path)
    return model


def test_logit_adjustment_with_reversed_file_stops_before_testing(tmp_path):
    path = str(tmp_path / 'freq.json')
    save_class_freq(path, [3, 2, 1], classes=CLASSES[::-1])
    model = logit_adjust_model(path)
    assert class_freq_users(model) == [('head.calibration', path)]
    with pytest.raises(
            ValueError,
            match=r"^class 0 is 'cat' in the test dataset Data but 'bag' in "
            r"the class-frequency file '.*freq\.json' \(used by "
            r'head\.calibration\)'):
        ClassFreqCheckHook().before_test(runner(model, test=Data()))


def test_grw_losses_sharing_a_file_and_wrapped_data(tmp_path):
    path = str(tmp_path / 'freq.json')
    save_class_freq(path, [3, 2, 1], classes=['cat', 'bag', 'dog'])
    model = nn.Module()
    model.a = GRWCrossEntropyLoss(path)
    model.b = GRWCrossEntropyLoss(path)
    model.c = GRWCrossEntropyLoss([3, 2, 1])  # a list: nothing to check
    wrapped = SimpleNamespace(datasets=[Data(), Data()])
    with pytest.raises(
            ValueError,
            match=r"^class 1 is 'dog' in the train dataset Data but 'bag' .* "
            r'\(used by a, b\)'):
        ClassFreqCheckHook().before_train(runner(model, train=wrapped))


def test_file_without_names_is_accepted_with_a_warning(tmp_path):
    path = str(tmp_path / 'freq.json')
    save_class_freq(path, [3, 2, 1])
    run = runner(logit_adjust_model(path), test=Data())
    ClassFreqCheckHook().before_test(run)
    assert len(run.logger.warnings) == 1
    assert run.logger.warnings[0].startswith(
        f"the class-frequency file '{path}' (used by head.calibration) "
        'has no "classes": the order of its counts cannot be checked '
        'against the test dataset Data')
    # The same names pass without a warning.
    save_class_freq(path, [3, 2, 1], classes=CLASSES)
    run = runner(logit_adjust_model(path), test=Data())
    ClassFreqCheckHook().before_test(run)
    assert run.logger.warnings == []


def test_shipped_post_hoc_config_registers_the_hook():
    cfg = Config.fromfile(LOGIT_ADJUST_CONFIG)
    assert [h['type'] for h in cfg.custom_hooks] == ['ClassFreqCheckHook']
