"""The main job: DisAlign on Fashion-MNIST-LT, end to end, on the CPU.

1. builds Fashion-MNIST-LT under ``data/fashion_mnist_lt`` (once),
2. trains stage 1 (joint training, plain linear head),
3. trains stage 2 (DisAlign calibration + GRW loss on the frozen stage 1),
4. evaluates both on the balanced test set, prints the table
   (overall / many / medium / few) and writes two plots: per-class accuracy
   (stage 1 vs DisAlign, classes by training frequency) and the GRW class
   weights.

Everything runs through mmengine's Runner with the shipped configs::

    bash tools/setup_env.sh && .venv/bin/python tools/run_main_job.py

Options: ``--work-dir`` (default ``work_dirs/main_job``), ``--seed``,
``--quick`` (a tiny data set and a few iterations, for tests).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STAGE1_CONFIG = osp.join(
    REPO, 'configs/cls/fashion_mnist_lt/'
    'resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py')
STAGE2_CONFIG = osp.join(
    REPO, 'configs/cls/fashion_mnist_lt/'
    'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py')
DATA_ROOT = osp.join(REPO, 'data', 'fashion_mnist_lt')
GROUPS = ('many', 'medium', 'few')


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
        default=1,
        help='data-loading worker processes; torch uses the remaining CPU '
        'cores (on 2 cores: 1 worker + 1 compute thread, which avoids the '
        'oversubscription that slows 2 threads + 1 worker down)')
    parser.add_argument(
        '--data-root',
        default=None,
        help=f'Fashion-MNIST-LT directory (default: {DATA_ROOT}, or '
        '<work-dir>/data with --quick); built if missing')
    return parser.parse_args(argv)


def log(msg: str) -> None:
    print(f'[main job {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def build_data(data_root: str, quick: bool) -> dict:
    """Build Fashion-MNIST-LT unless an identical build is there."""
    from mmdisalign.cls.datasets.fashion_mnist_lt import (
        build_fashion_mnist_lt, is_built)
    args = dict(ratio=100, seed=0)
    if quick:
        args = dict(ratio=10, seed=0, max_per_class=40, test_per_class=10)
    if is_built(data_root, **args):
        log(f'Fashion-MNIST-LT found in {data_root}')
    else:
        t0 = time.time()
        log(f'building Fashion-MNIST-LT in {data_root} ...')
        build_fashion_mnist_lt(data_root, **args)
        log(f'built in {time.time() - t0:.1f} s')
    with open(osp.join(data_root, 'meta.json')) as f:
        return json.load(f)


def _set_dataset_root(dataset: dict, data_root: str) -> None:
    dataset['data_root'] = data_root
    dataset['classes'] = osp.join(data_root, 'classes.txt')


def stage_config(config: str,
                 data_root: str,
                 work_dir: str,
                 seed: int,
                 quick: bool,
                 load_from: str = None,
                 workers: int = 1):
    """Load a shipped config and point it at this run's data and dirs."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.experiment_name = (f'{osp.basename(work_dir)}_seed{seed}_'
                           f'{time.strftime("%Y%m%d_%H%M%S")}')
    cfg.randomness = dict(seed=seed, deterministic=False)
    _set_dataset_root(cfg.train_dataloader.dataset, data_root)
    _set_dataset_root(cfg.test_dataloader.dataset, data_root)
    cfg.test_evaluator.data_root = data_root
    cfg.test_evaluator.out_dir = osp.join(work_dir, 'eval')
    # The test set is evaluated once, after training, by runner.test().
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    loss = cfg.model.head.get('loss', {})
    if 'class_freq' in loss:
        loss['class_freq'] = osp.join(data_root, 'class_freq.json')
    if load_from is not None:
        cfg.load_from = load_from
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.num_workers = workers
        loader.persistent_workers = workers > 0
    if quick:
        epochs = 2 if load_from is None else 1
        cfg.train_cfg.max_epochs = epochs
        cfg.param_scheduler = [
            dict(
                type='CosineAnnealingLR',
                by_epoch=True,
                begin=0,
                end=epochs,
                T_max=epochs)
        ]
        cfg.train_dataloader.batch_size = 32
        # The quick set has 40..4 images per class: 3 / 4 / 3 groups.
        cfg.test_evaluator.many_thr = 20
        cfg.test_evaluator.few_thr = 8
        cfg.default_hooks.logger.interval = 5
        cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    cfg.default_hooks.checkpoint.save_last = True
    return cfg


