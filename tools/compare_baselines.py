"""DisAlign beside the classic long-tail baselines on Fashion-MNIST-LT.

For every seed: train stage 1 (joint training, 30 epochs), then, on that
same frozen stage 1, each method of its shipped config:

- ``stage1``: the stage-1 model itself;
- ``tau-norm``: tau-normalised classifier (post hoc, nothing trained);
- ``logit-adjust``: post-hoc logit adjustment (nothing trained);
- ``crt``: classifier re-training (re-initialised ``head.fc``,
  class-balanced sampling, 10 epochs);
- ``lws``: learnable weight scaling (10 epochs);
- ``disalign``: DisAlign (calibration + GRW loss, 10 epochs);
- ``disalign-cached``: DisAlign trained on cached features of the frozen
  stage 1 (one augmented pass; the cached-feature config on the Runner).

Every model is tested on the balanced test set with the config's
``LongTailAccuracy``; the tool prints overall / many / medium / few top-1 of
every method as mean ± standard deviation over the seeds (and per seed)
and writes ``results.json`` / ``results.md`` to the work dir. Finished
runs are reused when the tool is started again with the same work dir (a
work dir holding runs of another data set or other thresholds is refused,
not overwritten).

``--data-root`` and the many / medium / few thresholds work as in
``tools/run_main_job.py``: any valid long-tail list data set is used as it
is (nothing in it is modified), a new or empty directory gets
Fashion-MNIST-LT; the thresholds come from ``--many-threshold`` /
``--few-threshold``, the data set's ``meta.json`` or the training counts,
and are printed.

Usage::

    .venv/bin/python tools/compare_baselines.py            # seeds 0, 1, 2
    .venv/bin/python tools/compare_baselines.py --seeds 0 --methods \\
        stage1,tau-norm,disalign
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.append(osp.join(REPO, 'tools'))  # tools/disalign_demo
from disalign_demo import experiments as exp
from disalign_demo.experiments import (CACHED_STAGE2_CONFIG, CONFIG_DIR,
                                       METRIC_KEYS, STAGE1_CONFIG, build_data,
                                       evaluate_stage, format_mean_table, log,
                                       mean_std, run_stage, run_stage2_cached,
                                       stage_config, summarize_runs)

WHO = 'baselines'
_S2 = 'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_{}.py'
_POSTHOC = 'resnet18-s3w16_1xb128_fashion-mnist-lt_{}.py'
#: method -> (config, how it is obtained, table name)
METHODS = {
    'stage1': (STAGE1_CONFIG, 'stage1', 'stage 1 (joint, 30 ep)'),
    'tau-norm':
    (osp.join(CONFIG_DIR,
              _POSTHOC.format('tau-norm')), 'test', 'tau-norm (tau 1)'),
    'logit-adjust': (osp.join(CONFIG_DIR, _POSTHOC.format('logit-adjust')),
                     'test', 'logit adjustment (tau 1)'),
    'crt': (osp.join(CONFIG_DIR, _S2.format('crt')), 'train', 'cRT'),
    'lws': (osp.join(CONFIG_DIR, _S2.format('lws')), 'train', 'LWS'),
    'disalign': (osp.join(CONFIG_DIR,
                          _S2.format('disalign')), 'train', 'DisAlign'),
    'disalign-cached':
    (osp.join(CONFIG_DIR,
              _S2.format('disalign')), 'cached', 'DisAlign, cached features'),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', default='0,1,2', help='comma-separated')
    parser.add_argument(
        '--methods',
        default=','.join(METHODS),
        help=f'comma-separated subset of {", ".join(METHODS)}')
    parser.add_argument(
        '--work-dir', default=osp.join(REPO, 'work_dirs', 'baselines'))
    exp.add_data_args(parser, osp.join(REPO, 'data', 'fashion_mnist_lt'))
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny data set and 1-2 epochs per stage (tests)')
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
    args.methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f'unknown method(s) {unknown}; choose from '
                     f'{list(METHODS)}')
    if not args.seeds:
        parser.error('--seeds is empty')
    return args


def _done(path: str, setup: dict):
    """The saved result of a finished run, None if there is none.

    A result of another data set or other thresholds (``setup``) is not
    reused, and not replaced either: the tool stops and names the
    differences.
    """
    if not osp.isfile(path):
        return None
    with open(path) as f:
        found = json.load(f)
    # results written before the setup was recorded: Fashion-MNIST-LT
    saved = found.get('setup', setup)
    if saved != setup:
        diff = ', '.join(f'{k}: {saved.get(k)!r} there, {setup.get(k)!r} now'
                         for k in sorted(set(saved) | set(setup))
                         if saved.get(k) != setup.get(k))
        raise ValueError(
            f'{path} is the result of another run setup ({diff}); use '
            'another --work-dir (nothing was overwritten)')
    return found


def _save(result_file: str, method: str, seed: int, config: str, ckpt: str,
          metrics: dict, t0: float, setup: dict) -> dict:
    """Write (and return) the result record of one run."""
    result = dict(
        method=method,
        seed=seed,
        config=osp.relpath(config, REPO),
        checkpoint=ckpt,
        metrics={
            k: float(v)
            for k, v in metrics.items()
        },
        seconds=round(time.time() - t0, 1),
        setup=setup)
    os.makedirs(osp.dirname(result_file), exist_ok=True)
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=1)
    return result


def run_method(method: str, seed: int, seed_dir: str, stage1_ckpt: str, args,
               data: dict) -> dict:
    """Metrics of one method on one seed (reused when already done)."""
    config, how, _ = METHODS[method]
    work_dir = osp.join(seed_dir, method)
    result_file = osp.join(work_dir, 'result.json')
    found = _done(result_file, args.setup)
    if found is not None:
        log(f'seed {seed} {method}: reusing {result_file}', WHO)
        return found
    cfg = stage_config(
        config,
        data,
        work_dir,
        seed,
        args.quick,
        load_from=stage1_ckpt,
        **args.stage_options)
    t0 = time.time()
    if how == 'test':
        metrics, ckpt = evaluate_stage(f'seed {seed} {method}', cfg,
                                       stage1_ckpt, WHO), stage1_ckpt
    elif how == 'train':
        metrics, ckpt, _ = run_stage(f'seed {seed} {method}', cfg, WHO)
    else:
        cached_cfg = stage_config(
            CACHED_STAGE2_CONFIG,
            data,
            work_dir,
            seed,
            args.quick,
            load_from=stage1_ckpt,
            **args.stage_options)
        metrics, ckpt, _ = run_stage2_cached(
            f'seed {seed} {method}',
            cfg,
            cached_cfg,
            passes=1,
            augment=True,
            who=WHO)
    return _save(result_file, method, seed, config, ckpt, metrics, t0,
                 args.setup)


def run_seed(seed: int, args, data: dict) -> dict:
    """Stage 1 and every method for one seed."""
    seed_dir = osp.join(args.work_dir, f'seed{seed}')
    stage1_dir = osp.join(seed_dir, 'stage1')
    result_file = osp.join(stage1_dir, 'result.json')
    stage1 = _done(result_file, args.setup)
    if stage1 is None:
        cfg = stage_config(STAGE1_CONFIG, data, stage1_dir, seed, args.quick,
                           **args.stage_options)
        t0 = time.time()
        metrics, ckpt, _ = run_stage(f'seed {seed} stage 1', cfg, WHO)
        stage1 = _save(result_file, 'stage1', seed, STAGE1_CONFIG, ckpt,
                       metrics, t0, args.setup)
    else:
        log(f'seed {seed} stage 1: reusing {result_file}', WHO)
    results = {}
    for method in args.methods:
        if method == 'stage1':
            results[method] = stage1
        else:
            results[method] = run_method(method, seed, seed_dir,
                                         stage1['checkpoint'], args, data)
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.time()
    os.chdir(REPO)
    import torch
    args.work_dir = osp.abspath(args.work_dir)
    data_root = osp.abspath(
        args.data_root
        or (osp.join(args.work_dir, 'data') if args.quick else osp.join(
            REPO, 'data', 'fashion_mnist_lt')))
    os.makedirs(args.work_dir, exist_ok=True)
    # 0 workers + (cores - 1) torch threads: the fastest setting measured
    # on 2 cores (docs/performance.md)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    log(
        f'seeds {args.seeds}, methods {args.methods}; '
        f'{torch.get_num_threads()} torch thread(s), {args.workers} data '
        'worker(s)', WHO)
    data = build_data(data_root, args.quick, WHO, layout=exp.data_layout(args))
    many_thr, few_thr = exp.data_thresholds(data, args.many_threshold,
                                            args.few_threshold, WHO)
    args.setup = dict(
        data_root=data_root,
        train_list=data['train_list'],
        test_list=data['test_list'],
        many_thr=many_thr,
        few_thr=few_thr)
    args.stage_options = dict(
        workers=args.workers,
        many_thr=many_thr,
        few_thr=few_thr,
        class_freq=exp.class_freq_file(data, args.work_dir))
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = run_seed(seed, args, data)
    runs = {
        m: [per_seed[s][m]['metrics'] for s in args.seeds]
        for m in args.methods
    }
    table = format_mean_table([(METHODS[m][2], runs[m]) for m in args.methods])
    summary = summarize_runs(runs)
    lines = [
        f'{data["name"]}, test set, top-1 (%), mean ± std over seeds '
        f'{args.seeds} (each seed: its own stage 1, then every method on '
        f'it); many > {many_thr:g}, few < {few_thr:g} training images:', '',
        table, ''
    ]
    lines.append('Per seed (overall / few):')
    for m in args.methods:
        lines.append(f'- {METHODS[m][2]}: ' + '; '.join(
            f'seed {s} {per_seed[s][m]["metrics"]["lt/top1"]:.2f} / '
            f'{per_seed[s][m]["metrics"]["lt/few"]:.2f}' for s in args.seeds))
    if 'disalign' in runs and 'stage1' in runs:
        diffs = []
        for key in METRIC_KEYS:
            d = [
                a[f'lt/{key}'] - b[f'lt/{key}']
                for a, b in zip(runs['disalign'], runs['stage1'])
            ]
            mean, std = mean_std(d)
            diffs.append(f'{key} {mean:+.2f} ± {std:.2f}')
        lines.append('')
        lines.append('DisAlign - stage 1 (paired by seed): ' +
                     ', '.join(diffs))
    text = '\n'.join(lines)
    print('\n' + text)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(text + '\n')
    results = dict(
        seeds=args.seeds,
        methods=args.methods,
        quick=args.quick,
        data_root=data_root,
        many_thr=many_thr,
        few_thr=few_thr,
        summary=summary,
        per_seed={str(s): per_seed[s]
                  for s in args.seeds},
        seconds=round(time.time() - t_start, 1))
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    log(f'done in {results["seconds"]:.0f} s; results in {args.work_dir}', WHO)
    return results


if __name__ == '__main__':
    main()
