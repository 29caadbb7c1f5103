"""Classification stage 2: full forward (Runner) vs cached features.

On Fashion-MNIST-LT, from one stage-1 checkpoint, for each seed:

- full path: mmengine's Runner trains the stage-2 config (every image
  read, decoded, augmented and sent through the frozen network every
  epoch);
- cached path: ``cache_features`` (one pass of the frozen network over the
  training set, test pipeline) + ``train_cached`` (the same loss,
  optimiser, schedule, sampler and batch size on the cached features),
  which writes a normal stage-2 checkpoint.

Both checkpoints are then evaluated the same way (Runner.test, the
config's LongTailAccuracy on the balanced test set). Printed: the times of
both paths (end to end: the cached one includes the extraction), their
ratio, and overall / many / medium / few-shot accuracy of both, per seed
and as the mean over the seeds. Target: >= 10x, accuracies within 0.3
points.

Usage::

    python benchmarks/cls_cached_stage2.py \
        --stage1 work_dirs/main_job/stage1/epoch_30.pth
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
CONFIG_DIR = osp.join(ROOT, 'configs', 'cls', 'fashion_mnist_lt')
DEFAULT_CONFIG = osp.join(
    CONFIG_DIR, 'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py')
DEFAULT_STAGE1 = osp.join(ROOT, 'work_dirs', 'main_job', 'stage1',
                          'epoch_30.pth')
METRICS = ('top1', 'many', 'medium', 'few')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument(
        '--stage1',
        default=DEFAULT_STAGE1,
        help='stage-1 checkpoint (e.g. from tools/run_main_job.py)')
    parser.add_argument(
        '--data-root', default=osp.join(ROOT, 'data', 'fashion_mnist_lt'))
    parser.add_argument('--seeds', default='0,1,2')
    parser.add_argument(
        '--workers',
        type=int,
        default=0,
        help='data workers of both paths (0: loading in the main process, '
        'the fastest here for both: 28 x 28 images decode in ~0.07 ms '
        'while handing each sample tensor from a worker process costs more)')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads of both paths')
    parser.add_argument(
        '--also-full-workers',
        type=int,
        default=1,
        help='also time the full path of the first seed with this many '
        'workers (the main job\'s setting); -1: skip')
    parser.add_argument('--passes', type=int, default=1)
    parser.add_argument('--augment', action='store_true')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument(
        '--work-dir', default=osp.join(ROOT, 'work_dirs', 'bench_cached'))
    parser.add_argument('--json', help='also write the results here')
    return parser.parse_args(argv)


def stage2_config(args, seed: int, work_dir: str):
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{osp.basename(work_dir)}'
    cfg.load_from = args.stage1
    cfg.randomness = dict(seed=seed, deterministic=False)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = args.data_root
        loader.dataset.classes = osp.join(args.data_root, 'classes.txt')
        loader.num_workers = args.workers
        loader.persistent_workers = args.workers > 0
    cfg.test_evaluator.data_root = args.data_root
    cfg.test_evaluator.out_dir = osp.join(work_dir, 'eval')
    loss = cfg.model.head.get('loss', {})
    if 'class_freq' in loss:
        loss['class_freq'] = osp.join(args.data_root, 'class_freq.json')
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    return cfg


def evaluate(cfg, checkpoint: str) -> dict:
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.work_dir = osp.join(cfg.work_dir, 'test')
    metrics = Runner.from_cfg(cfg).test()
    return {k: float(metrics[f'lt/{k}']) for k in METRICS}


def full_path(args, seed: int, workers: Optional[int] = None) -> dict:
    from mmengine.runner import Runner
    args = copy.copy(args)
    if workers is not None:
        args.workers = workers
    cfg = stage2_config(
        args, seed, osp.join(args.work_dir, f'full_{seed}_w{args.workers}'))
    start = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    runner.train()
    seconds = time.perf_counter() - start
    ckpt = osp.join(cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    return dict(seconds=seconds, metrics=evaluate(cfg, ckpt))


def cached_path(args, seed: int) -> dict:
    import shutil

    from mmdisalign.cls.cached_stage2 import run_cached_stage2
    work_dir = osp.join(args.work_dir, f'cached_{seed}')
    cache = osp.join(work_dir, 'cache')
    shutil.rmtree(cache, ignore_errors=True)  # end to end: extract again
    cfg = stage2_config(args, seed, work_dir)
    start = time.perf_counter()
    result = run_cached_stage2(
        copy.deepcopy(cfg),
        cache,
        passes=args.passes,
        augment=args.augment,
        dtype=args.dtype)
    seconds = time.perf_counter() - start
    return dict(
        seconds=seconds,
        extract_seconds=result['extraction']['seconds'],
        train_seconds=result['seconds'],
        cache_mb=os.path.getsize(osp.join(cache, 'feats.npy')) / 1e6,
        iters=result['iters'],
        metrics=evaluate(cfg, result['checkpoint']),
        passes=result['extraction']['passes'])


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.chdir(ROOT)
    import torch
    from mmengine.logging import MMLogger

    import mmdisalign.cls  # noqa: F401
    MMLogger.get_instance('bench_cached', log_level='WARNING')
    if not osp.isfile(args.stage1):
        sys.exit(f'stage-1 checkpoint {args.stage1} not found: run '
                 'tools/run_main_job.py (or tools/train.py with the stage-1 '
                 'config) first, or pass --stage1')
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(',')]
    print(f'config: {osp.relpath(args.config, ROOT)}; stage 1: '
          f'{args.stage1}; seeds {seeds}; {args.workers} data worker(s), '
          f'{torch.get_num_threads()} torch thread(s); cache: '
          f'{args.passes} pass(es), augment={args.augment}, {args.dtype}')
    runs = []
    extra = None
    if args.also_full_workers >= 0 and args.also_full_workers != args.workers:
        extra = full_path(args, seeds[0], args.also_full_workers)
        print(
            f'full path, seed {seeds[0]}, {args.also_full_workers} '
            f'worker(s): {extra["seconds"]:.1f} s; ' +
            ', '.join(f'{k} {extra["metrics"][k]:.2f}' for k in METRICS),
            flush=True)
    for seed in seeds:
        full = full_path(args, seed)
        cached = cached_path(args, seed)
        runs.append(dict(seed=seed, full=full, cached=cached))
        print(
            f'seed {seed}: full {full["seconds"]:.1f} s, cached '
            f'{cached["seconds"]:.1f} s (extraction '
            f'{cached["extract_seconds"]:.1f} s + training '
            f'{cached["train_seconds"]:.1f} s), ratio '
            f'{full["seconds"] / cached["seconds"]:.1f}x',
            flush=True)
        for name, run in (('full', full), ('cached', cached)):
            m = run['metrics']
            print(f'  {name:6s} ' + ', '.join(f'{k} {m[k]:.2f}'
                                              for k in METRICS))
    full_t = [r['full']['seconds'] for r in runs]
    cached_t = [r['cached']['seconds'] for r in runs]
    mean = {
        path: {
            k: statistics.mean(r[path]['metrics'][k] for r in runs)
            for k in METRICS
        }
        for path in ('full', 'cached')
    }
    summary = dict(
        full_seconds_median=statistics.median(full_t),
        cached_seconds_median=statistics.median(cached_t),
        ratio_of_medians=statistics.median(full_t) /
        statistics.median(cached_t),
        mean_metrics=mean,
        differences={k: mean['cached'][k] - mean['full'][k]
                     for k in METRICS})
    print('\n| path | time (s), median | overall | many | medium | few |')
    print('|---|---|---|---|---|---|')
    for path, t in (('full forward (Runner)', full_t), ('cached features',
                                                        cached_t)):
        m = mean['full' if path.startswith('full') else 'cached']
        print(f'| {path} | {statistics.median(t):.1f} | ' +
              ' | '.join(f'{m[k]:.2f}' for k in METRICS) + ' |')
    print(f'\nspeed-up (end to end, median over seeds): '
          f'{summary["ratio_of_medians"]:.1f}x (target >= 10x)')
    print('accuracy difference cached - full (mean over seeds, points): ' +
          ', '.join(f'{k} {v:+.2f}'
                    for k, v in summary['differences'].items()) +
          ' (target within 0.3)')
    if extra is not None:
        summary['full_other_workers'] = extra
        print(f'with {args.also_full_workers} data worker(s) (seed '
              f'{seeds[0]}), the full path takes {extra["seconds"]:.1f} s: '
              f'{extra["seconds"] / statistics.median(cached_t):.1f}x the '
              'cached path')
    result = dict(args=vars(args), runs=runs, summary=summary)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
