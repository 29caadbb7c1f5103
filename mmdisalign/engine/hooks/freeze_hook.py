"""Freeze everything learned in stage 1 and train only the calibration."""
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Pattern, Sequence

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.parallel import DistributedDataParallel

from ..ddp_rewrap import rewrap_ddp
from ..stage1_check import (check_stage1_weights, checkpoint_shapes,
                            model_key)

__all__ = ['DisAlignFreezeHook', 'FreezePlan', 'plan_freeze']

#: Norm layers whose train/eval mode the hook manages. Any other module
#: with ``running_mean`` and ``running_var`` buffers (e.g. mmcv's
#: ``SyncBatchNorm``) counts too.
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)

#: Frozen keys that may be absent from a stage-1 checkpoint without harm:
#: ``num_batches_tracked`` only matters to a BN in train mode with
#: ``momentum=None``, and very old checkpoints lack it.
_ALWAYS_ALLOWED_MISSING = (re.compile(r'(.*\.)?num_batches_tracked$'), )

#: Up to this many trainable tensors are listed by name in the log.
_MAX_NAMES_LOGGED = 20

#: Key of ``checkpoint['meta']`` that marks a checkpoint written by a stage-2
#: run (by this hook, or by the cached-feature stage 2).
STAGE2_META_KEY = 'mmdisalign_stage2'


