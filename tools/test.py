"""Test (and evaluate) a checkpoint with an OpenMMLab 2.0 config.

The command line of the upstream ``tools/test.py`` scripts::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out OUT]
        [--show] [--show-dir DIR] [--wait-time S] [--interval N] [--tta]
        [--allow-uncalibrated] [--trust-checkpoint]
        [--cfg-options KEY=VALUE ...] [--launcher ...] [--local-rank N]

``--out`` and ``--show-dir`` follow the library of the config
(``default_scope``), as its own test script does:

- mmpretrain and mmdet: ``--out`` is a ``.pkl`` file with the predictions
  (mmdet's ``DumpDetResults`` encodes masks as RLE); ``--show-dir`` is a
  folder under ``<work-dir>/<timestamp>/`` for the painted images (mmdet)
  or the folder itself (mmpretrain).
- mmseg: ``--out`` is a folder for the predicted label maps (the
  evaluator's ``output_dir``); ``--show-dir`` is the visualizer's
  ``save_dir``.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import ConfigDict

try:
    import mmdisalign  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmdisalign  # noqa: F401

from mmdisalign.compat import TRUST_KEY, trusted_checkpoints
from mmdisalign.engine.dist import setup_cpu_dist
from mmdisalign.engine.hooks import CheckpointCheckHook
from mmdisalign.engine.runner import build_tool_runner
from mmdisalign.utils.config import CfgOptionsAction, load_config

PICKLE_SUFFIXES = ('.pkl', '.pickle')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a '
                                     'checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics in')
    parser.add_argument(
        '--out',
        help='where to dump the predictions: a .pkl file (mmpretrain, '
        'mmdet) or a folder of label maps (mmseg)')
    parser.add_argument(
        '--show', action='store_true', help='show the painted predictions')
    parser.add_argument(
        '--show-dir', help='save the painted predictions in this folder')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per shown image')
    parser.add_argument(
        '--interval',
        type=int,
        default=None,
        help='paint every n-th test sample (mmpretrain, default 1) or '
        'batch (mmseg, default: the hook\'s, 50)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation with the tta_model and tta_pipeline of '
        'the config')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of the config, as key=value pairs merged '
        'into it, e.g. test_dataloader.batch_size=4')
    parser.add_argument(
        '--allow-uncalibrated',
        action='store_true',
        help='test a checkpoint that lacks the calibration parameters of '
        'the DisAlign model of the config (the calibration keeps its '
        'initial values); refused otherwise')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load checkpoints with weights_only=False (can run code stored '
        'in them: only for files you trust); same as trust_checkpoint=True '
        'in the config')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun exports LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _scope(cfg):
    return cfg.get('default_scope') or 'mmengine'


def _enable_visualization(cfg, args):
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks or hooks['visualization'] is None:
        raise ValueError(
            '--show / --show-dir need a visualization hook in '
            "default_hooks, e.g. default_hooks = dict(visualization=dict("
            "type='SegVisualizationHook')) (DetVisualizationHook for mmdet, "
            'VisualizationHook for mmpretrain)')
    hook = hooks['visualization']
    scope = _scope(cfg)
    if scope == 'mmpretrain':
        hook.update(
            enable=True,
            show=args.show,
            wait_time=args.wait_time,
            interval=args.interval or 1,
            out_dir=args.show_dir)
        return
    hook['draw'] = True
    if args.interval is not None and scope == 'mmseg':
        hook['interval'] = args.interval
    if args.show:
        hook.update(show=True, wait_time=args.wait_time)
    if args.show_dir:
        if scope == 'mmseg':
            cfg.visualizer['save_dir'] = args.show_dir
        else:
            hook['test_out_dir'] = args.show_dir


def _enable_tta(cfg):
    if not cfg.get('tta_model') or not cfg.get('tta_pipeline'):
        raise ValueError('--tta needs tta_model and tta_pipeline in the '
                         'config')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def _check_out(cfg, out):
    if _scope(cfg) == 'mmseg':
        evaluator = cfg.test_evaluator
        if not isinstance(evaluator, dict):
            raise ValueError('--out with mmseg needs a single test_evaluator '
                             f'(a dict), not {type(evaluator).__name__}')
        evaluator['output_dir'] = out
        evaluator['keep_results'] = True
    elif not out.endswith(PICKLE_SUFFIXES):
        raise ValueError(f'--out must be a .pkl file, got {out!r}')


def merge_args(cfg, args):
    """Apply the command line to the config (in place) and return it."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.trust_checkpoint:
        cfg[TRUST_KEY] = True
    if args.show or args.show_dir:
        _enable_visualization(cfg, args)
    if args.tta:
        _enable_tta(cfg)
    if args.out is not None:
        _check_out(cfg, args.out)
    return cfg


def _add_dump_metric(runner, cfg, out):
    if _scope(cfg) == 'mmseg':
        return
    if _scope(cfg) == 'mmdet':
        from mmdet.evaluation import DumpDetResults as Dump
    else:
        from mmengine.evaluator import DumpResults as Dump
    runner.test_evaluator.metrics.append(Dump(out_file_path=out))


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    cfg = merge_args(cfg, args)
    setup_cpu_dist(cfg)
    trusted = cfg.get(TRUST_KEY, False)
    with trusted_checkpoints(trusted):
        runner = build_tool_runner(
            cfg,
            CheckpointCheckHook(
                'test',
                allow_uncalibrated=args.allow_uncalibrated,
                trusted=trusted))
        if args.out is not None:
            _add_dump_metric(runner, cfg, args.out)
        return runner.test()


if __name__ == '__main__':
    main()
