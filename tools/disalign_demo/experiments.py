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
import argparse
import copy
import math
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .list_data import DEFAULT_LAYOUT

__all__ = [
    'REPO', 'CONFIG_DIR', 'STAGE1_CONFIG', 'CACHED_STAGE2_CONFIG', 'GROUPS',
    'METRIC_KEYS', 'LT_COLUMNS', 'QUICK_THRESHOLDS', 'log', 'add_data_args',
    'data_layout', 'build_data', 'data_thresholds', 'class_freq_file',
    'stage_config', 'run_stage', 'evaluate_stage', 'train_stage2_cached',
    'run_stage2_cached', 'format_table', 'mean_std', 'format_mean_table',
    'summarize_runs'
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


def add_data_args(parser: argparse.ArgumentParser, data_root: str) -> None:
    """``--data-root``, the layout and the threshold options (shared with
    ``tools/compare_baselines.py``)."""
    parser.add_argument(
        '--data-root',
        default=None,
        help=f'the data set (default: {data_root}, or <work-dir>/data with '
        '--quick). Holding this tool\'s Fashion-MNIST-LT build: reused; new '
        'or empty: Fashion-MNIST-LT is built there; otherwise used as it '
        'is when it is a valid long-tail list data set (classes.txt, the '
        'two lists, the listed images; class_freq.json and meta.json, when '
        'there, must match the training list), refused otherwise. Nothing '
        'in it is ever deleted or overwritten')
    parser.add_argument(
        '--train-list',
        default=DEFAULT_LAYOUT['train_list'],
        help='training list ("relative/path label" lines) under --data-root '
        '(default: %(default)s)')
    parser.add_argument(
        '--test-list',
        default=DEFAULT_LAYOUT['test_list'],
        help='test list under --data-root (default: %(default)s)')
    parser.add_argument(
        '--image-prefix',
        default=DEFAULT_LAYOUT['image_prefix'],
        help='folder the list paths are relative to, under --data-root '
        '(default: %(default)s)')
    parser.add_argument(
        '--many-threshold',
        type=float,
        default=None,
        help='"many" classes have more training images than this. Default: '
        'many_thr of the data set\'s meta.json, else 20 with --quick, else '
        'derived from the training counts: the classes sorted by count '
        'are split in thirds (10 classes: 4 / 3 / 3) and the threshold is '
        'the geometric mean of the two counts at the split, rounded to one '
        'significant digit when that still separates them (Fashion-MNIST-LT: '
        '1000)')
    parser.add_argument(
        '--few-threshold',
        type=float,
        default=None,
        help='"few" classes have fewer training images than this. Default: '
        'as --many-threshold (meta.json few_thr, 8 with --quick, else '
        'derived; Fashion-MNIST-LT: 200)')


def data_layout(args) -> dict:
    """The ``--train-list`` / ``--test-list`` / ``--image-prefix``."""
    return dict(
        train_list=args.train_list,
        test_list=args.test_list,
        image_prefix=args.image_prefix)


#: Many / few thresholds of the ``--quick`` set (40..4 training images
#: per class: 3 / 4 / 3 classes).
QUICK_THRESHOLDS = (20, 8)


def build_data(data_root: str,
               quick: bool,
               who: str = 'main job',
               layout: Optional[dict] = None,
               val_per_class: int = 0,
               val_list: Optional[str] = None) -> dict:
    """Reuse, use or build the data set of a run; never modify one.

    - ``data_root`` holds Fashion-MNIST-LT built by this tool with the same
      options (ratio 100, or the ``quick`` set): reused.
    - ``data_root`` is missing or empty: Fashion-MNIST-LT is built there
      (with the default ``layout`` only).
    - ``data_root`` holds anything else: used as it is when it is a valid
      long-tail list data set (:func:`list_data.check_list_dataset`),
      refused otherwise (:class:`list_data.InvalidDataset`).

    Args:
        data_root (str): The data set's directory.
        quick (bool): Build the tiny set (40..4 training images per class,
            10 test images per class) for tests.
        who (str): Prefix of the progress lines.
        layout (dict, optional): ``train_list``, ``test_list``,
            ``image_prefix`` relative to ``data_root``. Defaults to the
            Fashion-MNIST-LT names (:data:`list_data.DEFAULT_LAYOUT`).
        val_per_class (int): Fashion-MNIST-LT builds hold a balanced
            validation list of this many images per class (held out from
            the training images). Defaults to 0 (none).
        val_list (str, optional): The validation list to check (relative
            to ``data_root``; see :func:`list_data.check_list_dataset`).
            Defaults to None.

    Returns:
        dict: :func:`list_data.check_list_dataset` of the data set, with
        ``name`` (for titles), ``built`` (whether this call built it) and
        ``quick_set`` (whether it is this tool's ``quick`` build).
    """
    from .fashion_mnist_lt import (BUILDING_NAME, build_fashion_mnist_lt,
                                   is_built)
    from .list_data import check_list_dataset
    layout = dict(DEFAULT_LAYOUT, **(layout or {}))
    args = dict(ratio=100, seed=0)
    if quick:
        args = dict(ratio=10, seed=0, max_per_class=40, test_per_class=10)
    if val_per_class:
        args['val_per_class'] = int(val_per_class)
    built = False
    empty = not osp.exists(data_root) or (osp.isdir(data_root)
                                          and not os.listdir(data_root))
    if is_built(data_root, **args):
        log(f'Fashion-MNIST-LT found in {data_root}', who)
    elif (empty or osp.isfile(osp.join(
            data_root, BUILDING_NAME))) and layout == DEFAULT_LAYOUT:
        # a new directory, or an unfinished build (the builder refuses one
        # of other options)
        t0 = time.time()
        log(f'building Fashion-MNIST-LT in {data_root} ...', who)
        build_fashion_mnist_lt(data_root, **args)
        log(f'built in {time.time() - t0:.1f} s', who)
        built = True
    data = check_list_dataset(data_root, val_list=val_list, **layout)
    meta = data['meta'] or {}
    if isinstance(meta.get('args'), dict) and 'ratio' in meta['args']:
        data['name'] = f'Fashion-MNIST-LT (ratio {meta["args"]["ratio"]:g})'
    else:
        data['name'] = osp.basename(osp.normpath(data_root))
    if not built and not is_built(data_root, **args):
        log(
            f'using the data set in {data_root} as it is ({data["name"]}, '
            f'{len(data["classes"])} classes, '
            f'{sum(data["train_counts"])} training and {data["num_test"]} '
            'test images); nothing in it is modified', who)
    data['built'] = built
    data['quick_set'] = quick and is_built(data_root, **args)
    return data


def data_thresholds(data: dict,
                    many_thr: Optional[float] = None,
                    few_thr: Optional[float] = None,
                    who: str = 'main job') -> Tuple[float, float]:
    """Many / few thresholds of a run (printed with the group sizes).

    The options, else ``many_thr`` / ``few_thr`` of the data set's
    ``meta.json``, else for this tool's ``quick`` set
    :data:`QUICK_THRESHOLDS`, else
    derived from the training counts (:func:`list_data.derive_thresholds`:
    Fashion-MNIST-LT gets 1000 / 200).
    """
    from .list_data import group_sizes, resolve_thresholds
    many, few, source = resolve_thresholds(
        data['train_counts'],
        many_thr,
        few_thr,
        meta=data['meta'],
        preset=QUICK_THRESHOLDS if data.get('quick_set') else None)
    sizes = group_sizes(data['train_counts'], many, few)
    log(
        f'groups: many > {many:g}, medium {few:g}..{many:g}, few < {few:g} '
        f'training images ({sizes[0]} / {sizes[1]} / {sizes[2]} classes; '
        f'thresholds: {source})', who)
    return many, few


def class_freq_file(data: dict, work_dir: str) -> str:
    """The data set's ``class_freq.json``, or one written to ``work_dir``.

    A data set without a class-frequency file is not written to: the
    counts of its training list go to ``<work_dir>/class_freq.json``.
    """
    if data['class_freq'] is not None:
        return data['class_freq']
    from mmdisalign.utils.class_freq import save_class_freq
    path = osp.join(work_dir, 'class_freq.json')
    os.makedirs(work_dir, exist_ok=True)
    save_class_freq(
        path,
        data['train_counts'],
        classes=list(data['classes']),
        count_type='images',
        source=osp.join(data['root'], data['train_list']))
    return path


def _set_dataset(dataset: dict, data: dict, ann_file: str) -> None:
    dataset['data_root'] = data['root']
    dataset['classes'] = data['classes_file']
    dataset['ann_file'] = data[ann_file]
    dataset['data_prefix'] = data['image_prefix']


def _set_num_classes(cfg, num_classes: int) -> None:
    """Every ``num_classes`` of the model (head, loss, calibration) and of
    the data preprocessor."""
    parts = [cfg.model.head, cfg.model.get('data_preprocessor')]
    parts += [cfg.model.head.get(k) for k in ('loss', 'calibration')]
    parts.append(cfg.get('data_preprocessor'))
    for part in parts:
        if part is not None and 'num_classes' in part:
            part['num_classes'] = num_classes


def stage_config(config: str,
                 data_root,
                 work_dir: str,
                 seed: int,
                 quick: bool,
                 load_from: Optional[str] = None,
                 workers: int = 0,
                 many_thr: Optional[float] = None,
                 few_thr: Optional[float] = None,
                 class_freq: Optional[str] = None):
    """Load a shipped config and point it at this run's data and dirs.

    The test set is evaluated once, after training (no validation during
    training); the class-frequency files of the GRW loss and of logit
    adjustment are ``class_freq`` (by default ``class_freq.json`` of the
    data set). With ``quick``, 2 epochs (stage 1) or 1 epoch (stage 2),
    batch 32 and thresholds for the tiny set (:data:`QUICK_THRESHOLDS`).
    A cached-feature config (no image training set, no test set) keeps its
    ``cache_dir`` (see :func:`train_stage2_cached`).

    Args:
        config (str): A Fashion-MNIST-LT config.
        data_root (str | dict): The data set: a Fashion-MNIST-LT directory,
            or :func:`build_data`'s description of any long-tail list data
            set (its lists, image prefix and classes; the model's
            ``num_classes`` follows its classes).
        work_dir (str): The run's work dir.
        seed (int): ``randomness.seed``.
        quick (bool): See above.
        load_from (str, optional): Checkpoint to start from (stage 2).
        workers (int): Data-loading worker processes. Defaults to 0.
        many_thr (float, optional): ``many_thr`` of the evaluator.
            Defaults to None (the config's, or the quick preset).
        few_thr (float, optional): ``few_thr`` of the evaluator. Defaults
            to None (as ``many_thr``).
        class_freq (str, optional): The class-frequency file. Defaults to
            None (``class_freq.json`` of the data set).

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    if isinstance(data_root, str):
        data = dict(
            DEFAULT_LAYOUT,
            root=data_root,
            classes_file=osp.join(data_root, 'classes.txt'),
            classes=None)
    else:
        data = data_root
    class_freq = class_freq or osp.join(data['root'], 'class_freq.json')
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.experiment_name = (f'{osp.basename(work_dir)}_seed{seed}_'
                           f'{time.strftime("%Y%m%d_%H%M%S")}')
    cfg.randomness = dict(seed=seed, deterministic=False)
    tests = cfg.get('test_dataloader') is not None
    if 'data_root' in cfg.train_dataloader.dataset:
        _set_dataset(cfg.train_dataloader.dataset, data, 'train_list')
    if tests:
        _set_dataset(cfg.test_dataloader.dataset, data, 'test_list')
        cfg.test_evaluator.data_root = data['root']
        cfg.test_evaluator.train_ann_file = data['train_list']
        cfg.test_evaluator.out_dir = osp.join(work_dir, 'eval')
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    for part in (cfg.model.head.get('loss',
                                    {}), cfg.model.head.get('calibration',
                                                            {})):
        if 'class_freq' in part:
            part['class_freq'] = class_freq
    if data['classes'] is not None:
        _set_num_classes(cfg, len(data['classes']))
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
            cfg.test_evaluator.many_thr, cfg.test_evaluator.few_thr = (
                QUICK_THRESHOLDS)
        cfg.default_hooks.logger.interval = 5
    if tests and many_thr is not None:
        cfg.test_evaluator.many_thr = many_thr
    if tests and few_thr is not None:
        cfg.test_evaluator.few_thr = few_thr
    if trains:
        cfg.default_hooks.checkpoint.max_keep_ckpts = 1
        cfg.default_hooks.checkpoint.save_last = True
    return cfg


def run_stage(name: str,
              cfg,
              who: str = 'main job',
              trained: Optional[Callable] = None) -> Tuple[dict, str, float]:
    """Train and test one stage with the Runner (by epochs or iterations).

    Args:
        trained (callable, optional): Called with the Runner after its
            training, before its test (e.g. to read a hook's findings).

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
    if trained is not None:
        trained(runner)
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
                        dtype: str = 'float32',
                        compile: bool = True,
                        trained: Optional[Callable] = None) -> dict:
    """Extract the features (unless ``cache_dir`` holds a cache), train.

    The extraction is ``tools/cache_features.py`` on the image config
    ``cfg`` (``passes`` passes over the training set, with the training
    augmentation if ``augment``; the backbone and neck compiled by
    ``torch.compile`` unless ``compile=False``); the training is
    ``Runner.train`` with the cached-feature config ``cached_cfg`` reading
    ``cache_dir``; ``trained`` (optional) is called with that Runner after
    its training.

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
            cfg,
            cache_dir,
            passes=passes,
            augment=augment,
            dtype=dtype,
            compile=compile)
    cached_cfg = copy.deepcopy(cached_cfg)
    cached_cfg.train_dataloader.dataset.cache_dir = cache_dir
    t0 = time.perf_counter()
    runner = Runner.from_cfg(cached_cfg)
    runner.train()
    if trained is not None:
        trained(runner)
    return dict(
        extraction=extraction,
        checkpoint=osp.join(cached_cfg.work_dir,
                            f'epoch_{cached_cfg.train_cfg.max_epochs}.pth'),
        seconds=time.perf_counter() - t0,
        iters=runner.iter)


def run_stage2_cached(
        name: str,
        cfg,
        cached_cfg,
        passes: int = 1,
        augment: bool = True,
        cache_dir: Optional[str] = None,
        who: str = 'main job',
        compile: bool = True,
        trained: Optional[Callable] = None) -> Tuple[dict, str, float]:
    """Stage 2 on cached features of the frozen stage 1, then the test.

    :func:`train_stage2_cached` (extraction into ``cache_dir``, by default
    ``<work_dir>/feature_cache``, compiled unless ``compile=False``, then
    the Runner with ``cached_cfg``), and the checkpoint tested on images
    with the image config ``cfg``.

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
        augment=augment,
        compile=compile,
        trained=trained)
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
