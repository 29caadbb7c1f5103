"""Stage 2 of DisAlign: freeze what stage 1 learned, train the calibration."""
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Pattern, Sequence

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.parallel import DistributedDataParallel

from mmdisalign.models.calibration import is_calibration
from mmdisalign.utils.misc import listed
from ..ddp_rewrap import rewrap_ddp
from ..stage1_check import check_stage1_weights, checkpoint_shapes, model_key
from .class_freq_check_hook import check_class_freq_files

__all__ = ['DisAlignFreezeHook', 'FreezePlan', 'plan_freeze']

#: Norm layers whose mode the hook manages; any module with
#: ``running_mean`` and ``running_var`` buffers (mmcv's SyncBN) counts too.
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)

#: Frozen keys a stage-1 checkpoint may lack: ``num_batches_tracked`` only
#: matters to a BN in train mode with ``momentum=None``.
_ALWAYS_ALLOWED_MISSING = (re.compile(r'(.*\.)?num_batches_tracked$'), )

#: Key of ``checkpoint['meta']`` marking a checkpoint of a stage-2 run.
STAGE2_META_KEY = 'mmdisalign_stage2'


def _is_norm(module: nn.Module) -> bool:
    if isinstance(module, NORM_TYPES):
        return True
    buffers = dict(module.named_buffers(recurse=False))
    return 'running_mean' in buffers and 'running_var' in buffers


def _patterns(patterns: Any) -> List[Pattern]:
    """A str or a sequence of str as compiled regular expressions."""
    if isinstance(patterns, str):
        patterns = [patterns]
    return [re.compile(p) for p in patterns]


def _unmatched(patterns: Sequence[Pattern], names: Iterable[str]) -> List[str]:
    """The patterns (``re.match``) that match none of ``names``."""
    names = list(names)
    return [p.pattern for p in patterns if not any(map(p.match, names))]


def _within(name: str, prefixes: Sequence[str]) -> bool:
    """Whether dotted ``name`` lies inside a module named in ``prefixes``."""
    return any(p == '' or name == p or name.startswith(p + '.')
               for p in prefixes)


@dataclass
class FreezePlan:
    """What stage 2 trains, freezes and must load, by name.

    ``required`` maps every tensor the stage-1 checkpoint must supply
    (frozen parameters, persistent buffers of frozen norm layers) to its
    shape; ``numel`` gives the size of every parameter.
    """
    trainable: List[str] = field(default_factory=list)
    frozen: List[str] = field(default_factory=list)
    calibrations: List[str] = field(default_factory=list)
    frozen_norms: Dict[str, nn.Module] = field(default_factory=dict)
    required: Dict[str, tuple] = field(default_factory=dict)
    numel: Dict[str, int] = field(default_factory=dict)

    @property
    def num_trainable_elements(self) -> int:
        return sum(self.numel[n] for n in self.trainable)

    @property
    def num_frozen_elements(self) -> int:
        return sum(self.numel[n] for n in self.frozen)


