"""Stop a run that loaded the wrong kind of checkpoint for what it does."""
import re
from typing import Any, Dict, List

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import nn

from mmdisalign.compat import TRUST_HINT, UnsafeCheckpointError
from mmdisalign.models.calibration import is_calibration
from mmdisalign.utils.misc import listed
from ..stage1_check import checkpoint_shapes, model_key

__all__ = ['CheckpointCheckHook', 'calibration_keys', 'checkpoint_origin']

MODES = ('train', 'test')


def calibration_keys(model: nn.Module) -> List[str]:
    """Model keys of the learned parameters of every calibration module
    (``BaseCalibration``); buffers are exempt (derived from the config)."""
    keys = []
    for name, module in model.named_modules():
        if is_calibration(module):
            keys += [
                model_key(f'{name}.{p}') for p, _ in module.named_parameters()
            ]
    return keys


def checkpoint_origin(meta: Any) -> str:
    """Which run wrote a checkpoint, from its ``meta`` (mmengine stores the
    experiment name: config name + start time, epoch and iteration)."""
    if not isinstance(meta, dict):
        return 'a checkpoint without mmengine meta information'
    name = meta.get('experiment_name')
    parts = []
    if isinstance(name, str):
        config = re.sub(r'_\d{8}_\d{6}$', '', name)
        parts.append(f'run {name!r} (config {config!r})')
    for key in ('epoch', 'iter'):
        if key in meta:
            parts.append(f'{key} {meta[key]}')
    return ', '.join(parts) if parts else 'an unknown run'


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Check the checkpoint of ``load_from`` / ``resume`` against its use,
    once, right after it is read (``after_load_checkpoint``), before mmengine
    copies weights or optimizer state.

    - ``mode='train'`` with ``resume``: a checkpoint without the model's
      calibration parameters is a stage-1 checkpoint given to ``--resume``
      (mmengine would fail on the optimizer's parameter groups): error
      saying that ``load_from`` was meant. A checkpoint whose ``meta`` holds
      ``config`` (mmengine's ``Runner.resume`` executes that text as Python)
      is refused unless ``trusted``.
    - ``mode='test'``: a checkpoint without the calibration parameters of a
      DisAlign model would be evaluated with an untrained calibration: error
      naming the missing keys and the run that wrote the checkpoint, unless
      ``allow_uncalibrated`` (then a warning).

    ``tools/train.py`` and ``tools/test.py`` register it.

    Args:
        mode (str): ``'train'`` or ``'test'``.
        allow_uncalibrated (bool): Test a checkpoint without calibration
            parameters. Defaults to False.
        trusted (bool): The checkpoints are trusted. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 mode: str,
                 allow_uncalibrated: bool = False,
                 trusted: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        self.mode = mode
        self.allow_uncalibrated = allow_uncalibrated
        self.trusted = trusted

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        cfg = getattr(runner, 'cfg', None) or {}
        source = cfg.get('load_from') or 'the latest checkpoint of work_dir'
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else {}
        resume = self.mode == 'train' and bool(cfg.get('resume', False))
        if resume and not self.trusted and isinstance(meta, dict) \
                and 'config' in meta:
            raise UnsafeCheckpointError(
                f'Refusing to resume from {source!r}: its meta holds '
                "'config', a config text that mmengine's Runner.resume runs "
                "as Python (checkpoints of mmengine's Runner store "
                f"'cfg' instead). {TRUST_HINT}")
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        required = calibration_keys(model)
        if not required:
            return
        loaded = checkpoint_shapes(checkpoint)
        missing = [k for k in required if k not in loaded]
        if not missing:
            return
        origin = checkpoint_origin(meta)
        what = (f'{len(missing)} of the {len(required)} calibration '
                f'parameters of the model are not in the checkpoint: '
                f'{listed(missing)}. It was written by {origin}, a model '
                'without this calibration (a stage-1 checkpoint?)')
        if resume:
            raise ValueError(
                f'--resume / resume=True with {source!r}: {what}. Resuming '
                'continues the run that wrote the checkpoint. To start '
                'stage 2 from stage-1 weights, give them as `load_from` '
                f"(load_from = {source!r}, resume = False; on the command "
                'line: no --resume, or --resume without a path, which '
                'falls back to load_from while the work dir has no '
                'checkpoint).')
        if self.mode != 'test':
            return
        if self.allow_uncalibrated:
            runner.logger.warning(
                f'Testing {source!r} without a trained calibration '
                f'(--allow-uncalibrated): {what}. The calibration keeps '
                'the initial values of its config.')
            return
        raise ValueError(
            f'tools/test.py: {source!r} does not fit this DisAlign config: '
            f'{what}. Test the stage-2 checkpoint (work_dirs/<stage-2 '
            'run>/...), or this checkpoint with the config it was trained '
            'with; to evaluate the model with its initial calibration '
            'anyway, pass --allow-uncalibrated.')
