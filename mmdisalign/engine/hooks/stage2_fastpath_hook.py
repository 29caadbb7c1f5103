"""Stage-2 fast path: skip the work that cannot change a stage-2 update
(frozen backbone, auxiliary heads, mask branch, RPN loss). See
docs/performance.md."""
import functools
import types
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

__all__ = [
    'Stage2FastPath', 'enable_stage2_fastpath', 'disable_stage2_fastpath',
    'DisAlignStage2FastPathHook'
]

#: Attribute of a patched module listing the methods it overrides.
_PATCHED = '_disalign_fastpath_patched'


@dataclass
class Stage2FastPath:
    """What :func:`enable_stage2_fastpath` applied, and what not and why."""
    applied: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = ['applied: ' + ('; '.join(self.applied) or 'nothing')]
        if self.skipped:
            parts.append('not applied: ' + '; '.join(self.skipped))
        return ' | '.join(parts)


def _frozen(report: Stage2FastPath, what: str, root: nn.Module,
            names: Sequence[str]) -> bool:
    """Whether the submodules ``names`` of ``root`` are all frozen; if not,
    add ``what`` (with ``{}``: the number of trainable tensors) to
    ``report.skipped``."""
    live = []
    for name in names:
        module = getattr(root, name, None)
        if isinstance(module, nn.Module):
            live += [
                f'{name}.{n}' for n, p in module.named_parameters()
                if p.requires_grad
            ]
    if live:
        report.skipped.append(f'{what.format(len(live))} (e.g. {live[0]})')
    return not live


def _patch(obj: nn.Module, name: str, func: Callable) -> None:
    setattr(obj, name, types.MethodType(func, obj))
    patched = obj.__dict__.setdefault(_PATCHED, [])
    if name not in patched:
        patched.append(name)


def _no_loss(self, *args, **kwargs) -> dict:
    return dict()


def _no_grad_extract_feat(model: nn.Module, report: Stage2FastPath) -> None:
    if not callable(getattr(model, 'extract_feat', None)):
        report.skipped.append('extract_feat: the model has none')
        return
    if getattr(model, 'backbone', None) is None:
        report.skipped.append('extract_feat: the model has no backbone')
        return
    what = 'extract_feat: {} trainable backbone/neck tensors'
    if not _frozen(report, what, model, ('backbone', 'neck')):
        return
    original = type(model).extract_feat

    @functools.wraps(original)
    def extract_feat(self, *args, **kwargs):
        with torch.no_grad():
            return original(self, *args, **kwargs)

    _patch(model, 'extract_feat', extract_feat)
    report.applied.append('extract_feat (frozen backbone/neck) under '
                          'torch.no_grad()')


def _skip_frozen_aux_heads(model: nn.Module, report: Stage2FastPath) -> None:
    if not getattr(model, 'with_auxiliary_head', False):
        return
    what = 'auxiliary head: {} trainable tensors'
    if not _frozen(report, what, model, ['auxiliary_head']):
        return
    heads = model.auxiliary_head
    for head in heads if isinstance(heads, nn.ModuleList) else [heads]:
        _patch(head, 'loss', _no_loss)
    report.applied.append('frozen auxiliary head(s): forward and loss '
                          'skipped')


def _skip_frozen_mask_branch(model: nn.Module, report: Stage2FastPath) -> None:
    roi_head = getattr(model, 'roi_head', None)
    if roi_head is None or not getattr(roi_head, 'with_mask', False):
        return
    # Only mmdet models get here; exactly these classes use mask_loss as
    # `mask_loss(...)['loss_mask']` (a subclass may use it differently).
    from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
    known = (StandardRoIHead, CascadeRoIHead)
    if type(roi_head) not in known:
        report.skipped.append(
            f'mask branch: {type(roi_head).__name__} is not one of '
            f'{[c.__name__ for c in known]}')
        return
    names = ['mask_roi_extractor', 'mask_head']
    if getattr(roi_head, 'share_roi_extractor', False):
        names.append('bbox_roi_extractor')
    if not _frozen(report, 'mask branch: {} trainable tensors', roi_head,
                   names):
        return

    def mask_loss(self, *args, **kwargs):
        return dict(loss_mask=dict())

    _patch(roi_head, 'mask_loss', mask_loss)
    report.applied.append('frozen mask branch: mask forward, targets and '
                          'loss skipped')


def _skip_frozen_rpn_loss(model: nn.Module, report: Stage2FastPath) -> None:
    rpn_head = getattr(model, 'rpn_head', None)
    if rpn_head is None or not hasattr(rpn_head, 'loss_and_predict'):
        return
    if not _frozen(report, 'RPN loss: {} trainable tensors', model,
                   ['rpn_head']):
        return

    def loss_and_predict(self, x, batch_data_samples, proposal_cfg=None):
        metas = [s.metainfo for s in batch_data_samples]
        results = self.predict_by_feat(
            *self(x), batch_img_metas=metas, cfg=proposal_cfg, rescale=False)
        return dict(), results

    _patch(rpn_head, 'loss_and_predict', loss_and_predict)
    report.applied.append('frozen RPN: losses skipped, proposals only '
                          '(changes the random stream of the RoI sampler)')


def enable_stage2_fastpath(model: nn.Module,
                           skip_rpn_loss: bool = False) -> Stage2FastPath:
    """Apply the stage-2 fast path to an already frozen model.

    Args:
        model (nn.Module): The bare or wrapped stage-2 model.
        skip_rpn_loss (bool): Also skip the loss of a frozen mmdet RPN.
            Defaults to False.

    Returns:
        Stage2FastPath: What was applied, and what not and why.
    """
    if is_model_wrapper(model):
        model = model.module
    disable_stage2_fastpath(model)
    report = Stage2FastPath()
    _no_grad_extract_feat(model, report)
    _skip_frozen_aux_heads(model, report)
    _skip_frozen_mask_branch(model, report)
    if skip_rpn_loss:
        _skip_frozen_rpn_loss(model, report)
    return report


def disable_stage2_fastpath(model: nn.Module) -> None:
    """Remove every override :func:`enable_stage2_fastpath` installed."""
    if is_model_wrapper(model):
        model = model.module
    for module in model.modules():
        for name in module.__dict__.pop(_PATCHED, []):
            module.__dict__.pop(name, None)


@HOOKS.register_module()
class DisAlignStage2FastPathHook(Hook):
    """Apply :func:`enable_stage2_fastpath` when stage-2 training starts and
    remove it after training (validation and testing are untouched).

    Its priority, ``'BELOW_NORMAL'``, runs it after the freeze hook.

    Args:
        skip_rpn_loss (bool): Also skip the loss of a frozen mmdet RPN
            (equivalent in distribution, not bitwise). Defaults to False.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, skip_rpn_loss: bool = False) -> None:
        self.skip_rpn_loss = skip_rpn_loss
        self.report: Optional[Stage2FastPath] = None

    def before_train(self, runner) -> None:
        self.report = enable_stage2_fastpath(runner.model, self.skip_rpn_loss)
        runner.logger.info('DisAlignStage2FastPathHook: ' +
                           self.report.summary())

    def after_train(self, runner) -> None:
        disable_stage2_fastpath(runner.model)
