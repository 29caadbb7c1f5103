"""Fashion-MNIST-LT experiments through the shipped configs.

The building blocks of ``tools/run_main_job.py`` (stage 1 -> DisAlign),
``tools/compare_baselines.py`` (stage 1 -> cRT / LWS / tau-norm / logit
adjustment / DisAlign, over several seeds) and
``benchmarks/cls_cached_stage2.py``: build the data set once, load a
shipped config and point it at a run's data and directories, train and
test one stage with mmengine's Runner (stage 2 on images, or on cached
features with the cached-feature config), and format the long-tail metrics
as a table.
"""
import copy
import json
import math
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    'REPO', 'CONFIG_DIR', 'STAGE1_CONFIG', 'CACHED_STAGE2_CONFIG', 'GROUPS',
    'METRIC_KEYS', 'LT_COLUMNS', 'log', 'build_data', 'stage_config',
    'run_stage', 'evaluate_stage', 'train_stage2_cached', 'run_stage2_cached',
    'format_table', 'mean_std', 'format_mean_table', 'summarize_runs'
]

#: The folder holding ``tools/`` and ``configs/``: the repository, or
#: ``mmdisalign/.mim`` of an installed wheel (``setup.py`` copies both).
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
CONFIG_DIR = osp.join(REPO, 'configs', 'cls', 'fashion_mnist_lt')
STAGE1_CONFIG = osp.join(CONFIG_DIR,
                         'resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py')
#: DisAlign stage 2 on cached features (the model, data set and hook of
#: the cached path on top of the DisAlign stage-2 config).
CACHED_STAGE2_CONFIG = osp.join(
    CONFIG_DIR,
    'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign-cached.py')
GROUPS = ('many', 'medium', 'few')
#: Metric keys of ``LongTailAccuracy`` (prefix ``lt/``), table order.
METRIC_KEYS = ('top1', ) + GROUPS


