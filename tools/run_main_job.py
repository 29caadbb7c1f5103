"""The main job: DisAlign on Fashion-MNIST-LT, end to end, on the CPU.

1. builds Fashion-MNIST-LT under ``data/fashion_mnist_lt`` (once; or uses
   the long-tail list data set given with ``--data-root`` as it is),
2. trains stage 1 (joint training, plain linear head),
3. trains stage 2 (DisAlign calibration + GRW loss on the frozen stage 1),
4. evaluates both on the balanced test set, prints the table
   (overall / many / medium / few) and writes two plots: per-class accuracy
   (stage 1 vs DisAlign, classes by training frequency) and the GRW class
   weights.

Everything runs through mmengine's Runner with the shipped configs::

    bash tools/setup_env.sh && .venv/bin/python tools/run_main_job.py

Options: ``--work-dir`` (default ``work_dirs/main_job``), ``--seed``,
``--quick`` (a tiny data set and a few iterations, for tests),
``--stage2 runner|cached`` (stage 2 through the Runner, the default, or on
cached features; the job prints which it used), ``--workers``,
``--data-root`` (any long-tail list data set, see below) and
``--many-threshold`` / ``--few-threshold``.

Data: ``--data-root`` that holds this job's build of Fashion-MNIST-LT is
reused; a new or empty one gets Fashion-MNIST-LT built into it; any other
directory is used as it is when it is a valid long-tail list data set
(``classes.txt``, the training and test lists ``--train-list`` /
``--test-list``, the images under ``--image-prefix``; optional
``class_freq.json`` and ``meta.json`` must agree with the training list)
and refused otherwise. Nothing in an existing data set is deleted or
overwritten. Many / medium / few thresholds: the options, else
``many_thr`` / ``few_thr`` of the data set's ``meta.json``, else (with
``--quick``) 20 / 8, else derived from the training counts (the classes by
count in thirds, 10 classes: 4 / 3 / 3; each threshold the geometric mean
of the counts on both sides, rounded to one significant digit when that
still separates them: 1000 / 200 for Fashion-MNIST-LT). The job prints
them with the group sizes. See docs/cls.md.
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
from disalign_demo.experiments import (CACHED_STAGE2_CONFIG, CONFIG_DIR,
                                       STAGE1_CONFIG, add_data_args,
                                       build_data, class_freq_file,
                                       data_layout, data_thresholds,
                                       format_table, log, run_stage,
                                       run_stage2_cached, stage_config)

STAGE2_CONFIG = osp.join(
    CONFIG_DIR, 'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py')
DATA_ROOT = osp.join(REPO, 'data', 'fashion_mnist_lt')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fashion-MNIST-LT: stage 1 -> DisAlign -> evaluation')
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO, 'work_dirs', 'main_job'),
        help='where checkpoints, logs, results and plots go')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny data set (under <work-dir>/data) and a few iterations')
    parser.add_argument(
        '--workers',
        type=int,
        default=0,
        help='data-loading worker processes (default 0: a 28 x 28 PNG '
        'decodes in ~0.07 ms, while a worker hands every sample tensor to '
        'the main process through its own file descriptor; measured on 2 '
        'cores, stage 2 takes 55 s with 0 workers and 107 s with 1, see '
        'docs/performance.md); torch uses the CPU cores minus one')
    parser.add_argument(
        '--stage2',
        choices=['runner', 'cached'],
        default='runner',
        help='how stage 2 is trained: "runner" (default), the Runner with '
        'the stage-2 config (a fresh augmentation of every image every '
        'epoch); "cached", the same recipe on features of the frozen stage 1 '
        'extracted once (--cache-passes augmented passes; the config '
        f'{osp.basename(CACHED_STAGE2_CONFIG)}): about 8x faster for stage '
        '2, but '
        'few-shot accuracy is lower (docs/performance.md), so it is not the '
        'default')
    parser.add_argument(
        '--cache-passes',
        type=int,
        default=1,
        help='augmented passes over the training set for --stage2 cached '
        '(epoch e uses pass e mod passes)')
    add_data_args(parser, DATA_ROOT)
    return parser.parse_args(argv)


def _cpu_seconds(who: str) -> float:
    """User + system CPU seconds of this process or its ended children."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF if who ==
                               'self' else resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plot_per_class(stage1_file: str,
                   stage2_file: str,
                   out: str,
                   name: str = 'Fashion-MNIST-LT') -> None:
    """Per-class accuracy of both stages, classes by training frequency."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    runs = []
    for name, path in (('stage 1', stage1_file), ('DisAlign', stage2_file)):
        with open(path) as f:
            saved = json.load(f)
        runs.append((name, saved['metrics'], saved['classes']))
    rows = runs[0][2]
    order = sorted(range(len(rows)), key=lambda i: -rows[i]['train_count'])
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(order)), 4.8))
    for k, (name, metrics, classes) in enumerate(runs):
        acc = [classes[i]['accuracy'] or 0.0 for i in order]
        label = f'{name} (top-1 {metrics["top1"]:.1f}%)'
        ax.bar(x + (k - 0.5) * 0.4, acc, 0.4, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([
        f'{rows[i]["name"]}\n{rows[i]["train_count"]}\n{rows[i]["group"]}'
        for i in order
    ],
                       fontsize=8)
    ax.set_ylabel('test accuracy (%)')
    ax.set_xlabel('class / training images / group, most to least frequent')
    ax.set_ylim(0, 115)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f'{name}: per-class accuracy on the test set')
    ax.legend(loc='upper right', ncol=2, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_grw_weights(class_freq_file: str, rho: float, out: str) -> None:
    """GRW class weights next to the training counts."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from mmdisalign.utils.class_freq import grw_weights, load_class_freq_meta
    meta = load_class_freq_meta(class_freq_file)
    counts = np.asarray(meta['counts'], dtype=float)
    names = meta['classes'] or [str(i) for i in range(len(counts))]
    order = np.argsort(-counts, kind='stable')
    weights = grw_weights(counts, rho)
    x = np.arange(len(counts))
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(counts)), 4.5))
    ax.bar(
        x,
        weights[order],
        color='tab:orange',
        label=f'GRW weight (rho={rho:g}, sum = K)')
    ax.set_yscale('log')
    ax.set_ylabel('class weight (log scale)')
    ax.set_xticks(x)
    ax.set_xticklabels([f'{names[i]}\n({int(counts[i])})' for i in order],
                       fontsize=8)
    ax.set_xlabel('class (training images)')
    ax2 = ax.twinx()
    ax2.plot(x, counts[order], 'o-', color='tab:blue', label='training images')
    ax2.set_yscale('log')
    ax2.set_ylabel('training images (log scale)')
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc='upper left')
    ax.set_title('Generalized re-weighting: w_c = K n_c^-rho / sum_k '
                 'n_k^-rho')
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    """Run the whole job; return the results dict (also saved as JSON)."""
    args = parse_args(argv)
    t_start = time.time()
    os.chdir(REPO)
    sys.path.insert(0, REPO)
    import mmdisalign.cls  # noqa: F401  (registers the modules)
    work_dir = osp.abspath(args.work_dir)
    data_root = args.data_root or (osp.join(work_dir, 'data')
                                   if args.quick else DATA_ROOT)
    data_root = osp.abspath(data_root)
    os.makedirs(work_dir, exist_ok=True)
    import torch
    workers = 0 if args.quick else args.workers
    # one core stays free for data loading (in the main process with 0
    # workers): 0 workers + 1 thread was the fastest measured setting on 2
    # shared cores (docs/performance.md)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - max(1, workers)))
    log(f'{os.cpu_count()} CPU cores: {workers} data worker(s), '
        f'{torch.get_num_threads()} torch thread(s)')
    data = build_data(data_root, args.quick, layout=data_layout(args))
    log(f'training images per class: {data["train_counts"]}')
    many_thr, few_thr = data_thresholds(data, args.many_threshold,
                                        args.few_threshold)
    class_freq = class_freq_file(data, work_dir)
    common = dict(
        workers=workers,
        many_thr=many_thr,
        few_thr=few_thr,
        class_freq=class_freq)

    cfg1 = stage_config(STAGE1_CONFIG, data, osp.join(work_dir, 'stage1'),
                        args.seed, args.quick, **common)
    metrics1, ckpt1, t1 = run_stage('stage 1', cfg1)
    cfg2 = stage_config(
        STAGE2_CONFIG,
        data,
        osp.join(work_dir, 'disalign'),
        args.seed,
        args.quick,
        load_from=ckpt1,
        **common)
    if args.stage2 == 'cached':
        log(f'stage 2 path: cached features ({args.cache_passes} augmented '
            'forward pass(es) of the frozen stage 1, then the stage-2 recipe '
            'on the cached features)')
        cfg2_cached = stage_config(
            CACHED_STAGE2_CONFIG,
            data,
            cfg2.work_dir,
            args.seed,
            args.quick,
            load_from=ckpt1,
            **common)
        metrics2, ckpt2, t2 = run_stage2_cached(
            'stage 2 (DisAlign)', cfg2, cfg2_cached, passes=args.cache_passes)
    else:
        log('stage 2 path: Runner (the stage-2 config, full forward every '
            'epoch)')
        metrics2, ckpt2, t2 = run_stage('stage 2 (DisAlign)', cfg2)

    table = format_table([('stage 1', metrics1), ('DisAlign', metrics2)])
    per_class_png = osp.join(work_dir, 'per_class_accuracy.png')
    grw_png = osp.join(work_dir, 'grw_weights.png')
    plot_per_class(
        osp.join(cfg1.work_dir, 'eval', 'per_class_accuracy.json'),
        osp.join(cfg2.work_dir, 'eval', 'per_class_accuracy.json'),
        per_class_png,
        name=data['name'])
    rho = cfg2.model.head.loss.rho
    plot_grw_weights(class_freq, rho, grw_png)

    results = dict(
        seed=args.seed,
        quick=args.quick,
        stage2_path=args.stage2,
        data_root=data_root,
        train_counts=data['train_counts'],
        many_thr=many_thr,
        few_thr=few_thr,
        stage1=metrics1,
        disalign=metrics2,
        stage1_checkpoint=ckpt1,
        disalign_checkpoint=ckpt2,
        seconds=dict(
            stage1_train=round(t1, 1),
            disalign_train=round(t2, 1),
            total=round(time.time() - t_start, 1),
            cpu_main_process=round(_cpu_seconds('self'), 1),
            cpu_workers=round(_cpu_seconds('children'), 1)))
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    print(f'\n{data["name"]}, test set, top-1 (%); many > {many_thr:g}, '
          f'few < {few_thr:g} training images:')
    print(table)
    print(f'\nstage 2 path: {args.stage2}')
    print(f'per-class accuracy plot: {per_class_png}')
    print(f'GRW weights plot:        {grw_png}')
    print(f'results:                 {osp.join(work_dir, "results.json")}')
    sec = results['seconds']
    print(f'total time: {sec["total"]:.0f} s (CPU: main process '
          f'{sec["cpu_main_process"]:.0f} s, data workers '
          f'{sec["cpu_workers"]:.0f} s)')
    return results


if __name__ == '__main__':
    main()