def plan_freeze(model: nn.Module, trainable: Sequence = ()) -> FreezePlan:
    """Decide what stage 2 trains, without changing the model.

    A parameter stays trainable if it requires grad and belongs to a
    calibration module or matches (``re.match``) a ``trainable`` pattern.
    A norm layer is frozen unless it lies in a calibration, owns a
    trainable parameter or (parameter-free) matches a pattern.

    Args:
        model (nn.Module): The bare (unwrapped) model.
        trainable (Sequence[re.Pattern]): Further parameters to train.
            Defaults to ().

    Returns:
        FreezePlan: The decision.
    """
    plan = FreezePlan()
    plan.calibrations = [
        name for name, module in model.named_modules()
        if is_calibration(module)
    ]
    for name, param in model.named_parameters():
        plan.numel[name] = param.numel()
        kept = _within(name, plan.calibrations)
        kept = kept or any(p.match(name) for p in trainable)
        if kept and param.requires_grad:
            plan.trainable.append(name)
            continue
        plan.frozen.append(name)
        if not kept:
            plan.required[name] = tuple(param.shape)

    unmatched = _unmatched(trainable, plan.numel)
    if unmatched:
        raise ValueError(
            f'DisAlignFreezeHook: the `trainable` pattern(s) {unmatched} '
            f'match no parameter of {type(model).__name__} (patterns are '
            'matched with re.match against full parameter names, e.g. '
            f'{list(plan.numel)[:5]}).')
    if not plan.trainable:
        raise ValueError(
            f'DisAlignFreezeHook: nothing to train in {type(model).__name__}. '
            f'It has {len(plan.calibrations)} calibration module(s) '
            f'{plan.calibrations} with no parameter that requires grad, and '
            'the `trainable` patterns '
            f'{[p.pattern for p in trainable]} select none either. Put a '
            'learnable calibration (e.g. DisAlignCalibration or '
            'LWSCalibration) in the head, or name the parameters to retrain '
            "in `trainable` (e.g. trainable=['head.fc'] for cRT). "
            'TauNormCalibration and LogitAdjustCalibration learn nothing and '
            'need no stage-2 training.')

    trainable_set = set(plan.trainable)
    for name, module in model.named_modules():
        if not _is_norm(module) or _within(name, plan.calibrations):
            continue
        prefix = f'{name}.' if name else ''
        own = [prefix + n for n, _ in module.named_parameters(recurse=False)]
        if own:
            frozen = not any(n in trainable_set for n in own)
        else:
            frozen = not any(
                p.match(name) or p.match(name + '.') for p in trainable)
        if not frozen:
            continue
        plan.frozen_norms[name] = module
        persistent = module.state_dict(keep_vars=True)
        for bname, buf in module.named_buffers(recurse=False):
            if buf is not None and bname in persistent:
                plan.required[prefix + bname] = tuple(buf.shape)
    return plan


