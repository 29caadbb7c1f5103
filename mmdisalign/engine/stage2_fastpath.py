"""Stage-2 fast path: skip the work that cannot change a stage-2 update.

After :class:`~mmdisalign.engine.hooks.DisAlignFreezeHook` has frozen
everything but the calibration, parts of the training forward produce
nothing the update depends on:

- ``extract_feat``: when the backbone and the neck are entirely frozen, it
  runs under ``torch.no_grad()``. Autograd would record nothing there
  anyway as long as the input does not require grad; this makes sure of it
  (no graph, no saved activations, whatever the input).
- mmseg auxiliary heads (``EncoderDecoder._auxiliary_head_forward_train``):
  an entirely frozen auxiliary head on frozen features gives a loss without
  gradient (the DisAlign configs even set its weight to 0); its forward,
  full-resolution resize and cross-entropy are skipped.
- mmdet mask branch (``StandardRoIHead.mask_loss`` /
  ``CascadeRoIHead.mask_loss``): with the mask RoI extractor and the mask
  head entirely frozen, the mask loss has no gradient; the mask forward,
  the mask targets and the loss are skipped.
- mmdet RPN loss (opt-in, ``skip_rpn_loss=True``): with a frozen RPN only
  its proposals matter; its anchor assignment, sampling and losses are
  skipped and the proposals are made from the same forward with the same
  ``rpn_proposal`` config. The RPN sampler draws random numbers, so this
  shifts the random stream seen by the RoI sampler: the run is then
  equivalent in distribution to the full one, not bitwise equal.

Every other step keeps its numbers: for the same batch and random state the
calibration gets the same gradient, and the loss terms that carry it keep
their values (the skipped terms disappear from the logged loss dict, so the
logged total ``loss`` then counts only the terms with a gradient). A rule is
applied only where its condition holds, judged from ``requires_grad`` after
freezing; anything trainable in a part keeps that part on the full path.

Use it with :func:`enable_stage2_fastpath` (after freezing), or in a config,
after the freeze hook (``import mmdisalign`` registers the hook; the
shipped ADE20K and LVIS stage-2 configs use it)::

    custom_hooks = [
        dict(type='DisAlignFreezeHook'),
        dict(type='DisAlignStage2FastPathHook'),
    ]
"""
import functools
import types
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

__all__ = [
    'Stage2FastPath', 'enable_stage2_fastpath', 'disable_stage2_fastpath',
    'DisAlignStage2FastPathHook'
]

#: Attribute of a patched module that lists the names it overrides.
_PATCHED = '_disalign_fastpath_patched'


@dataclass
class Stage2FastPath:
    """What :func:`enable_stage2_fastpath` did to a model.

    Attributes:
        applied (list[str]): One line per rule applied.
        skipped (list[str]): One line per rule not applied, with the reason.
    """
    applied: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """Both lists in one readable string."""
        parts = ['applied: ' + ('; '.join(self.applied) or 'nothing')]
        if self.skipped:
            parts.append('not applied: ' + '; '.join(self.skipped))
        return ' | '.join(parts)


def _trainable(root: nn.Module, *names: str) -> List[str]:
    """Full names of the parameters under the submodules ``names`` of
    ``root`` (absent ones ignored) that require grad."""
    found = []
    for name in names:
        module = getattr(root, name, None)
        if not isinstance(module, nn.Module):
            continue
        found += [
            f'{name}.{n}' for n, p in module.named_parameters()
            if p.requires_grad
        ]
    return found


def _patch(obj: Any, name: str, func: Callable) -> None:
    """Override method ``name`` of the instance ``obj`` by ``func``."""
    setattr(obj, name, types.MethodType(func, obj))
    patched = obj.__dict__.setdefault(_PATCHED, [])
    if name not in patched:
        patched.append(name)


def _no_grad_extract_feat(model: nn.Module, report: Stage2FastPath) -> None:
    if not callable(getattr(model, 'extract_feat', None)):
        report.skipped.append('extract_feat: the model has none')
        return
    if getattr(model, 'backbone', None) is None:
        report.skipped.append('extract_feat: the model has no backbone')
        return
    live = _trainable(model, 'backbone', 'neck')
    if live:
        report.skipped.append(
            f'extract_feat: {len(live)} trainable backbone/neck tensors '
            f'(e.g. {live[0]})')
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
    if not (getattr(model, 'with_auxiliary_head', False)
            and hasattr(model, '_auxiliary_head_forward_train')):
        return
    live = _trainable(model, 'auxiliary_head')
    if live:
        report.skipped.append(
            f'auxiliary head: {len(live)} trainable tensors (e.g. '
            f'{live[0]})')
        return

    def _auxiliary_head_forward_train(self, inputs, data_samples):
        return dict()

    _patch(model, '_auxiliary_head_forward_train',
           _auxiliary_head_forward_train)
    report.applied.append('frozen auxiliary head(s): forward and loss '
                          'skipped')


