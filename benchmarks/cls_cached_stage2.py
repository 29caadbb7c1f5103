"""Classification stage 2: full forward (Runner) vs cached features.

On Fashion-MNIST-LT, from one stage-1 checkpoint, for each seed:

- full path: mmengine's Runner trains the stage-2 config (every image
  read, decoded, augmented and sent through the frozen network every
  epoch);
- cached path, for each ``--variants`` entry: ``tools/cache_features.py``
  (one pass of the frozen network over the training set with the test
  pipeline, or P passes with the training augmentation) + the Runner with
  the cached-feature config (``--cached-config``: the same loss,
  optimiser, schedule, sampler and batch size on the cached features),
  which writes a normal stage-2 checkpoint.

All checkpoints are then evaluated the same way (Runner.test, the
config's LongTailAccuracy on the balanced test set). Printed: the times of
every path (end to end: the cached ones include building the model and the
extraction), the speed-ups against the full path, and overall / many /
medium / few-shot accuracy, per seed and as the mean over the seeds.
Target: >= 10x, accuracies within 0.3 points.

First (unless ``--no-extraction-compare``), the frozen forward alone:
the backbone and neck over the preprocessed training set (test pipeline),
eager and compiled by ``torch.compile`` (``FrozenFeatures`` of
tools/cache_features.py), alternating, with the first compilation timed
(inductor's cache starts empty: ``TORCHINDUCTOR_CACHE_DIR`` is a fresh
directory unless set) and the largest absolute feature difference. The
cached paths compile unless ``--no-compile``.

Times are wall-clock and CPU time (``time.process_time`` of this
process plus that of its finished child processes: inductor's C++
compiler runs, in this process with ``TORCHINDUCTOR_COMPILE_THREADS=1``,
set here unless set). With 0 data workers and 1 torch thread (the
defaults) every path runs in this one thread, so on an idle machine the
two agree; on a shared machine the wall-clock times also hold the waits
for the other jobs, and the CPU-time ratios are the steadier measure.

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
import tempfile
import time
from typing import Optional

# before torch is imported: compile in this process (its C++ compiler runs
# are then finished child processes, counted in the CPU time), from an
# empty inductor cache (the first compilation is a cold one)
os.environ.setdefault('TORCHINDUCTOR_COMPILE_THREADS', '1')
os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR',
                      tempfile.mkdtemp(prefix='bench_inductor_'))

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.append(osp.join(ROOT, 'tools'))  # tools/disalign_demo
from disalign_demo.experiments import CACHED_STAGE2_CONFIG, CONFIG_DIR
from disalign_demo.experiments import METRIC_KEYS as METRICS
from disalign_demo.experiments import (evaluate_stage, stage_config,
                                       train_stage2_cached)

DEFAULT_CONFIG = osp.join(
    CONFIG_DIR, 'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py')
DEFAULT_STAGE1 = osp.join(ROOT, 'work_dirs', 'main_job', 'stage1',
                          'epoch_30.pth')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument(
        '--cached-config',
        default=CACHED_STAGE2_CONFIG,
        help='the cached-feature counterpart of --config')
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
    parser.add_argument(
        '--variants',
        default='1:clean,1:aug,2:aug',
        help='cached-path variants, comma-separated PASSES:clean|aug '
        '(clean: the test pipeline, one pass; aug: the training '
        'augmentation, epoch e uses pass e mod PASSES)')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument(
        '--no-compile',
        action='store_true',
        help='cached paths: run the frozen network eagerly')
    parser.add_argument(
        '--no-extraction-compare',
        action='store_true',
        help='skip the eager vs compiled frozen-forward comparison')
    parser.add_argument(
        '--compare-rounds',
        type=int,
        default=3,
        help='alternating eager / compiled passes of the comparison')
    parser.add_argument(
        '--work-dir', default=osp.join(ROOT, 'work_dirs', 'bench_cached'))
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    args.variants = [_parse_variant(v) for v in args.variants.split(',')]
    return args


def _parse_variant(text: str) -> tuple:
    try:
        passes, kind = text.strip().split(':')
        passes = int(passes)
    except ValueError:
        raise SystemExit(f'bad --variants entry {text!r}: use PASSES:clean '
                         'or PASSES:aug, e.g. 1:clean,1:aug,2:aug')
    if kind not in ('clean', 'aug') or passes < 1 or (kind == 'clean'
                                                      and passes != 1):
        raise SystemExit(f'bad --variants entry {text!r}: clean needs 1 '
                         'pass, aug 1 or more')
    return passes, kind == 'aug'


def variant_name(variant: tuple) -> str:
    passes, augment = variant
    return (f'{passes} augmented pass{"es" if passes > 1 else ""}'
            if augment else '1 pass, no augmentation')


def stage2_config(args, seed: int, work_dir: str, config=None):
    """The stage-2 config pointed at this run's data, stage 1 and dirs."""
    cfg = stage_config(
        config or args.config,
        args.data_root,
        work_dir,
        seed,
        quick=False,
        load_from=args.stage1,
        workers=args.workers)
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    return cfg