def _is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer."""
    if isinstance(module, NORM_TYPES):
        return True
    buffers = getattr(module, '_buffers', {})
    return 'running_mean' in buffers and 'running_var' in buffers


def _calibration_predicate() -> Callable[[nn.Module], bool]:
    """Return the "is a calibration module" test of mmdisalign.models.

    Imported lazily so that this module does not depend on the import order
    of the package. Without the calibration module, nothing is a calibration.
    """
    try:
        from mmdisalign.models import calibration
    except ImportError:  # pragma: no cover
        return lambda module: False
    is_calibration = getattr(calibration, 'is_calibration', None)
    if is_calibration is not None:
        return is_calibration
    base = getattr(calibration, 'BaseCalibration', None)
    if base is None:  # pragma: no cover
        return lambda module: False
    return lambda module: isinstance(module, base)


def _compile_patterns(patterns: Any, arg: str) -> List[Pattern]:
    """Compile a str or a sequence of str into regular expressions."""
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)):
        raise TypeError(f'`{arg}` must be a str or a list of str, but got '
                        f'{type(patterns).__name__}: {patterns!r}')
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f'`{arg}` must hold str patterns, but got '
                            f'{type(pattern).__name__}: {pattern!r}')
        try:
            compiled.append(re.compile(pattern))
        except re.error as e:
            raise ValueError(
                f'`{arg}` holds an invalid regular expression {pattern!r}: '
                f'{e}') from e
    return compiled


def _within(name: str, prefixes: Sequence[str]) -> bool:
    """Whether dotted ``name`` lies inside a module named in ``prefixes``."""
    return any(p == '' or name == p or name.startswith(p + '.')
               for p in prefixes)


@dataclass
class FreezePlan:
    """Which tensors of a model stage 2 trains, freezes or must load.

    Attributes:
        trainable (list[str]): Parameters that keep ``requires_grad=True``.
        frozen (list[str]): All other parameters.
        calibrations (list[str]): Names of the calibration modules.
        frozen_norms (dict[str, nn.Module]): Norm layers of the frozen part.
        required (dict[str, tuple]): Shape of every tensor that must come
            from the stage-1 checkpoint: the parameters frozen by the hook
            and the persistent buffers of the frozen norm layers.
        numel (dict[str, int]): Number of elements of every parameter.
    """
    trainable: List[str] = field(default_factory=list)
    frozen: List[str] = field(default_factory=list)
    calibrations: List[str] = field(default_factory=list)
    frozen_norms: Dict[str, nn.Module] = field(default_factory=dict)
    required: Dict[str, tuple] = field(default_factory=dict)
    numel: Dict[str, int] = field(default_factory=dict)

    @property
    def num_trainable_elements(self) -> int:
        """int: Number of trainable parameter elements."""
        return sum(self.numel[n] for n in self.trainable)

    @property
    def num_frozen_elements(self) -> int:
        """int: Number of frozen parameter elements."""
        return sum(self.numel[n] for n in self.frozen)


def plan_freeze(
    model: nn.Module,
    trainable: Sequence[Pattern] = (),
    is_calibration: Optional[Callable[[nn.Module],
                                      bool]] = None) -> FreezePlan:
    """Decide what stage 2 trains, without changing the model.

    A parameter stays trainable if it belongs to a calibration module or its
    full name matches (``re.match``, i.e. anchored at the start) one of the
    ``trainable`` patterns, and it requires grad already. A norm layer is
    part of the frozen part unless it lies inside a calibration module, owns
    a trainable parameter, or (parameter-free) its name matches a pattern.

    Args:
        model (nn.Module): The bare (unwrapped) model.
        trainable (Sequence[re.Pattern]): Extra parameters to keep
            trainable. Defaults to ().
        is_calibration (Callable, optional): Test for calibration modules.
            Defaults to None (the one of ``mmdisalign.models.calibration``).

    Returns:
        FreezePlan: The decision.

    Raises:
        ValueError: If a pattern matches no parameter, or nothing is left to
            train.
    """
    if is_calibration is None:
        is_calibration = _calibration_predicate()
    plan = FreezePlan()
    plan.calibrations = [
        name for name, module in model.named_modules()
        if is_calibration(module)
    ]
    hits = [0] * len(trainable)
    kept = set()
    for name, param in model.named_parameters():
        plan.numel[name] = param.numel()
        matched = False
        for i, pattern in enumerate(trainable):
            if pattern.match(name):
                hits[i] += 1
                matched = True
        if matched or _within(name, plan.calibrations):
            kept.add(name)
            if param.requires_grad:
                plan.trainable.append(name)
                continue
        plan.frozen.append(name)
        if name not in kept:
            plan.required[name] = tuple(param.shape)

    unmatched = [p.pattern for p, n in zip(trainable, hits) if n == 0]
    if unmatched:
        names = list(plan.numel)
        raise ValueError(
            f'DisAlignFreezeHook: the `trainable` pattern(s) {unmatched} '
            f'match no parameter of {type(model).__name__} (patterns are '
            'matched with re.match against full parameter names, e.g. '
            f'{names[:5]}).')
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
        own = [
            f'{name}.{n}' if name else n
            for n, _ in module.named_parameters(recurse=False)
        ]
        if own:
            frozen = not any(n in trainable_set for n in own)
        else:
            frozen = not any(
                p.match(name) or p.match(name + '.') for p in trainable)
        if not frozen:
            continue
        plan.frozen_norms[name] = module
        for bname, buf in module.named_buffers(recurse=False):
            if buf is None or bname in module._non_persistent_buffers_set:
                continue
            plan.required[f'{name}.{bname}' if name else bname] = tuple(
                buf.shape)
    return plan


def _optimizer_param_ids(optim_wrapper: Any) -> Optional[set]:
    """Ids of the parameters an optim wrapper updates (None if unknown)."""
    wrappers = optim_wrapper.values() if hasattr(
        optim_wrapper, 'optim_wrappers') else [optim_wrapper]
    ids = set()
    for wrapper in wrappers:
        optimizer = getattr(wrapper, 'optimizer', None)
        if optimizer is None:
            return None
        for group in optimizer.param_groups:
            ids.update(id(p) for p in group['params'])
    return ids


@HOOKS.register_module()
class DisAlignFreezeHook(Hook):
    """Stage 2 of DisAlign: train the calibration, freeze all the rest.

    In ``before_train`` (after ``load_from``/``resume`` was applied) the hook

    1. sets ``requires_grad=False`` on every parameter except those of the
       calibration modules (subclasses of ``BaseCalibration``) and those
       whose full name matches one of ``trainable`` (``re.match``);
    2. checks that the stage-1 checkpoint supplied every frozen parameter
       and the running statistics of every frozen norm layer, with the right
       shapes (``check_stage1``);
    3. puts the norm layers of the frozen part in eval mode, so that their
       running statistics stay the stage-1 ones; it does it again before
       every iteration, because the train loops call ``model.train()``
       (``IterBasedTrainLoop`` before every iteration, ``EpochBasedTrainLoop``
       before every epoch, and after each validation);
    4. rebuilds the ``DistributedDataParallel`` wrapper, so that DDP
       registers only the trainable parameters (see
       :mod:`mmdisalign.engine.ddp_rewrap`);
    5. logs how many tensors and elements are trainable and frozen.

    The optimizer keeps the frozen parameters in its groups; they never get
    a gradient, so SGD and AdamW skip them (weight decay included).

    Args:
        trainable (Sequence[str]): Regular expressions of further parameters
            to train, matched with ``re.match`` against full parameter names
            of the bare model, e.g. ``['head.fc']`` to retrain a classifier
            (cRT). Every pattern must match at least one parameter.
            Defaults to ().
        freeze_norm (bool): Keep the norm layers of the frozen part in eval
            mode. Norm layers inside trainable parts (e.g. in the
            calibration's confidence branch) stay in train mode. Defaults to
            True.
        check_stage1 (bool): Stop with an error when no checkpoint was loaded
            or when it lacks frozen tensors or has other shapes for them.
            Defaults to True.
        allow_missing (Sequence[str]): Regular expressions (``re.match``) of
            frozen keys that may be absent from the stage-1 checkpoint (their
            shape is still checked when present). Defaults to ().
        reinit (Sequence[str]): Regular expressions (``re.match``) of
            stage-1 checkpoint keys to drop before loading, so that those
            parameters keep the values of ``init_weights`` (e.g.
            ``['head.fc']`` for cRT, which re-initialises the classifier
            before re-training it). They must be trainable. Applied only to
            a stage-1 checkpoint: a checkpoint written by a stage-2 run (a
            resumed run; marked in ``meta['mmdisalign_stage2']``) loads
            whole. Every pattern must match at least one key. Defaults to
            ().

    Examples:
        >>> load_from = 'work_dirs/stage1/epoch_90.pth'
        >>> custom_hooks = [dict(type='DisAlignFreezeHook')]
        >>> # cRT: re-initialise and re-train the classifier
        >>> custom_hooks = [dict(type='DisAlignFreezeHook',
        ...                      trainable=['head.fc'], reinit=['head.fc'])]
    """

    priority = 'NORMAL'

    def __init__(self,
                 trainable: Sequence[str] = (),
                 freeze_norm: bool = True,
                 check_stage1: bool = True,
                 allow_missing: Sequence[str] = (),
                 reinit: Sequence[str] = ()) -> None:
        self.trainable = _compile_patterns(trainable, 'trainable')
        self.allow_missing = _compile_patterns(allow_missing, 'allow_missing')
        self.reinit = _compile_patterns(reinit, 'reinit')
        #: Checkpoint keys dropped by ``reinit`` at the last load.
        self.reinitialized: List[str] = []
        self.freeze_norm = bool(freeze_norm)
        self.check_stage1 = bool(check_stage1)
        self.plan: Optional[FreezePlan] = None
        self._loaded_shapes: Optional[Dict[str, Optional[tuple]]] = None
        self._loaded_meta: Dict[str, Any] = {}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the keys and shapes of the checkpoint being loaded.

        Called by ``Runner.load_checkpoint`` (``load_from`` and ``resume``)
        before it copies the weights into the model.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The loaded checkpoint.
        """
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else {}
        self._loaded_meta = meta if isinstance(meta, dict) else {}
        self.reinitialized = []
        if self.reinit:
            self._drop_reinit_keys(runner, checkpoint)
        self._loaded_shapes = checkpoint_shapes(checkpoint)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Mark the checkpoint as written by stage 2.

        A resumed run then loads it whole (``reinit`` applies to stage-1
        checkpoints only).

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The checkpoint being saved.
        """
        meta = checkpoint.setdefault('meta', {})
        meta.setdefault(
            STAGE2_META_KEY,
            dict(path='runner', reinit=[p.pattern for p in self.reinit]))

    def _drop_reinit_keys(self, runner, checkpoint: dict) -> None:
        """Remove the ``reinit`` keys from a stage-1 checkpoint."""
        if STAGE2_META_KEY in self._loaded_meta:
            runner.logger.info(
                'DisAlignFreezeHook: the checkpoint was written by a stage-2 '
                'run; loading it whole (no re-initialisation of '
                f'{[p.pattern for p in self.reinit]}).')
            return
        state = checkpoint.get('state_dict', checkpoint)
        keys = list(state)
        hits = [0] * len(self.reinit)
        for key in keys:
            bare = model_key(key)
            matched = [i for i, p in enumerate(self.reinit) if p.match(bare)]
            for i in matched:
                hits[i] += 1
            if matched:
                del state[key]
                self.reinitialized.append(bare)
        unmatched = [p.pattern for p, n in zip(self.reinit, hits) if n == 0]
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
        """Freeze, check the stage-1 weights, set norm modes, re-wrap DDP.

        Args:
            runner (Runner): The runner.
        """
        wrapped = is_model_wrapper(runner.model)
        model = runner.model.module if wrapped else runner.model
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
        self._set_norm_modes()

        # Also when nothing changed here: DDP may have registered parameters
        # that something else froze after wrapping; re-wrapping is cheap.
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
        """Put the frozen norm layers back in eval mode.

        The train loops call ``model.train()`` before iterations, and the
        validation loop calls ``model.eval()``; this runs after both and
        right before the forward pass.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch.
            data_batch (Any): The batch. Defaults to None.
        """
        self._set_norm_modes()

    def _set_norm_modes(self) -> None:
        """Switch the frozen norm layers to eval mode (if ``freeze_norm``)."""
        if self.freeze_norm and self.plan is not None:
            for module in self.plan.frozen_norms.values():
                module.eval()

    def _source(self, runner) -> str:
        """Describe the checkpoint the runner loaded or should have loaded."""
        load_from = getattr(runner, '_load_from', None)
        if getattr(runner, '_resume', False):
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
            if getattr(runner, '_resume', False) and getattr(
                    runner, '_load_from', None) is None:
                why = ('resume=True found no checkpoint in work_dir '
                       f'{runner.work_dir!r} and `load_from` is not set')
            else:
                why = ('no checkpoint was loaded: `load_from` is '
                       f'{getattr(runner, "_load_from", None)!r}')
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
            allow_missing=list(self.allow_missing) +
            list(_ALWAYS_ALLOWED_MISSING))

    def _log_plan(self, runner, plan: FreezePlan) -> None:
        """Log the trainable and frozen counts."""
        norm_state = ('kept in eval mode' if self.freeze_norm else
                      'left in train mode (freeze_norm=False)')
        runner.logger.info(
            f'DisAlignFreezeHook: {len(plan.trainable)} trainable tensors '
            f'({plan.num_trainable_elements} elements), '
            f'{len(plan.frozen)} frozen tensors '
            f'({plan.num_frozen_elements} elements); '
            f'{len(plan.frozen_norms)} norm layers of the frozen part '
            f'{norm_state}; calibration modules: {plan.calibrations}.')
        if len(plan.trainable) <= _MAX_NAMES_LOGGED:
            runner.logger.info('DisAlignFreezeHook: trainable tensors: ' +
                               ', '.join(plan.trainable))

    @staticmethod
    def _check_optimizer(runner, plan: FreezePlan,
                         params: Dict[str, nn.Parameter]) -> None:
        """Warn about trainable parameters that no optimizer updates."""
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if optim_wrapper is None or isinstance(optim_wrapper, dict):
            return
        ids = _optimizer_param_ids(optim_wrapper)
        if ids is None:
            return
        orphans = [n for n in plan.trainable if id(params[n]) not in ids]
        if orphans:
            runner.logger.warning(
                'DisAlignFreezeHook: these trainable parameters are not in '
                f'the optimizer and will not be updated: {orphans[:10]}'
                f'{" ..." if len(orphans) > 10 else ""}')