@HOOKS.register_module()
class DisAlignFreezeHook(Hook):
    """Stage 2 of DisAlign: train the calibration, freeze all the rest.

    In ``before_train`` (after ``load_from`` / ``resume``): freeze, check
    that the stage-1 checkpoint supplied every frozen tensor, put the frozen
    norm layers in eval mode (again before every iteration) and rebuild the
    DDP wrapper. During training: stop at the first non-finite loss, refuse
    non-finite checkpoints, and check that no calibration's sigma collapsed
    to 0 (once per epoch or ``sigma_check_interval`` iterations; a warning,
    then a ``RuntimeError`` at the end of training). See docs/stage2.md.

    Args:
        trainable (Sequence[str]): Regular expressions (``re.match``, full
            parameter names of the bare model) of further parameters to
            train, e.g. ``['head.fc']`` for cRT. Each must match.
            Defaults to ().
        freeze_norm (bool): Keep the frozen norm layers in eval mode.
            Defaults to True.
        check_stage1 (bool): Stop when no checkpoint was loaded or it lacks
            frozen tensors or has other shapes. Defaults to True.
        allow_missing (Sequence[str]): Regular expressions of frozen keys
            the checkpoint may lack (shapes still checked). Defaults to ().
        reinit (Sequence[str]): Regular expressions of stage-1 checkpoint
            keys dropped before loading, so they keep ``init_weights``
            (cRT: ``['head.fc']``); they must be trainable and each must
            match. A checkpoint of a stage-2 run (``meta`` marked by this
            hook) loads whole. Defaults to ().
        sigma_check_interval (int): Iteration-based loops: check the mean
            sigma of the calibrations every this many iterations (and at
            the last); epoch-based loops check once per epoch.
            Defaults to 500.
        min_mean_sigma (float): A calibration whose mean sigma over a
            check window is below this is collapsed: sigmoid saturated at
            0, the calibration is switched off and the model predicts like
            stage 1. Each check logs a warning for it; at the end of
            training, if it is still collapsed, the hook raises a
            ``RuntimeError``. Defaults to 1e-3.
        allow_collapsed_calibration (bool): Only warn about a collapsed
            calibration, do not raise at the end of training.
            Defaults to False.
    """

    priority = 'NORMAL'

    def __init__(self,
                 trainable: Sequence[str] = (),
                 freeze_norm: bool = True,
                 check_stage1: bool = True,
                 allow_missing: Sequence[str] = (),
                 reinit: Sequence[str] = (),
                 sigma_check_interval: int = 500,
                 min_mean_sigma: float = 1e-3,
                 allow_collapsed_calibration: bool = False) -> None:
        if int(sigma_check_interval) < 1:
            raise ValueError('DisAlignFreezeHook: sigma_check_interval must '
                             f'be >= 1, but got {sigma_check_interval}')
        self.sigma_check_interval = int(sigma_check_interval)
        self.min_mean_sigma = float(min_mean_sigma)
        self.allow_collapsed_calibration = allow_collapsed_calibration
        #: ``{module name: mean sigma}`` of the calibrations found
        #: collapsed at their last check.
        self.collapsed: Dict[str, float] = {}
        self._sigma_modules: Dict[str, nn.Module] = {}
        self.trainable = _patterns(trainable)
        self.allow_missing = _patterns(allow_missing)
        self.reinit = _patterns(reinit)
        self.freeze_norm = freeze_norm
        self.check_stage1 = check_stage1
        #: Checkpoint keys dropped by ``reinit`` at the last load.
        self.reinitialized: List[str] = []
        self.plan: Optional[FreezePlan] = None
        self._loaded_shapes: Optional[Dict[str, Optional[tuple]]] = None
        self._loaded_meta: Dict[str, Any] = {}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the checkpoint's shapes (before the weights are copied);
        apply ``reinit``."""
        meta = checkpoint.get('meta')
        self._loaded_meta = meta if isinstance(meta, dict) else {}
        self.reinitialized = []
        if self.reinit:
            self._drop_reinit_keys(runner, checkpoint)
        self._loaded_shapes = checkpoint_shapes(checkpoint)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to save non-finite trained tensors; mark the checkpoint
        as written by stage 2 (a resumed run then loads it whole)."""
        self._check_saved_tensors(runner, checkpoint)
        meta = checkpoint.setdefault('meta', {})
        meta.setdefault(
            STAGE2_META_KEY,
            dict(path='runner', reinit=[p.pattern for p in self.reinit]))

    def _drop_reinit_keys(self, runner, checkpoint: dict) -> None:
        if STAGE2_META_KEY in self._loaded_meta:
            runner.logger.info(
                'DisAlignFreezeHook: the checkpoint was written by a stage-2 '
                'run; loading it whole (no re-initialisation of '
                f'{[p.pattern for p in self.reinit]}).')
            return
        state = checkpoint.get('state_dict', checkpoint)
        keys = list(state)
        unmatched = _unmatched(self.reinit, map(model_key, keys))
        for key in keys:
            if any(p.match(model_key(key)) for p in self.reinit):
                del state[key]
                self.reinitialized.append(model_key(key))
        if unmatched:
            raise ValueError(
                f'DisAlignFreezeHook: the `reinit` pattern(s) {unmatched} '
                'match no key of the stage-1 checkpoint '
                f'({self._source(runner)}); its keys look like '
                f'{keys[:5]}.')
        runner.logger.info(
            'DisAlignFreezeHook: re-initialising (not loading from the '
            f'stage-1 checkpoint): {", ".join(self.reinitialized)}')

    def before_train(self, runner) -> None:
        """Check the class order of the frequency files, freeze, check the
        stage-1 weights, set norm modes, re-wrap DDP."""
        wrapped = is_model_wrapper(runner.model)
        model = runner.model.module if wrapped else runner.model
        dataset = getattr(
            getattr(runner, 'train_dataloader', None), 'dataset', None)
        if dataset is not None:
            check_class_freq_files(model, dataset, 'train', runner.logger)
        plan = plan_freeze(model, self.trainable)
        frozen = set(plan.frozen)
        wrong = [k for k in self.reinitialized if k in frozen]
        if wrong:
            raise ValueError(
                f'DisAlignFreezeHook: {wrong} are re-initialised (`reinit`) '
                'but frozen: they would stay random. Add them to '
                '`trainable` too.')
        if self.check_stage1:
            self._check_stage1(runner, plan)

        params = dict(model.named_parameters())
        for name in plan.frozen:
            params[name].requires_grad_(False)
        self.plan = plan
        for module in model.modules():
            if is_calibration(module):
                # What trains is decided: the calibration's check of a
                # training step without this hook is satisfied.
                module.freeze_planned = True
        self._sigma_modules = {
            name: module
            for name, module in model.named_modules()
            if callable(getattr(module, 'mean_sigma', None))
        }
        self.collapsed = {}
        self._reset_sigma()
        self._set_norm_modes()

        # Even when nothing changed here: DDP may have registered
        # parameters that something else froze after wrapping.
        if plan.frozen and isinstance(runner.model, DistributedDataParallel):
            if rewrap_ddp(runner):
                runner.logger.info(
                    'DisAlignFreezeHook: rebuilt the '
                    f'{type(runner.model).__name__} wrapper so that it '
                    f'registers only the {len(plan.trainable)} trainable '
                    'tensors.')
        elif plan.frozen and wrapped and runner.distributed:
            runner.logger.warning(
                'DisAlignFreezeHook: runner.model is a '
                f'{type(runner.model).__name__}, which this hook does not '
                'rebuild after freezing; set find_unused_parameters=True in '
                'its config if it is data-parallel.')
        self._log_plan(runner, plan)
        self._check_optimizer(runner, plan, params)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Any = None) -> None:
        """Frozen norm layers back to eval mode (after the loop's
        ``model.train()``)."""
        self._set_norm_modes()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        """Stop at the first non-finite loss. Reads the float that
        mmengine's RuntimeInfoHook (priority VERY_HIGH, before this hook)
        already took from the loss for logging: no host-device sync here.
        """
        buffer = runner.message_hub.log_scalars.get('train/loss')
        if buffer is not None:
            loss = float(buffer.current())
            if not math.isfinite(loss):
                self._raise_non_finite(runner, loss)
        if self._sigma_modules and not self._by_epoch(runner) and (
                self.every_n_train_iters(runner, self.sigma_check_interval)
                or self.is_last_train_iter(runner)):
            self._check_sigma(runner, self._where(runner))

    def after_train_epoch(self, runner) -> None:
        """Check the mean sigma of the calibrations over the epoch."""
        if self._by_epoch(runner):
            self._check_sigma(runner, f'the end of epoch {runner.epoch + 1}')

    def after_train(self, runner) -> None:
        """Raise if a calibration is still collapsed at the end of
        training, unless ``allow_collapsed_calibration``."""
        self._check_sigma(runner, 'the end of training')
        if self.collapsed and not self.allow_collapsed_calibration:
            raise RuntimeError(
                self._collapse_message(runner, self.collapsed,
                                       'the end of training') +
                ' The training ended collapsed: its checkpoints were saved '
                f'(in {runner.work_dir}) but hold a model that predicts like '
                'the stage-1 model. Pass allow_collapsed_calibration=True to '
                'DisAlignFreezeHook to only warn.')

    @staticmethod
    def _by_epoch(runner) -> bool:
        """Whether the loop counts epochs (mmengine's IterBasedTrainLoop
        has ``max_epochs`` too: one big epoch)."""
        train_loop = getattr(runner, 'train_loop', None)
        return (not isinstance(train_loop, IterBasedTrainLoop)
                and getattr(train_loop, 'max_epochs', None) is not None)

    def _reset_sigma(self) -> None:
        for module in self._sigma_modules.values():
            module.reset_sigma_statistic()

    def _check_sigma(self, runner, when: str) -> None:
        """Read the mean sigma of every calibration that tracks it (one
        host-device sync), warn about the collapsed ones, reset."""
        if not self._sigma_modules:
            return
        modules = self._sigma_modules
        device = next(iter(modules.values())).sigma_sum.device
        means = torch.stack(
            [m.mean_sigma().to(device) for m in modules.values()]).tolist()
        self._reset_sigma()
        found = {}
        for name, mean in zip(modules, means):
            if math.isnan(mean):
                continue  # no training forward in this window
            if mean < self.min_mean_sigma:
                found[name] = mean
            else:
                self.collapsed.pop(name, None)
        if found:
            self.collapsed.update(found)
            runner.logger.warning(self._collapse_message(runner, found, when))

    def _lrs(self, runner, module: nn.Module) -> List[float]:
        """The learning rates (``initial_lr`` where a scheduler set it)
        of the optimizer groups holding ``module``'s parameters."""
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if optim_wrapper is None or isinstance(optim_wrapper, dict):
            return []
        wrappers = optim_wrapper.values() if hasattr(
            optim_wrapper, 'optim_wrappers') else [optim_wrapper]
        ids = {id(p) for p in module.parameters()}
        lrs = []
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                if any(id(p) in ids for p in group['params']):
                    lr = group.get('initial_lr', group['lr'])
                    if lr not in lrs:
                        lrs.append(lr)
        return lrs

    def _collapse_message(self, runner, found: Dict[str, float],
                          when: str) -> str:
        parts = []
        for name, mean in found.items():
            lrs = self._lrs(runner, self._sigma_modules[name])
            lr = ('lr ' + ', '.join(f'{lr:g}' for lr in lrs)
                  if lrs else 'an lr not found in the optimizer')
            parts.append(f'{name} (mean sigma {mean:.3g}, trained with {lr})')
        return (
            f'DisAlignFreezeHook: calibration collapsed at {when}: '
            f'{"; ".join(parts)}; the mean sigma over the training '
            'forwards since the previous check is below '
            f'min_mean_sigma={self.min_mean_sigma:g}. sigma = '
            'sigmoid(confidence(x)) is ~0 for every sample: the sigmoid is '
            'saturated, its gradient vanishes, and the calibration is '
            'switched off: the model predicts like the stage-1 model. Lower '
            'the stage-2 learning rate (optim_wrapper.optimizer.lr) and '
            'train again.')

    def _trained_tensors(self, runner) -> Dict[str, torch.Tensor]:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        trainable = set(self.plan.trainable if self.plan else ())
        return {
            name: param.detach()
            for name, param in model.named_parameters() if name in trainable
        }

    @staticmethod
    def _non_finite(tensors: Dict[str, torch.Tensor]) -> List[str]:
        """``'name (n of m values non-finite)'`` for each bad tensor
        (error and checkpoint paths only: this reads the values)."""
        bad = []
        for name, tensor in tensors.items():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad.append(f'{name} ({count} of {tensor.numel()} values '
                           'non-finite)')
        return bad

    @staticmethod
    def _where(runner) -> str:
        """``'iteration 7 (epoch 1)'``, counted from 1 as mmengine logs.
        """
        where = f'iteration {runner.iter + 1}'
        if DisAlignFreezeHook._by_epoch(runner):
            where += f' (epoch {runner.epoch + 1})'
        return where

    def _raise_non_finite(self, runner, loss: float) -> None:
        scalars = runner.message_hub.log_scalars
        terms = []
        for key, buffer in scalars.items():
            if key.startswith('train/loss'):
                value = float(buffer.current())
                if not math.isfinite(value):
                    terms.append(f'{key[len("train/"):]}={value}')
        bad = self._non_finite(self._trained_tensors(runner))
        if bad:
            tensors = ('non-finite trained tensors (after this iteration\'s '
                       f'update): {listed(bad)}')
        else:
            tensors = ('the trained tensors are finite, so the non-finite '
                       'value comes from the logits of the frozen network or '
                       'the loss (check the input data and the stage-1 '
                       'checkpoint)')
        raise FloatingPointError(
            f'DisAlignFreezeHook: stage 2 diverged: the loss is {loss} at '
            f'{self._where(runner)} (non-finite loss terms: '
            f'{", ".join(terms)}); {tensors}. Stopped before a checkpoint '
            'is written with these values. Lower the learning rate '
            '(optim_wrapper.optimizer.lr) or the GRW rho, or add gradient '
            'clipping (optim_wrapper.clip_grad).')

    def _check_saved_tensors(self, runner, checkpoint: dict) -> None:
        """Raise if a trained tensor of the checkpoint (CPU copies: no
        device sync) is non-finite."""
        if self.plan is None:
            return
        state = checkpoint.get('state_dict', {})
        saved = {
            name: state[name]
            for name in self.plan.trainable
            if isinstance(state.get(name), torch.Tensor)
        }
        bad = self._non_finite(saved)
        if bad:
            meta = checkpoint.get('meta', {})
            where = ', '.join(f'{key} {meta[key]}' for key in ('epoch', 'iter')
                              if key in meta)
            raise FloatingPointError(
                'DisAlignFreezeHook: not saving the checkpoint of '
                f'{where}: non-finite trained tensors '
                f'{listed(bad)}. Stage 2 diverged; lower the learning rate '
                '(optim_wrapper.optimizer.lr) or the GRW rho, or add gradient '
                'clipping (optim_wrapper.clip_grad).')

    def _set_norm_modes(self) -> None:
        if self.freeze_norm and self.plan is not None:
            for module in self.plan.frozen_norms.values():
                module.eval()

    def _source(self, runner) -> str:
        """The checkpoint the config loads, for messages."""
        cfg = getattr(runner, 'cfg', None) or {}
        load_from = cfg.get('load_from')
        if cfg.get('resume', False):
            where = (f'resume from {load_from!r}' if load_from else
                     'auto-resume from the latest checkpoint in work_dir '
                     f'{runner.work_dir!r}')
        else:
            where = f'load_from={load_from!r}'
        info = [
            f'{k}={self._loaded_meta[k]!r}'
            for k in ('experiment_name', 'epoch', 'iter')
            if k in self._loaded_meta
        ]
        return where + (f' [{", ".join(info)}]' if info else '')

    def _check_stage1(self, runner, plan: FreezePlan) -> None:
        """Raise unless a checkpoint supplied every frozen tensor."""
        if self._loaded_shapes is None:
            cfg = getattr(runner, 'cfg', None) or {}
            if cfg.get('resume', False) and cfg.get('load_from') is None:
                why = ('resume=True found no checkpoint in work_dir '
                       f'{runner.work_dir!r} and `load_from` is not set')
            else:
                why = ('no checkpoint was loaded: `load_from` is '
                       f'{cfg.get("load_from")!r}')
            raise ValueError(
                f'DisAlignFreezeHook: {why}. Stage 2 needs the stage-1 '
                'weights: set `load_from` to the stage-1 checkpoint (e.g. '
                "load_from = 'work_dirs/<stage-1 run>/epoch_90.pth'). If the "
                'weights reach the model another way (e.g. init_cfg '
                "Pretrained), pass check_stage1=False to the hook.")
        check_stage1_weights(
            plan.required,
            self._loaded_shapes,
            source=self._source(runner),
            allow_missing=self.allow_missing + list(_ALWAYS_ALLOWED_MISSING))

    def _log_plan(self, runner, plan: FreezePlan) -> None:
        norm_state = ('kept in eval mode' if self.freeze_norm else
                      'left in train mode (freeze_norm=False)')
        runner.logger.info(
            f'DisAlignFreezeHook: {len(plan.trainable)} trainable tensors '
            f'({plan.num_trainable_elements} elements), '
            f'{len(plan.frozen)} frozen tensors '
            f'({plan.num_frozen_elements} elements); '
            f'{len(plan.frozen_norms)} norm layers of the frozen part '
            f'{norm_state}; calibration modules: {plan.calibrations}.')
        runner.logger.info('DisAlignFreezeHook: trainable tensors: ' +
                           listed(plan.trainable, 20))

    @staticmethod
    def _check_optimizer(runner, plan: FreezePlan,
                         params: Dict[str, nn.Parameter]) -> None:
        """Warn about trainable parameters no optimizer updates (e.g. left
        out by a ``paramwise_cfg``)."""
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if optim_wrapper is None or isinstance(optim_wrapper, dict):
            return
        # An OptimWrapperDict is a mapping of OptimWrappers.
        wrappers = optim_wrapper.values() if hasattr(
            optim_wrapper, 'optim_wrappers') else [optim_wrapper]
        ids = {
            id(p)
            for wrapper in wrappers
            for group in wrapper.optimizer.param_groups
            for p in group['params']
        }
        orphans = [n for n in plan.trainable if id(params[n]) not in ids]
        if orphans:
            runner.logger.warning(
                'DisAlignFreezeHook: these trainable parameters are not in '
                f'the optimizer and will not be updated: {listed(orphans)}')