def cpu_time() -> float:
    """CPU seconds of this process and its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def compare_extraction(args, seed: int) -> dict:
    """Frozen forward over the training set: eager vs compiled."""
    import torch
    from cache_features import FrozenFeatures, build_frozen_model
    from mmengine.runner import Runner
    cfg = stage2_config(args, seed, osp.join(args.work_dir, 'compare'))
    model, _ = build_frozen_model(cfg, args.stage1)
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.dataset.pipeline = copy.deepcopy(
        cfg.test_dataloader.dataset.pipeline)
    loader_cfg.sampler = dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    loader_cfg.drop_last = False
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    with torch.no_grad():  # preprocessed once: only the network is timed
        batches = [model.data_preprocessor(d, False)['inputs'] for d in loader]
    compiled = FrozenFeatures(model)
    start, cpu = time.perf_counter(), cpu_time()
    with torch.no_grad():
        compiled(batches[0])
    compile_s, compile_cpu = time.perf_counter() - start, cpu_time() - cpu
    times = dict(eager=[], compiled=[])
    cpus = dict(eager=[], compiled=[])
    max_diff = 0.0
    with torch.no_grad():
        for _ in range(args.compare_rounds):
            for name, fn in (('eager', model.extract_feat), ('compiled',
                                                             compiled)):
                start, cpu = time.perf_counter(), cpu_time()
                for x in batches:
                    fn(x)
                times[name].append(time.perf_counter() - start)
                cpus[name].append(cpu_time() - cpu)
        for x in batches:
            diff = (compiled(x)[0] - model.extract_feat(x)[0]).abs().max()
            max_diff = max(max_diff, float(diff))
    result = dict(
        compiled=compiled.is_compiled,
        fallback=compiled.reason,
        batches=len(batches),
        compile_seconds=compile_s,
        compile_cpu_seconds=compile_cpu,
        eager_seconds=times['eager'],
        compiled_seconds=times['compiled'],
        eager_cpu_seconds=cpus['eager'],
        compiled_cpu_seconds=cpus['compiled'],
        max_abs_diff=max_diff,
        max_abs_feature=max(
            float(x.abs().max()) for x in [model.extract_feat(batches[0])[0]]))
    med = statistics.median
    result['speedup'] = med(times['eager']) / med(times['compiled'])
    result['cpu_speedup'] = med(cpus['eager']) / med(cpus['compiled'])
    print(
        f'frozen forward over {len(batches)} batches (test pipeline), '
        f'{args.compare_rounds} alternating rounds: eager '
        f'{med(times["eager"]):.2f} s (CPU {med(cpus["eager"]):.2f} s), '
        f'compiled {med(times["compiled"]):.2f} s (CPU '
        f'{med(cpus["compiled"]):.2f} s): {result["speedup"]:.2f}x '
        f'({result["cpu_speedup"]:.2f}x in CPU time); first compilation '
        f'(cold cache) {compile_s:.1f} s (CPU {compile_cpu:.1f} s); '
        f'largest |feature difference| {max_diff:.2e} (features up to '
        f'{result["max_abs_feature"]:.2f}); compiled: {compiled.is_compiled}' +
        (f' ({compiled.reason})' if compiled.reason else ''),
        flush=True)
    return result


def evaluate(cfg, checkpoint: str) -> dict:
    metrics = evaluate_stage(
        osp.basename(cfg.work_dir), cfg, checkpoint, 'bench')
    return {k: float(metrics[f'lt/{k}']) for k in METRICS}


def full_path(args, seed: int, workers: Optional[int] = None) -> dict:
    from mmengine.runner import Runner
    args = copy.copy(args)
    if workers is not None:
        args.workers = workers
    cfg = stage2_config(
        args, seed, osp.join(args.work_dir, f'full_{seed}_w{args.workers}'))
    start, cpu = time.perf_counter(), cpu_time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    seconds = time.perf_counter() - start
    cpu_seconds = cpu_time() - cpu
    ckpt = osp.join(cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    return dict(
        seconds=seconds, cpu_seconds=cpu_seconds, metrics=evaluate(cfg, ckpt))


def cached_path(args, seed: int, variant: tuple) -> dict:
    import shutil
    passes, augment = variant
    work_dir = osp.join(args.work_dir,
                        f'cached_{seed}_p{passes}{"a" if augment else "c"}')
    cache = osp.join(work_dir, 'cache')
    shutil.rmtree(cache, ignore_errors=True)  # end to end: extract again
    cfg = stage2_config(args, seed, work_dir)
    cached_cfg = stage2_config(args, seed, work_dir, args.cached_config)
    start, cpu = time.perf_counter(), cpu_time()
    result = train_stage2_cached(
        copy.deepcopy(cfg),
        cached_cfg,
        cache,
        passes=passes,
        augment=augment,
        dtype=args.dtype,
        compile=not args.no_compile)
    seconds = time.perf_counter() - start
    cpu_seconds = cpu_time() - cpu
    return dict(
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        extract_seconds=result['extraction']['seconds'],
        train_seconds=result['seconds'],
        cache_mb=os.path.getsize(osp.join(cache, 'feats.npy')) / 1e6,
        iters=result['iters'],
        compiled=result['extraction']['compiled'],
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
    names = [variant_name(v) for v in args.variants]
    print(f'config: {osp.relpath(args.config, ROOT)}; stage 1: '
          f'{args.stage1}; seeds {seeds}; {args.workers} data worker(s), '
          f'{torch.get_num_threads()} torch thread(s); cached variants: '
          f'{names}; {args.dtype}')
    comparison = None
    if not args.no_extraction_compare:
        comparison = compare_extraction(args, seeds[0])
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
        # same seed = same sampler order in every path: the paths differ
        # only in what they feed the calibration
        run = dict(seed=seed, full=full_path(args, seed))
        print(
            f'seed {seed}: full {run["full"]["seconds"]:.1f} s (CPU '
            f'{run["full"]["cpu_seconds"]:.1f} s); ' +
            ', '.join(f'{k} {run["full"]["metrics"][k]:.2f}' for k in METRICS),
            flush=True)
        for variant, name in zip(args.variants, names):
            cached = cached_path(args, seed, variant)
            run[name] = cached
            print(
                f'  cached, {name}: {cached["seconds"]:.1f} s (extraction '
                f'{cached["extract_seconds"]:.1f} s + training '
                f'{cached["train_seconds"]:.1f} s, compiled: '
                f'{cached["compiled"]}), '
                f'{run["full"]["seconds"] / cached["seconds"]:.1f}x; CPU '
                f'{cached["cpu_seconds"]:.1f} s, '
                f'{run["full"]["cpu_seconds"] / cached["cpu_seconds"]:.1f}x; '
                + ', '.join(f'{k} {cached["metrics"][k]:.2f}'
                            for k in METRICS),
                flush=True)
        runs.append(run)
    summary = {}
    full_median = statistics.median(r['full']['seconds'] for r in runs)
    full_cpu = statistics.median(r['full']['cpu_seconds'] for r in runs)
    print('\n| stage 2 path | time (s), median over seeds | speed-up | '
          'CPU time (s), median | speed-up (CPU) | overall | many | medium '
          '| few |')
    print('|---|---|---|---|---|---|---|---|---|')
    for path in ['full'] + names:
        times = [r[path]['seconds'] for r in runs]
        cpu = [r[path]['cpu_seconds'] for r in runs]
        mean = {
            k: statistics.mean(r[path]['metrics'][k] for r in runs)
            for k in METRICS
        }
        median = statistics.median(times)
        cpu_median = statistics.median(cpu)
        summary[path] = dict(
            seconds_median=median,
            seconds=times,
            speedup=full_median / median,
            cpu_seconds_median=cpu_median,
            cpu_seconds=cpu,
            cpu_speedup=full_cpu / cpu_median,
            mean_metrics=mean)
        if path != 'full':
            summary[path]['differences'] = {
                k: mean[k] - summary['full']['mean_metrics'][k]
                for k in METRICS
            }
        label = ('full forward (Runner)'
                 if path == 'full' else f'cached, {path}')
        print(f'| {label} | {median:.1f} ({min(times):.1f}-{max(times):.1f})'
              f' | {full_median / median:.1f}x | {cpu_median:.1f} '
              f'({min(cpu):.1f}-{max(cpu):.1f}) | '
              f'{full_cpu / cpu_median:.1f}x | ' +
              ' | '.join(f'{mean[k]:.2f}' for k in METRICS) + ' |')
    print('\ncached - full, mean over seeds (points; targets: >= 10x, '
          'within 0.3):')
    for name in names:
        d = summary[name]['differences']
        print(f'  {name}: {summary[name]["speedup"]:.1f}x '
              f'({summary[name]["cpu_speedup"]:.1f}x in CPU time); ' +
              ', '.join(f'{k} {d[k]:+.2f}' for k in METRICS))
    if extra is not None:
        summary['full_other_workers'] = extra
        print(f'with {args.also_full_workers} data worker(s) (seed '
              f'{seeds[0]}), the full path takes {extra["seconds"]:.1f} s')
    result = dict(
        args=dict(vars(args), variants=names),
        extraction_compare=comparison,
        runs=runs,
        summary=summary)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
