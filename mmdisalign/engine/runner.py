"""The Runner of mmdisalign's tools (tools/train.py, tools/test.py)."""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .hooks import DataSizeCheckHook

__all__ = ['build_tool_runner']


def build_tool_runner(cfg, checkpoint_check: Hook) -> Runner:
    """The Runner of ``cfg`` as mmengine's tools build it (``runner_type``
    honoured), with the checks every tool of mmdisalign registers: the
    data-set size check and ``checkpoint_check`` (the tool's
    ``CheckpointCheckHook``); logs which mmdisalign runs.

    Build it inside :func:`mmdisalign.compat.trusted_checkpoints` when the
    config trusts its checkpoints (the Runner loads them later, in the same
    block).
    """
    import mmdisalign
    runner = (
        Runner.from_cfg(cfg)
        if 'runner_type' not in cfg else RUNNERS.build(cfg))
    runner.register_hook(DataSizeCheckHook())
    runner.register_hook(checkpoint_check)
    runner.logger.info(f'mmdisalign {mmdisalign.__version__} from '
                       f'{osp.dirname(osp.abspath(mmdisalign.__file__))}')
    return runner
