"""Classification stage 2 from cached features (no backbone forward).

Trains what the stage-2 config trains (DisAlign calibration, LWS, cRT's
classifier, ...) with the config's loss, optimiser, schedule, sampler and
batch size on features cached by ``tools/cache_features.py``, and writes a
normal stage-2 checkpoint (``<work-dir>/epoch_<max_epochs>.pth``: the
stage-1 weights plus the trained parameters, under the keys of the
Runner's stage-2 model) for ``tools/test.py``. If ``--cache`` holds no
cache yet, it is extracted first (options as in tools/cache_features.py)::

    python tools/train_cached.py CONFIG --cache work_dirs/cache
    python tools/test.py CONFIG work_dirs/<config>_cached/epoch_10.pth
"""
import argparse
import os
import os.path as osp
import sys
import time

try:
    import mmdisalign  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmdisalign  # noqa: F401

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from cache_features import add_cache_args, load_config  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='stage-2 config')
    parser.add_argument(
        '--cache', required=True, help='cache directory (made if empty)')
    parser.add_argument(
        '--work-dir',
        help='where the checkpoint goes (default: '
        'work_dirs/<config name>_cached)')
    parser.add_argument(
        '--log-interval',
        type=int,
        default=0,
        help='log the loss every N iterations (0: every epoch)')
    add_cache_args(parser)
    args = parser.parse_args(argv)
    from mmengine.logging import MMLogger

    from mmdisalign.cls.cached_stage2 import run_cached_stage2
    cfg = load_config(args)
    work_dir = args.work_dir or osp.join(
        'work_dirs',
        osp.splitext(osp.basename(args.config))[0] + '_cached')
    os.makedirs(work_dir, exist_ok=True)
    MMLogger.get_instance(
        'mmdisalign_cached',
        log_file=osp.join(work_dir, f'{time.strftime("%Y%m%d_%H%M%S")}.log'))
    result = run_cached_stage2(
        cfg,
        args.cache,
        work_dir=work_dir,
        checkpoint=args.checkpoint,
        device=args.device,
        seed=args.seed,
        log_interval=args.log_interval,
        passes=args.passes,
        augment=args.augment,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        log_every=50)
    if result['extraction'] is not None:
        print(f'extracted {args.cache} in '
              f'{result["extraction"]["seconds"]:.1f} s')
    print(f'trained on cached features in {result["seconds"]:.1f} s '
          f'({result["iters"]} iterations); checkpoint: '
          f'{result["checkpoint"]}; {result["total_seconds"]:.1f} s in all')
    return result


if __name__ == '__main__':
    main()
