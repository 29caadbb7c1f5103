"""Stop a run whose class-frequency files list other classes, or another
class order, than its data sets."""
from typing import Any, List, Tuple

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mmdisalign.utils.class_freq import check_class_order, load_class_freq_meta
from mmdisalign.utils.misc import unwrap_datasets

__all__ = ['ClassFreqCheckHook', 'class_freq_users', 'check_class_freq_files']


def class_freq_users(model: nn.Module) -> List[Tuple[str, str]]:
    """``(module name, file)`` of every module of ``model`` that reads a
    class-frequency file (``GRWCrossEntropyLoss``,
    ``LogitAdjustCalibration``: a ``class_freq_file`` attribute)."""
    users = []
    for name, module in model.named_modules():
        path = getattr(module, 'class_freq_file', None)
        if isinstance(path, str):
            users.append((name, path))
    return users


def _describe(dataset: Any, split: str) -> str:
    ann_file = getattr(dataset, 'ann_file', None)
    name = type(dataset).__name__
    return (f'the {split} dataset {name}(ann_file={ann_file!r})'
            if ann_file else f'the {split} dataset {name}')


def check_class_freq_files(model: nn.Module,
                           dataset: Any,
                           split: str,
                           logger: Any = None) -> None:
    """Check every class-frequency file of ``model`` against
    ``metainfo['classes']`` of ``dataset`` (each inner data set of a
    wrapper) with :func:`~mmdisalign.utils.class_freq.check_class_order`.

    Args:
        model (nn.Module): The bare model.
        dataset: The data set of ``split``.
        split (str): 'train', 'val' or 'test', for messages.
        logger (logging.Logger, optional): Gets the warning for a file or
            data set without names. Defaults to None.
    """
    files = {}
    for module, path in class_freq_users(model):
        files.setdefault(path, []).append(module)
    if not files:
        return
    for inner in unwrap_datasets(dataset):
        names = getattr(inner, 'metainfo', {}).get('classes')
        where = _describe(inner, split)
        for path, modules in files.items():
            file_classes = load_class_freq_meta(path)['classes']
            check_class_order(file_classes, names,
                              f'{path!r} (used by {", ".join(modules)})',
                              where, logger)


@HOOKS.register_module()
class ClassFreqCheckHook(Hook):
    """Check the class order of every class-frequency file of the model
    against ``metainfo['classes']`` of the data sets.

    Once per split, before training (train and validation sets),
    validation and testing: the names of the file must be the data set's
    classes in the data set's order (case and outer spaces aside), else the
    run stops naming the first index that differs and both names. A file
    or a data set without names is accepted with a logged warning that the
    order cannot be checked. ``DisAlignFreezeHook`` runs the same check on
    the training set, so a stage 2 needs no extra hook; this one is for
    runs without it (post-hoc calibrations evaluated by tools/test.py,
    validation and test sets). See docs/grw_loss.md.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._checked = set()

    def before_train(self, runner) -> None:
        self._check(runner, 'train', runner.train_dataloader.dataset)
        if runner.val_loop is not None:  # built by Runner.train()
            self.before_val(runner)

    def before_val(self, runner) -> None:
        self._check(runner, 'val', runner.val_loop.dataloader.dataset)

    def before_test(self, runner) -> None:
        self._check(runner, 'test', runner.test_loop.dataloader.dataset)

    def _check(self, runner, split: str, dataset: Any) -> None:
        if split in self._checked:
            return
        self._checked.add(split)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        check_class_freq_files(model, dataset, split, runner.logger)