def run_stage(name: str, cfg) -> tuple:
    """Train and test one stage; return (test metrics, last checkpoint)."""
    from mmengine.runner import Runner
    log(f'{name}: training ({cfg.train_cfg.max_epochs} epochs), logs in '
        f'{cfg.work_dir}')
    t0 = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    t_train = time.time() - t0
    log(f'{name}: trained in {t_train:.0f} s; testing ...')
    metrics = runner.test()
    ckpt = osp.join(cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    log(f'{name}: done in {time.time() - t0:.0f} s')
    return dict(metrics), ckpt, t_train


def _cpu_seconds(who: str) -> float:
    """User + system CPU seconds of this process or its ended children."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF if who ==
                               'self' else resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def format_table(rows: list) -> str:
    """Markdown table of the long-tail metrics."""
    head = '| model | overall | many | medium | few |'
    lines = [head, '|---|---|---|---|---|']
    for name, metrics in rows:
        cells = []
        for key in ('top1', ) + GROUPS:
            value = metrics.get(f'lt/{key}')
            cells.append('n/a' if value is None else f'{value:.2f}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot_per_class(stage1_file: str, stage2_file: str, out: str) -> None:
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
    ax.set_title('Fashion-MNIST-LT: per-class accuracy on the balanced test '
                 'set')
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
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - workers))
    log(f'{os.cpu_count()} CPU cores: {workers} data worker(s), '
        f'{torch.get_num_threads()} torch thread(s)')
    meta = build_data(data_root, args.quick)
    log(f'training images per class: {meta["train_counts"]}')

    cfg1 = stage_config(
        STAGE1_CONFIG,
        data_root,
        osp.join(work_dir, 'stage1'),
        args.seed,
        args.quick,
        workers=workers)
    metrics1, ckpt1, t1 = run_stage('stage 1', cfg1)
    cfg2 = stage_config(
        STAGE2_CONFIG,
        data_root,
        osp.join(work_dir, 'disalign'),
        args.seed,
        args.quick,
        load_from=ckpt1,
        workers=workers)
    metrics2, ckpt2, t2 = run_stage('stage 2 (DisAlign)', cfg2)

    table = format_table([('stage 1', metrics1), ('DisAlign', metrics2)])
    per_class_png = osp.join(work_dir, 'per_class_accuracy.png')
    grw_png = osp.join(work_dir, 'grw_weights.png')
    plot_per_class(
        osp.join(cfg1.work_dir, 'eval', 'per_class_accuracy.json'),
        osp.join(cfg2.work_dir, 'eval', 'per_class_accuracy.json'),
        per_class_png)
    rho = cfg2.model.head.loss.rho
    plot_grw_weights(osp.join(data_root, 'class_freq.json'), rho, grw_png)

    results = dict(
        seed=args.seed,
        quick=args.quick,
        data_root=data_root,
        train_counts=meta['train_counts'],
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
    print(f'\nFashion-MNIST-LT (ratio {meta["args"]["ratio"]:g}), balanced '
          'test set, top-1 (%):')
    print(table)
    print(f'\nper-class accuracy plot: {per_class_png}')
    print(f'GRW weights plot:        {grw_png}')
    print(f'results:                 {osp.join(work_dir, "results.json")}')
    sec = results['seconds']
    print(f'total time: {sec["total"]:.0f} s (CPU: main process '
          f'{sec["cpu_main_process"]:.0f} s, data workers '
          f'{sec["cpu_workers"]:.0f} s)')
    return results


if __name__ == '__main__':
    main()
