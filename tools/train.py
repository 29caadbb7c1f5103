"""Train a model from an OpenMMLab 2.0 config (mmpretrain, mmseg, mmdet).

The command line of the upstream ``tools/train.py`` scripts::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--no-validate] [--no-pin-memory]
        [--no-persistent-workers] [--trust-checkpoint]
        [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}] [--local-rank N]

Several processes: ``tools/dist_train.sh`` (torchrun) or
``tools/slurm_train.sh`` (srun); both also work on a CPU-only machine,
where the processes talk through gloo (see :mod:`mmdisalign.engine.dist`).

``--resume`` without a checkpoint resumes from the latest checkpoint of the
work dir; when there is none yet, the run starts from ``load_from`` (the
stage-1 checkpoint of a DisAlign stage 2) instead of from nothing, so the
same command can start and restart a preemptible job.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, from the latest '
        'checkpoint in the work dir (or from load_from if there is none)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic mixed precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        'auto_scale_lr.base_batch_size of the config')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='set pin_memory=False in the data loaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='set persistent_workers=False in the data loaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of the config, as key=value pairs merged '
        'into it, e.g. train_cfg.max_epochs=2 or key="[a,b]" for lists')
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


def _set_work_dir(cfg, args):
    """Command line > config > ./work_dirs/<config name>."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def _set_amp(cfg):
    optim_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_type == 'AmpOptimWrapper':
        print_log('AMP is already enabled in the config.', logger='current')
        return
    if optim_type != 'OptimWrapper':
        raise ValueError(
            '--amp replaces optim_wrapper.type OptimWrapper by '
            f'AmpOptimWrapper, but the config uses {optim_type!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def _set_resume(cfg, resume):
    if resume is None:
        return
    if resume != 'auto':
        cfg.resume = True
        cfg.load_from = resume
        return
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest is None and cfg.get('load_from'):
        print_log(
            f'--resume: no checkpoint in {cfg.work_dir} yet, so the run '
            f'starts from load_from={cfg.load_from}.',
            logger='current')
        cfg.resume = False
    else:
        cfg.resume = True
        cfg.load_from = None


def _set_dataloaders(cfg, args):
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is None:
            continue
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers:
            loader.persistent_workers = False


def merge_args(cfg, args):
    """Apply the command line to the config (in place) and return it."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    _set_work_dir(cfg, args)
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.amp:
        _set_amp(cfg)
    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr')
        if not auto_scale_lr or 'base_batch_size' not in auto_scale_lr:
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr = dict('
                'base_batch_size=N) in the config (N: the total batch size '
                'the learning rate was tuned for)')
        cfg.auto_scale_lr.enable = True
    _set_resume(cfg, args.resume)
    _set_dataloaders(cfg, args)
    if args.trust_checkpoint:
        cfg[TRUST_KEY] = True
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    cfg = merge_args(cfg, args)
    setup_cpu_dist(cfg)
    trusted = cfg.get(TRUST_KEY, False)
    with trusted_checkpoints(trusted):
        runner = build_tool_runner(
            cfg, CheckpointCheckHook('train', trusted=trusted))
        runner.train()
    return runner


if __name__ == '__main__':
    main()