def _mmdet_roi_heads():
    """mmdet's RoI head classes whose ``loss`` use ``mask_loss`` as
    ``mask_loss(...)['loss_mask']`` (empty tuple without mmdet)."""
    try:
        from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
    except ImportError:  # pragma: no cover
        return ()
    return (StandardRoIHead, CascadeRoIHead)


def _skip_frozen_mask_branch(model: nn.Module, report: Stage2FastPath) -> None:
    roi_head = getattr(model, 'roi_head', None)
    if roi_head is None or not getattr(roi_head, 'with_mask', False):
        return
    known = _mmdet_roi_heads()
    # Exactly these classes: a subclass may use mask_loss differently.
    if type(roi_head) not in known:
        report.skipped.append(
            f'mask branch: {type(roi_head).__name__} is not one of '
            f'{[c.__name__ for c in known]}')
        return
    live = _trainable(roi_head, 'mask_roi_extractor', 'mask_head')
    if getattr(roi_head, 'share_roi_extractor', False):
        live += _trainable(roi_head, 'bbox_roi_extractor')
    if live:
        report.skipped.append(
            f'mask branch: {len(live)} trainable tensors (e.g. {live[0]})')
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
    live = _trainable(model, 'rpn_head')
    if live:
        report.skipped.append(
            f'RPN loss: {len(live)} trainable tensors (e.g. {live[0]})')
        return

    def loss_and_predict(self, x, batch_data_samples, proposal_cfg=None):
        metas = [s.metainfo for s in batch_data_samples]
        outs = self(x)
        results = self.predict_by_feat(
            *outs, batch_img_metas=metas, cfg=proposal_cfg, rescale=False)
        return dict(), results

    _patch(rpn_head, 'loss_and_predict', loss_and_predict)
    report.applied.append('frozen RPN: losses skipped, proposals only '
                          '(changes the random stream of the RoI sampler)')


def enable_stage2_fastpath(model: nn.Module,
                           skip_rpn_loss: bool = False) -> Stage2FastPath:
    """Apply the stage-2 fast path to an already frozen model.

    Call it after freezing (``DisAlignFreezeHook.before_train``). It only
    overrides methods of this model instance (undo with
    :func:`disable_stage2_fastpath`).

    Args:
        model (nn.Module): The bare or wrapped stage-2 model.
        skip_rpn_loss (bool): Also skip the loss of a frozen mmdet RPN
            (see the module docstring). Defaults to False.

    Returns:
        Stage2FastPath: What was applied and what was not, and why.
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
    """Remove every override :func:`enable_stage2_fastpath` installed.

    Args:
        model (nn.Module): The bare or wrapped model.
    """
    if is_model_wrapper(model):
        model = model.module
    for module in model.modules():
        for name in module.__dict__.pop(_PATCHED, []):
            module.__dict__.pop(name, None)


@HOOKS.register_module()
class DisAlignStage2FastPathHook(Hook):
    """Apply :func:`enable_stage2_fastpath` when stage-2 training starts.

    Put it after :class:`DisAlignFreezeHook` (its priority,
    ``'BELOW_NORMAL'``, runs it after a ``'NORMAL'`` freeze hook). It
    logs what it applied and removes the overrides after training, so
    validation and testing are untouched.

    Args:
        skip_rpn_loss (bool): Also skip the loss of a frozen mmdet RPN
            (equivalent in distribution, not bitwise: see
            :mod:`mmdisalign.engine.stage2_fastpath`). Defaults to False.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, skip_rpn_loss: bool = False) -> None:
        self.skip_rpn_loss = bool(skip_rpn_loss)
        self.report: Optional[Stage2FastPath] = None

    def before_train(self, runner) -> None:
        """Install the overrides on the (frozen) model.

        Args:
            runner (Runner): The runner.
        """
        self.report = enable_stage2_fastpath(runner.model, self.skip_rpn_loss)
        runner.logger.info('DisAlignStage2FastPathHook: ' +
                           self.report.summary())

    def after_train(self, runner) -> None:
        """Remove the overrides.

        Args:
            runner (Runner): The runner.
        """
        disable_stage2_fastpath(runner.model)