def log(msg: str, who: str = 'main job') -> None:
    """Print a time-stamped progress line."""
    print(f'[{who} {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def build_data(data_root: str, quick: bool, who: str = 'main job') -> dict:
    """Build Fashion-MNIST-LT unless an identical build is there.

    Args:
        data_root (str): Where the data set goes.
        quick (bool): A tiny version (40..4 training images per class, 10
            test images per class) for tests.
        who (str): Prefix of the progress lines.

    Returns:
        dict: The build's ``meta.json`` (``train_counts``, ``args``, ...).
    """
    from .fashion_mnist_lt import build_fashion_mnist_lt, is_built
    args = dict(ratio=100, seed=0)
    if quick:
        args = dict(ratio=10, seed=0, max_per_class=40, test_per_class=10)
    if is_built(data_root, **args):
        log(f'Fashion-MNIST-LT found in {data_root}', who)
    else:
        t0 = time.time()
        log(f'building Fashion-MNIST-LT in {data_root} ...', who)
        build_fashion_mnist_lt(data_root, **args)
        log(f'built in {time.time() - t0:.1f} s', who)
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
                 load_from: Optional[str] = None,
                 workers: int = 0):
    """Load a shipped config and point it at this run's data and dirs.

    The test set is evaluated once, after training (no validation during
    training); the class-frequency files of the GRW loss and of logit
    adjustment are the ones of ``data_root``. With ``quick``, 2 epochs
    (stage 1) or 1 epoch (stage 2), batch 32 and thresholds for the tiny
    set. A cached-feature config (no image training set, no test set) keeps
    its ``cache_dir`` (see :func:`train_stage2_cached`).

    Args:
        config (str): A Fashion-MNIST-LT config.
        data_root (str): The built data set.
        work_dir (str): The run's work dir.
        seed (int): ``randomness.seed``.
        quick (bool): See above.
        load_from (str, optional): Checkpoint to start from (stage 2).
        workers (int): Data-loading worker processes. Defaults to 0.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.experiment_name = (f'{osp.basename(work_dir)}_seed{seed}_'
                           f'{time.strftime("%Y%m%d_%H%M%S")}')
    cfg.randomness = dict(seed=seed, deterministic=False)
    tests = cfg.get('test_dataloader') is not None
    if 'data_root' in cfg.train_dataloader.dataset:
        _set_dataset_root(cfg.train_dataloader.dataset, data_root)
    if tests:
        _set_dataset_root(cfg.test_dataloader.dataset, data_root)
        cfg.test_evaluator.data_root = data_root
        cfg.test_evaluator.out_dir = osp.join(work_dir, 'eval')
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    for part in (cfg.model.head.get('loss',
                                    {}), cfg.model.head.get('calibration',
                                                            {})):
        if 'class_freq' in part:
            part['class_freq'] = osp.join(data_root, 'class_freq.json')
    if load_from is not None:
        cfg.load_from = load_from
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        if loader is None:
            continue
        loader.num_workers = workers
        loader.persistent_workers = workers > 0
    trains = 'train_cfg' in cfg and 'max_epochs' in cfg.train_cfg
    if quick:
        if trains:
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
            cfg.default_hooks.checkpoint.interval = epochs
        cfg.train_dataloader.batch_size = 32
        if tests:
            # The quick set has 40..4 images per class: 3 / 4 / 3 groups.
            cfg.test_evaluator.many_thr = 20
            cfg.test_evaluator.few_thr = 8
        cfg.default_hooks.logger.interval = 5
    if trains:
        cfg.default_hooks.checkpoint.max_keep_ckpts = 1
        cfg.default_hooks.checkpoint.save_last = True
    return cfg


def run_stage(name: str,
              cfg,
              who: str = 'main job') -> Tuple[dict, str, float]:
    """Train and test one stage with the Runner (by epochs or iterations).

    Returns:
        tuple: ``(test metrics, last checkpoint, training seconds)``.
    """
    from mmengine.runner import Runner
    if 'max_epochs' in cfg.train_cfg:
        length = f'{cfg.train_cfg.max_epochs} epochs'
        last = f'epoch_{cfg.train_cfg.max_epochs}.pth'
    else:
        length = f'{cfg.train_cfg.max_iters} iterations'
        last = f'iter_{cfg.train_cfg.max_iters}.pth'
    log(f'{name}: training ({length}), logs in {cfg.work_dir}', who)
    t0 = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    t_train = time.time() - t0
    log(f'{name}: trained in {t_train:.0f} s; testing ...', who)
    metrics = runner.test()
    ckpt = osp.join(cfg.work_dir, last)
    log(f'{name}: done in {time.time() - t0:.0f} s', who)
    return dict(metrics), ckpt, t_train


def evaluate_stage(name: str,
                   cfg,
                   checkpoint: str,
                   who: str = 'main job') -> dict:
    """Test ``checkpoint`` with ``cfg`` (``Runner.test``); return metrics."""
    from mmengine.runner import Runner
    cfg = cfg.copy()
    cfg.load_from = checkpoint
    t0 = time.time()
    metrics = dict(Runner.from_cfg(cfg).test())
    log(f'{name}: tested in {time.time() - t0:.0f} s', who)
    return metrics


def train_stage2_cached(cfg,
                        cached_cfg,
                        cache_dir: str,
                        passes: int = 1,
                        augment: bool = True,
                        dtype: str = 'float32') -> dict:
    """Extract the features (unless ``cache_dir`` holds a cache), train.

    The extraction is ``tools/cache_features.py`` on the image config
    ``cfg`` (``passes`` passes over the training set, with the training
    augmentation if ``augment``); the training is ``Runner.train`` with the
    cached-feature config ``cached_cfg`` reading ``cache_dir``.

    Returns:
        dict: ``extraction`` (the cache's meta data, None if the cache
        existed), ``checkpoint``, ``seconds`` (training) and ``iters``.
    """
    from mmengine.runner import Runner
    if TOOLS not in sys.path:
        sys.path.append(TOOLS)
    from cache_features import cache_features
    extraction = None
    if not osp.isfile(osp.join(cache_dir, 'meta.json')):
        extraction = cache_features(
            cfg, cache_dir, passes=passes, augment=augment, dtype=dtype)
    cached_cfg = copy.deepcopy(cached_cfg)
    cached_cfg.train_dataloader.dataset.cache_dir = cache_dir
    t0 = time.perf_counter()
    runner = Runner.from_cfg(cached_cfg)
    runner.train()
    return dict(
        extraction=extraction,
        checkpoint=osp.join(cached_cfg.work_dir,
                            f'epoch_{cached_cfg.train_cfg.max_epochs}.pth'),
        seconds=time.perf_counter() - t0,
        iters=runner.iter)


def run_stage2_cached(name: str,
                      cfg,
                      cached_cfg,
                      passes: int = 1,
                      augment: bool = True,
                      cache_dir: Optional[str] = None,
                      who: str = 'main job') -> Tuple[dict, str, float]:
    """Stage 2 on cached features of the frozen stage 1, then the test.

    :func:`train_stage2_cached` (extraction into ``cache_dir``, by default
    ``<work_dir>/feature_cache``, then the Runner with ``cached_cfg``), and
    the checkpoint tested on images with the image config ``cfg``.

    Returns:
        tuple: ``(test metrics, checkpoint, seconds of extraction and
        training)``.
    """
    log(
        f'{name}: caching the frozen stage-1 features ({passes} pass(es), '
        f'augment={augment}), then training on them '
        f'({cached_cfg.train_cfg.max_epochs} epochs), in '
        f'{cached_cfg.work_dir}', who)
    t0 = time.time()
    result = train_stage2_cached(
        cfg,
        cached_cfg,
        cache_dir or osp.join(cached_cfg.work_dir, 'feature_cache'),
        passes=passes,
        augment=augment)
    t_train = time.time() - t0
    extraction = result['extraction']
    extracted = (f'extracted in {extraction["seconds"]:.0f} s, '
                 if extraction else '')
    log(
        f'{name}: {extracted}trained in {result["seconds"]:.0f} s; '
        'testing ...', who)
    metrics = evaluate_stage(name, cfg, result['checkpoint'], who)
    return metrics, result['checkpoint'], t_train


def format_table(rows: Sequence[Tuple[str, dict]]) -> str:
    """Markdown table of the long-tail metrics (``lt/...`` keys)."""
    lines = [
        '| model | overall | many | medium | few |', '|---|---|---|---|---|'
    ]
    for name, metrics in rows:
        cells = []
        for key in METRIC_KEYS:
            value = metrics.get(f'lt/{key}')
            cells.append('n/a' if value is None else f'{value:.2f}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


#: ``(metric key, header)`` of the long-tail table.
LT_COLUMNS = tuple((f'lt/{key}', header)
                   for key, header in zip(METRIC_KEYS, ('overall', ) + GROUPS))


def format_mean_table(rows: Sequence[Tuple[str, List[dict]]],
                      columns: Sequence[Tuple[str, str]] = LT_COLUMNS) -> str:
    """Markdown table of "mean ± std" over runs of each method.

    Args:
        rows: ``(name, [metrics of every seed])`` per method.
        columns: ``(metric key, header)`` per column. Defaults to the
            long-tail top-1 (overall / many / medium / few).
    """
    lines = [
        '| method | ' + ' | '.join(h for _, h in columns) + ' |',
        '|---' * (len(columns) + 1) + '|'
    ]
    for name, runs in rows:
        cells = []
        for key, _ in columns:
            mean, std = mean_std([m[key] for m in runs])
            cells.append('n/a' if math.isnan(mean) else f'{mean:.2f} ± '
                         f'{std:.2f}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def summarize_runs(runs: Dict[str, List[dict]],
                   keys: Optional[Dict[str, str]] = None) -> Dict[str, dict]:
    """``{method: {name: {'mean', 'std', 'values'}}}`` of per-seed metrics.

    Args:
        runs: ``{method: [metrics of every seed]}``.
        keys: ``{name: metric key}``. Defaults to the long-tail top-1
            (``top1`` -> ``lt/top1``, ...).
    """
    if keys is None:
        keys = {key: f'lt/{key}' for key in METRIC_KEYS}
    out = {}
    for method, metrics in runs.items():
        out[method] = {}
        for name, key in keys.items():
            values = [m[key] for m in metrics]
            mean, std = mean_std(values)
            out[method][name] = dict(mean=mean, std=std, values=values)
    return out
