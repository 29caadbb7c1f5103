"""DisAlign beside the classic long-tail baselines, in every task.

``--task cls`` (the default), on Fashion-MNIST-LT. For every seed: train
stage 1 (joint training, 30 epochs), then, on that same frozen stage 1,
each method of its shipped config:

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

``--task seg`` (FCN, Fashion-MNIST scenes; mIoU and head / body / tail
mIoU) and ``--task det`` (Mask R-CNN, Fashion-MNIST scenes in LVIS layout;
box AP and AP_r / AP_c / AP_f): per seed the toy stage 1 once, then
``tau-norm``, ``logit-adjust`` (the stage-1 checkpoint tested with the
post-hoc config), ``lws`` and ``disalign`` (stage 2 on the frozen stage 1)
with their shipped CPU configs (``tools/disalign_demo/scenes.py``); the
same table and files, plus ``per_class.png``: the IoU / AP of every class
(mean over seeds), classes ordered by training frequency.
``--stage1-iters`` / ``--stage2-iters`` shorten the shipped schedules
(the LR schedule keeps its shape), ``--tau`` sets tau of the post-hoc
methods.

Usage::

    .venv/bin/python tools/compare_baselines.py            # seeds 0, 1, 2
    .venv/bin/python tools/compare_baselines.py --seeds 0 --methods \\
        stage1,tau-norm,disalign
    .venv/bin/python tools/compare_baselines.py --task seg --seeds 0,1,2
    .venv/bin/python tools/compare_baselines.py --task det --seeds 0,1 \\
        --stage1-iters 1000 --stage2-iters 250
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
                                       LT_COLUMNS, METRIC_KEYS, STAGE1_CONFIG,
                                       build_data, evaluate_stage,
                                       format_mean_table, log, mean_std,
                                       run_stage, run_stage2_cached,
                                       stage_config, summarize_runs)
from disalign_demo.scenes import TASKS, scene_stage_config

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

#: Training iterations of ``--quick`` (seg / det): stage 1, stage 2.
QUICK_ITERS = (20, 5)


def methods_of(task: str) -> dict:
    """``method -> (config, how, table name)`` of a task."""
    return METHODS if task == 'cls' else TASKS[task].methods


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--task',
        default='cls',
        choices=('cls', ) + tuple(TASKS),
        help='cls: Fashion-MNIST-LT; seg / det: Fashion-MNIST scenes')
    parser.add_argument('--seeds', default='0,1,2', help='comma-separated')
    parser.add_argument(
        '--methods',
        default=None,
        help='comma-separated subset of the methods of the task (default: '
        f'all; cls: {", ".join(METHODS)}; seg, det: '
        f'{", ".join(TASKS["seg"].methods)})')
    parser.add_argument(
        '--work-dir',
        default=None,
        help='default work_dirs/baselines (cls), work_dirs/compare_seg, '
        'work_dirs/compare_det')
    exp.add_data_args(
        parser, 'data/fashion_mnist_lt (cls), data/fmnist_scenes (seg), '
        'data/fmnist_lvis (det)')
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny data set and a few epochs / iterations per stage (tests)')
    parser.add_argument(
        '--stage1-iters',
        type=int,
        default=None,
        help='seg / det: stage-1 iterations instead of the config\'s')
    parser.add_argument(
        '--stage2-iters',
        type=int,
        default=None,
        help='seg / det: stage-2 iterations instead of the config\'s')
    parser.add_argument(
        '--tau',
        type=float,
        default=None,
        help='seg / det: tau of tau-norm and logit adjustment instead of '
        'the config\'s 1 (0: the stage-1 model)')
    args = parser.parse_args(argv)
    methods = methods_of(args.task)
    args.seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
    if args.methods is None:
        args.methods = list(methods)
    else:
        args.methods = [
            m.strip() for m in args.methods.split(',') if m.strip()
        ]
    unknown = [m for m in args.methods if m not in methods]
    if unknown:
        parser.error(f'unknown method(s) {unknown} for --task {args.task}; '
                     f'choose from {list(methods)}')
    if not args.seeds:
        parser.error('--seeds is empty')
    if args.task == 'cls':
        given = [
            f'--{k.replace("_", "-")}'
            for k in ('stage1_iters', 'stage2_iters', 'tau')
            if getattr(args, k) is not None
        ]
        if given:
            parser.error(f'{", ".join(given)} only apply to --task seg / '
                         'det (cls trains by epochs, its post-hoc configs '
                         'set tau)')
    for key in ('stage1_iters', 'stage2_iters'):
        if getattr(args, key) is not None and getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1, got '
                         f'{getattr(args, key)}')
        if args.task != 'cls' and args.quick and getattr(args, key) is None:
            setattr(args, key, QUICK_ITERS[key == 'stage2_iters'])
    if args.work_dir is None:
        args.work_dir = osp.join(
            REPO, 'work_dirs',
            'baselines' if args.task == 'cls' else f'compare_{args.task}')
    return args


class Comparison:
    """How the runs of one task are configured, checked and recorded.

    Args:
        args: The parsed arguments.
        data_root (str): The built data set.
        classes (list[str], optional): Class names (seg / det).
        data (dict, optional): cls: :func:`build_data`'s description of the
            long-tail list data set.
        setup (dict, optional): cls: the data set and the many / few
            thresholds the results depend on.
        stage_options (dict, optional): cls: keyword arguments of
            :func:`stage_config` (workers, thresholds, frequency file).
    """

    def __init__(self,
                 args,
                 data_root: str,
                 classes=None,
                 data=None,
                 setup=None,
                 stage_options=None) -> None:
        self.args = args
        self.task = None if args.task == 'cls' else TASKS[args.task]
        self.methods = methods_of(args.task)
        self.data_root = data_root
        self.classes = classes
        self.data = data if data is not None else data_root
        self.setup = setup or {}
        self.stage_options = stage_options or dict(workers=args.workers)

    def settings(self, how: str) -> dict:
        """What a run of kind ``how`` depends on besides seed and method."""
        args = self.args
        out = dict(quick=args.quick)
        if self.task is not None:
            out['stage1_iters'] = args.stage1_iters
            if how == 'train':
                out['stage2_iters'] = args.stage2_iters
            elif how == 'test':
                out['tau'] = args.tau
        return out

    def config(self,
               config: str,
               work_dir: str,
               seed: int,
               how: str,
               load_from=None):
        args = self.args
        if self.task is None:
            return stage_config(
                config,
                self.data,
                work_dir,
                seed,
                args.quick,
                load_from=load_from,
                **self.stage_options)
        return scene_stage_config(
            self.task,
            config,
            self.data_root,
            work_dir,
            seed,
            load_from=load_from,
            iters=args.stage2_iters if how == 'train' else args.stage1_iters,
            tau=args.tau,
            workers=args.workers)

    def metrics(self, raw: dict) -> dict:
        if self.task is None:
            return {k: float(v) for k, v in raw.items()}
        return self.task.metrics(raw, self.classes)

    def done(self, path: str, how: str):
        """The result record at ``path`` if that run is finished."""
        if not osp.isfile(path):
            return None
        with open(path) as f:
            found = json.load(f)
        # results written before the setup was recorded: Fashion-MNIST-LT
        saved = found.get('setup', self.setup)
        if saved != self.setup:
            diff = ', '.join(
                f'{k}: {saved.get(k)!r} there, {self.setup.get(k)!r} now'
                for k in sorted(set(saved) | set(self.setup))
                if saved.get(k) != self.setup.get(k))
            raise ValueError(
                f'{path} is the result of another run setup ({diff}); use '
                'another --work-dir (nothing was overwritten)')
        settings = self.settings(how)
        if found.get('settings', settings) != settings:
            raise ValueError(
                f'{path} was run with {found["settings"]}, not with '
                f'{settings}: use another --work-dir for these settings, or '
                f'delete {osp.dirname(path)} to run it again')
        return found

    def save(self, result_file: str, method: str, seed: int, config: str,
             ckpt: str, metrics: dict, t0: float) -> dict:
        """Write (and return) the result record of one run."""
        how = self.methods[method][1]
        result = dict(
            method=method,
            seed=seed,
            config=osp.relpath(config, REPO),
            checkpoint=ckpt,
            metrics=self.metrics(metrics),
            settings=self.settings(how),
            setup=self.setup,
            seconds=round(time.time() - t0, 1))
        os.makedirs(osp.dirname(result_file), exist_ok=True)
        with open(result_file, 'w') as f:
            json.dump(result, f, indent=1)
        return result


def run_method(cmp: Comparison, method: str, seed: int, seed_dir: str,
               stage1: dict) -> dict:
    """Metrics of one method on one seed (reused when already done)."""
    args = cmp.args
    config, how, _ = cmp.methods[method]
    work_dir = osp.join(seed_dir, method)
    result_file = osp.join(work_dir, 'result.json')
    found = cmp.done(result_file, how)
    if found is not None:
        log(f'seed {seed} {method}: reusing {result_file}', WHO)
        return found
    stage1_ckpt = stage1['checkpoint']
    if not osp.isfile(stage1_ckpt):
        raise FileNotFoundError(
            f'seed {seed} {method}: the stage-1 checkpoint {stage1_ckpt} '
            f'(named by {osp.join(seed_dir, "stage1", "result.json")}) is '
            f'missing: restore it, or delete {osp.join(seed_dir, "stage1")}'
            ' to train stage 1 again')
    cfg = cmp.config(config, work_dir, seed, how, load_from=stage1_ckpt)
    t0 = time.time()
    if how == 'test':
        metrics, ckpt = evaluate_stage(f'seed {seed} {method}', cfg,
                                       stage1_ckpt, WHO), stage1_ckpt
    elif how == 'train':
        metrics, ckpt, _ = run_stage(f'seed {seed} {method}', cfg, WHO)
    else:
        cached_cfg = stage_config(
            CACHED_STAGE2_CONFIG,
            cmp.data,
            work_dir,
            seed,
            args.quick,
            load_from=stage1_ckpt,
            **cmp.stage_options)
        metrics, ckpt, _ = run_stage2_cached(
            f'seed {seed} {method}',
            cfg,
            cached_cfg,
            passes=1,
            augment=True,
            who=WHO)
    return cmp.save(result_file, method, seed, config, ckpt, metrics, t0)


def run_seed(cmp: Comparison, seed: int) -> dict:
    """Stage 1 and every method for one seed."""
    seed_dir = osp.join(cmp.args.work_dir, f'seed{seed}')
    stage1_dir = osp.join(seed_dir, 'stage1')
    result_file = osp.join(stage1_dir, 'result.json')
    stage1_config = cmp.methods['stage1'][0]
    stage1 = cmp.done(result_file, 'stage1')
    if stage1 is None:
        cfg = cmp.config(stage1_config, stage1_dir, seed, 'stage1')
        t0 = time.time()
        metrics, ckpt, _ = run_stage(f'seed {seed} stage 1', cfg, WHO)
        stage1 = cmp.save(result_file, 'stage1', seed, stage1_config, ckpt,
                          metrics, t0)
    else:
        log(f'seed {seed} stage 1: reusing {result_file}', WHO)
    results = {}
    for method in cmp.args.methods:
        if method == 'stage1':
            results[method] = stage1
        else:
            results[method] = run_method(cmp, method, seed, seed_dir, stage1)
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.time()
    os.chdir(REPO)
    import torch
    args.work_dir = osp.abspath(args.work_dir)
    task = None if args.task == 'cls' else TASKS[args.task]
    default_data = (
        task.default_data
        if task else osp.join(REPO, 'data', 'fashion_mnist_lt'))
    data_root = osp.abspath(
        args.data_root
        or (osp.join(args.work_dir, 'data') if args.quick else default_data))
    os.makedirs(args.work_dir, exist_ok=True)
    # 0 workers + (cores - 1) torch threads: the fastest setting measured
    # on 2 cores (docs/performance.md); 1 thread for the tiny scene models
    # (docs/seg.md)
    torch.set_num_threads(1 if task else max(1, (os.cpu_count() or 2) - 1))
    log(
        f'task {args.task}, seeds {args.seeds}, methods {args.methods}; '
        f'{torch.get_num_threads()} torch thread(s), {args.workers} data '
        'worker(s)', WHO)
    many_thr = few_thr = None
    if task is None:
        data = build_data(
            data_root, args.quick, WHO, layout=exp.data_layout(args))
        many_thr, few_thr = exp.data_thresholds(data, args.many_threshold,
                                                args.few_threshold, WHO)
        setup = dict(
            data_root=data_root,
            train_list=data['train_list'],
            test_list=data['test_list'],
            many_thr=many_thr,
            few_thr=few_thr)
        stage_options = dict(
            workers=args.workers,
            many_thr=many_thr,
            few_thr=few_thr,
            class_freq=exp.class_freq_file(data, args.work_dir))
        cmp = Comparison(
            args,
            data_root,
            data=data,
            setup=setup,
            stage_options=stage_options)
        columns, keys = LT_COLUMNS, None
        caption = (f'{data["name"]}, test set, top-1 (%), mean ± std over '
                   f'seeds {args.seeds} (each seed: its own stage 1, then '
                   f'every method on it); many > {many_thr:g}, few < '
                   f'{few_thr:g} training images:')
    else:
        data = task.build_data(data_root, args.quick, WHO)
        cmp = Comparison(args, data_root, data['classes'])
        columns = task.columns
        keys = {key: key for key, _ in columns}
        caption = (f'{task.title}, mean ± std over seeds {args.seeds} '
                   '(each seed: its own stage 1, then every method on it)'
                   f'{_schedules(args)}:')
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = run_seed(cmp, seed)
    runs = {
        m: [per_seed[s][m]['metrics'] for s in args.seeds]
        for m in args.methods
    }
    names = {m: methods_of(args.task)[m][2] for m in args.methods}
    table = format_mean_table([(names[m], runs[m]) for m in args.methods],
                              columns)
    summary = summarize_runs(runs, keys)
    lines = [caption, '', table, '']
    (first, first_name), (last, last_name) = columns[0], columns[-1]
    lines.append(f'Per seed ({first_name} / {last_name}):')
    for m in args.methods:
        lines.append(f'- {names[m]}: ' + '; '.join(
            f'seed {s} {per_seed[s][m]["metrics"][first]:.2f} / '
            f'{per_seed[s][m]["metrics"][last]:.2f}' for s in args.seeds))
    if 'disalign' in runs and 'stage1' in runs:
        diffs = []
        for name, key in (keys or {k: f'lt/{k}' for k in METRIC_KEYS}).items():
            d = [
                a[key] - b[key]
                for a, b in zip(runs['disalign'], runs['stage1'])
            ]
            mean, std = mean_std(d)
            diffs.append(f'{name} {mean:+.2f} ± {std:.2f}')
        lines.append('')
        lines.append('DisAlign - stage 1 (paired by seed): ' +
                     ', '.join(diffs))
    results = dict(
        task=args.task,
        seeds=args.seeds,
        methods=args.methods,
        quick=args.quick,
        data_root=data_root,
        many_thr=many_thr,
        few_thr=few_thr,
        summary=summary,
        per_seed={str(s): per_seed[s]
                  for s in args.seeds})
    if task is not None:
        per_class = {
            m:
            [mean_std(v)[0] for v in zip(*[r['per_class'] for r in runs[m]])]
            for m in args.methods
        }
        plot = osp.join(args.work_dir, 'per_class.png')
        plot_per_class(plot, task, data['classes'], data['counts'],
                       [(names[m], per_class[m]) for m in args.methods])
        results.update(
            classes=data['classes'],
            class_counts=data['counts'],
            per_class=per_class,
            settings=dict(
                stage1_iters=args.stage1_iters,
                stage2_iters=args.stage2_iters,
                tau=args.tau))
        lines += ['', f'Per-class {task.class_metric}: {plot}']
    text = '\n'.join(lines)
    print('\n' + text)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(text + '\n')
    results['seconds'] = round(time.time() - t_start, 1)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    log(f'done in {results["seconds"]:.0f} s; results in {args.work_dir}', WHO)
    return results


def _schedules(args) -> str:
    """The schedules of the table's caption."""
    given = [
        f'stage {n} {v} iterations'
        for n, v in ((1, args.stage1_iters), (2, args.stage2_iters))
        if v is not None
    ]
    if not given:
        return '; the shipped schedules'
    return '; ' + ', '.join(given) + ' instead of the shipped ones'


def plot_per_class(path: str, task, classes, counts, series) -> None:
    """Grouped bars of a per-class metric, classes by training frequency.

    Args:
        path (str): The PNG file.
        task (SceneTask): The task (its metric names the axis).
        classes (list[str]): Class names.
        counts (list[int]): Their training counts (the order).
        series (list[tuple[str, list[float]]]): ``(method, per-class
            values)``, values in the order of ``classes``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    order = sorted(range(len(classes)), key=lambda i: -counts[i])
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, len(classes) * 0.9), 4))
    for i, (name, values) in enumerate(series):
        ax.bar([x + i * width for x in range(len(order))],
               [values[c] for c in order],
               width,
               label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(order))])
    ax.set_xticklabels([f'{classes[c]}\n({counts[c]})' for c in order],
                       rotation=45,
                       ha='right',
                       fontsize=8)
    ax.set_ylabel(task.class_metric)
    ax.set_title(f'{task.title}: per class, by training frequency')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == '__main__':
    main()
