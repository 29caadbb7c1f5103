"""Choose the stage-2 hyper-parameters of a classifier on validation.

Extracts the frozen stage-1 features ONCE, for the training split (clean,
or ``--passes`` augmented passes with ``--augment``) and for the
validation split (clean), with ``tools/cache_features.py``, then sweeps on
the validation split:

- ``rho`` of DisAlign's GRW loss (``--rho``): every value trains stage 2 on
  the cached training features (the Runner, ``CachedFeatureClassifier``);
- the stage-2 learning rate (``--lr``) of DisAlign, at the chosen rho;
- the learning rate of the cRT and LWS baselines (``--crt-lr`` /
  ``--lws-lr``, with their stage-2 configs ``--crt-config`` /
  ``--lws-config``): trained on the same cached features, with their own
  recipe (re-initialised classifier, class-balanced sampling, plain
  cross-entropy);
- ``tau`` of tau-normalisation (``--tau-norm``) and of post-hoc logit
  adjustment (``--logit-adjust``): nothing trained, the stage-1 head with
  that calibration applied to the cached validation features.

(cRT and LWS of the shipped configs train with plain cross-entropy, not
the GRW loss: they have no rho to tune; their learning rate is their one
stage-2 hyper-parameter.)

Rule: the chosen value of a sweep is the one with the best validation
overall top-1; ties go to the first value in the order given. A DisAlign
run whose calibration collapsed (sigma ~ 0: it predicts like stage 1, see
docs/stage2.md) is trained to the end, reported and never chosen. The tool
prints a table per sweep (value -> overall / many / medium / few), writes
``results.json``, ``tuning_curves.png`` (overall and few-shot accuracy
against each swept value) and one config snippet per method
(``tuned_disalign.py``, ``tuned_crt.py``, ``tuned_lws.py``,
``tuned_tau-norm.py``, ``tuned_logit-adjust.py``)
that the stage-2 / post-hoc config inherits (``_base_``) or the user
copies.

The validation split is ``tuning_ann_file`` of the config (set by the data
set configs under ``configs/cls/_base_/datasets``) or ``--val-ann-file``,
read like the test split (test pipeline, same ``data_root`` and image
prefix). The tool refuses the test split, a missing split, sweep values
outside a method's range and a cache of other weights::

    python tools/tune_calibration.py CONFIG --checkpoint STAGE1.pth \\
        --work-dir work_dirs/tune --rho 0,0.5,1,1.5,2 --lr 0.03,0.1,0.3 \\
        --tau-norm 0,0.5,1,1.5 --logit-adjust 0,0.5,1,1.5
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

TOOLS = osp.dirname(osp.abspath(__file__))
try:
    import mmdisalign  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, osp.dirname(TOOLS))
    import mmdisalign  # noqa: F401
from mmdisalign.utils.config import CfgOptionsAction, load_config  # noqa: E402

if TOOLS not in sys.path:
    sys.path.append(TOOLS)
from cache_features import build_frozen_model, cache_features  # noqa: E402

#: Default sweeps.
DEFAULT_RHO = (0.0, 0.4, 0.8, 1.2, 1.6, 2.0)
DEFAULT_TAU = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
DEFAULT_LR = (0.003, 0.01, 0.03, 0.1, 0.3)
#: (sweep, method, parameter) of the sweeps, in the order they run.
SWEEPS = (('rho', 'disalign', 'rho'), ('lr', 'disalign', 'lr'),
          ('crt-lr', 'crt', 'lr'), ('lws-lr', 'lws', 'lr'),
          ('tau-norm', 'tau-norm', 'tau'), ('logit-adjust', 'logit-adjust',
                                            'tau'))
#: Methods trained on the cached features (the others are post hoc).
TRAINED = ('disalign', 'crt', 'lws')
#: Baselines tuned with their own stage-2 config: method -> option.
BASELINES = {'crt': '--crt-config', 'lws': '--lws-config'}
COLUMNS = (('top1', 'overall'), ('many', 'many'), ('medium', 'medium'),
           ('few', 'few'))


class TuningError(ValueError):
    """A tuning run that cannot give a meaningful choice."""


def check_values(name: str, values: Sequence[float]) -> List[float]:
    """Refuse sweep values outside a parameter's valid range.

    Args:
        name (str): ``'rho'``, ``'tau'`` or ``'lr'``.
        values (Sequence[float]): The sweep.

    Returns:
        list[float]: The values.
    """
    values = [float(v) for v in values]
    if not values:
        raise TuningError(f'the {name} sweep is empty: give at least one '
                          'value')
    if name == 'lr':
        bad = [v for v in values if not v > 0]
        rule = 'the learning rate must be > 0'
    else:
        bad = [v for v in values if not v >= 0]
        rule = (f'{name} must be >= 0 ({name} 0: ' +
                ('no re-weighting' if name == 'rho' else 'the stage-1 model') +
                ')')
    if bad:
        raise TuningError(f'{name} sweep value(s) {bad} out of range: {rule}; '
                          'remove them from the sweep')
    return values


def _ann_path(dataset: dict) -> str:
    return osp.normpath(
        osp.join(dataset.get('data_root') or '', dataset['ann_file']))


def tuning_split(cfg: Config, val_ann_file: Optional[str] = None) -> dict:
    """The dataset config of the validation split tuning reads.

    ``val_ann_file``, else ``cfg.tuning_ann_file``, on the test loader's
    dataset (test pipeline, ``data_root``, image prefix, classes).

    Args:
        cfg (Config): The image stage-2 config.
        val_ann_file (str, optional): Overrides ``cfg.tuning_ann_file``.

    Returns:
        dict: The dataset config.

    Raises:
        TuningError: No validation split, a missing list file, or the test
            split.
    """
    template = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if template is None:
        raise TuningError('the config has no test_dataloader / '
                          'val_dataloader to read the validation split like')
    ann_file = val_ann_file or cfg.get('tuning_ann_file')
    if not ann_file:
        raise TuningError(
            'the config names no validation split for tuning (no '
            '`tuning_ann_file`; the data set has none, e.g. iNaturalist '
            '2018 reports on its val list): give one with --val-ann-file '
            '(a list file of held-out labelled images, relative to the '
            'data root)')
    dataset = copy.deepcopy(template['dataset'])
    dataset['ann_file'] = ann_file
    dataset['test_mode'] = True
    path = _ann_path(dataset)
    test = cfg.get('test_dataloader')
    if test is not None and path == _ann_path(test['dataset']):
        raise TuningError(
            f'the validation split {path} is the test split: tuning on it '
            'would report accuracy on the data the values were chosen on. '
            'Use a held-out validation list (Fashion-MNIST-LT: build it '
            'with tools/dataset_converters/fashion_mnist_lt.py '
            '--val-per-class N, which writes fashion_mnist_lt_val.txt; '
            'ImageNet-LT / Places-LT: their *_val.txt lists)')
    if not osp.isfile(path):
        raise TuningError(
            f'the validation list {path} does not exist. Fashion-MNIST-LT: '
            'build the data set with tools/dataset_converters/'
            'fashion_mnist_lt.py --val-per-class N (and train stage 1 on '
            'that build: its training list holds the other images); '
            'other data sets: give the list with --val-ann-file')
    return dataset


def _cache_ok(cache_dir: str, sha1: str, source: dict) -> bool:
    """Whether ``cache_dir`` holds a finished cache to reuse.

    A cache of other weights is refused; one of other data or passes
    (``source``, written next to it as ``tuning_source.json``) is
    extracted again.
    """
    meta_file = osp.join(cache_dir, 'meta.json')
    if not osp.isfile(meta_file):
        return False
    with open(meta_file) as f:
        meta = json.load(f)
    if meta.get('feature_sha1') != sha1:
        raise TuningError(
            f'the feature cache {cache_dir} was made from other backbone / '
            'neck weights (its SHA-1 differs from the checkpoint\'s): '
            'delete it (or use another --work-dir) to extract the features '
            'of this checkpoint')
    source_file = osp.join(cache_dir, 'tuning_source.json')
    if not osp.isfile(source_file):
        return False
    with open(source_file) as f:
        return json.load(f) == source


def extract(cfg: Config,
            checkpoint: str,
            cache_dir: str,
            dataset: Optional[dict] = None,
            passes: int = 1,
            augment: bool = False,
            sha1: Optional[str] = None,
            **kwargs) -> dict:
    """Cache the features of the training split or of ``dataset``.

    An existing cache in ``cache_dir`` is reused when it comes from the
    same weights (``sha1``), list and passes; one of other weights is
    refused; one of another list or other passes is replaced.

    Returns:
        dict: The cache's meta data and ``reused``.
    """
    source = dict(
        ann_file=_ann_path(dataset or cfg.train_dataloader.dataset),
        passes=passes,
        augment=augment)
    if sha1 is not None and _cache_ok(cache_dir, sha1, source):
        with open(osp.join(cache_dir, 'meta.json')) as f:
            return dict(json.load(f), reused=True)
    cfg = copy.deepcopy(cfg)
    if dataset is not None:
        cfg.train_dataloader.dataset = dataset
    meta = cache_features(
        cfg,
        cache_dir,
        checkpoint=checkpoint,
        passes=passes,
        augment=augment,
        overwrite=True,
        **kwargs)
    with open(osp.join(cache_dir, 'tuning_source.json'), 'w') as f:
        json.dump(source, f)
    return dict(meta, reused=False)


def _metric(cfg: Config):
    """The config's ``LongTailAccuracy`` (no per-class files)."""
    from mmpretrain.registry import METRICS
    evaluator = copy.deepcopy(
        cfg.get('val_evaluator') or cfg.get('test_evaluator'))
    if isinstance(evaluator, (list, tuple)):
        evaluator = evaluator[0]
    evaluator.pop('out_dir', None)
    return METRICS.build(evaluator)


def evaluate(head: torch.nn.Module, val_cache, metric) -> dict:
    """Top-1 overall / many / medium / few of ``head`` on cached features.

    Args:
        head (nn.Module): A classification head (calibrated scores from
            ``head((feats, ))``).
        val_cache (FeatureCacheDataset): The validation features.
        metric (LongTailAccuracy): The long-tail metric.

    Returns:
        dict: ``top1``, ``many``, ``medium``, ``few``.
    """
    import numpy as np
    feats = torch.from_numpy(np.array(val_cache.feats[0], np.float32))
    labels = torch.from_numpy(val_cache.labels)
    device = next(head.parameters()).device
    was_training = head.training
    head.eval()
    with torch.no_grad():
        pred = head((feats.to(device), )).argmax(dim=1).cpu()
    head.train(was_training)
    metric.results.clear()
    metric.process(None, [
        dict(pred_label=p, gt_label=g)
        for p, g in zip(pred.split(1), labels.split(1))
    ])
    out = metric.compute_metrics(metric.results)
    metric.results.clear()
    return {key: float(out.get(key, float('nan'))) for key, _ in COLUMNS}


def cached_config(cfg: Config, checkpoint: str, cache_dir: str, work_dir: str,
                  tag: str) -> Config:
    """Stage 2 of ``cfg`` on the cached training features, no test."""
    cfg = copy.deepcopy(cfg)
    cfg.model.type = 'CachedFeatureClassifier'
    loader = cfg.train_dataloader
    cfg.train_dataloader = dict(
        batch_size=loader.batch_size,
        num_workers=0,
        persistent_workers=False,
        collate_fn=dict(type='feature_cache_collate'),
        dataset=dict(type='FeatureCacheDataset', cache_dir=cache_dir),
        sampler=copy.deepcopy(loader.get('sampler')),
    )
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'FeatureCacheHook' for h in hooks):
        hooks.append(dict(type='FeatureCacheHook'))
    cfg.custom_hooks = hooks
    # a collapsed value is a result of the sweep (never chosen), not the
    # end of it
    allow_collapse(cfg)
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg[key] = None
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.work_dir = work_dir
    cfg.experiment_name = f'tune_{tag}_{os.getpid()}_{time.time_ns()}'
    if cfg.get('visualizer') is not None:
        cfg.visualizer.name = cfg.experiment_name
    # nothing to keep: the chosen values go to the config snippet
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    return cfg


def train_and_evaluate(cfg: Config, checkpoint: str, cache_dir: str,
                       work_dir: str, tag: str, val_cache, metric) -> dict:
    """Train stage 2 of ``cfg`` on cached features; validate the head."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(
        cached_config(cfg, checkpoint, cache_dir, work_dir, tag))
    runner.train()
    metrics = evaluate(runner.model.head, val_cache, metric)
    collapsed = collapsed_calibrations(runner)
    if collapsed:
        metrics['collapsed'] = collapsed
    return metrics


def allow_collapse(cfg: Config) -> Config:
    """Let the ``DisAlignFreezeHook`` of ``cfg`` finish a run whose
    calibration collapsed (sigma ~ 0) with warnings instead of an error:
    for tools that report such a run (:func:`collapsed_calibrations`)."""
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') == 'DisAlignFreezeHook':
            hook['allow_collapsed_calibration'] = True
    return cfg


def collapsed_calibrations(runner) -> Dict[str, float]:
    """``{module: mean sigma}`` of the calibrations that ended a run's
    training collapsed (``DisAlignFreezeHook.collapsed``)."""
    from mmdisalign.engine.hooks import DisAlignFreezeHook
    collapsed = {}
    for hook in runner.hooks:
        if isinstance(hook, DisAlignFreezeHook):
            collapsed.update(hook.collapsed)
    return collapsed


def _with_value(cfg: Config, sweep: str, value: float) -> Config:
    """``cfg`` with one swept value set."""
    cfg = copy.deepcopy(cfg)
    head = cfg.model.head
    if sweep == 'rho':
        head.loss.rho = value
    elif sweep.endswith('lr'):
        cfg.optim_wrapper.optimizer.lr = value
    elif sweep == 'tau-norm':
        head.calibration = dict(type='TauNormCalibration', tau=value)
    else:
        head.calibration = dict(
            type='LogitAdjustCalibration',
            class_freq=head.loss.class_freq,
            tau=value)
    return cfg


def check_baselines(cfg: Config, sweeps: Dict[str, List[float]],
                    baselines: Dict[str, Config]) -> None:
    """Refuse a baseline sweep without its config, or a baseline config
    that trains on other data than the cached features."""
    for sweep, method, _ in SWEEPS:
        if method not in BASELINES or not sweeps.get(sweep):
            continue
        other = baselines.get(method)
        if other is None:
            raise TuningError(
                f'the {sweep} sweep needs the {method} stage-2 config: give '
                f'it with {BASELINES[method]} (e.g. configs/cls/'
                'fashion_mnist_lt/resnet18-s3w16_1xb128-10e_fashion-mnist-lt'
                f'_{method}.py, pointed at the same data)')
        mine = _ann_path(cfg.train_dataloader.dataset)
        theirs = _ann_path(other.train_dataloader.dataset)
        if theirs != mine:
            raise TuningError(
                f'the {method} config trains on {theirs}, the features are '
                f'cached from {mine} (the DisAlign config\'s training '
                'split): point both configs at the same data')


def check_config(cfg: Config, sweeps: Dict[str, List[float]]) -> None:
    """Refuse a config the sweeps do not apply to."""
    head = cfg.model.head
    if 'calibration' not in head:
        raise TuningError(
            'the config\'s head has no calibration: give a DisAlign '
            'stage-2 config (e.g. configs/cls/fashion_mnist_lt/'
            'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py)')
    loss = head.get('loss') or {}
    if sweeps.get('rho') and 'rho' not in loss:
        raise TuningError(
            f'the config\'s loss ({loss.get("type")}) has no rho (not the '
            'GRW loss): leave out --rho, or give a DisAlign stage-2 config')
    if sweeps.get('logit-adjust') and 'class_freq' not in loss:
        raise TuningError(
            'logit adjustment needs the training class counts: the config\'s '
            'loss names no class_freq (the GRW loss of a DisAlign config '
            'does); leave out --logit-adjust or give a DisAlign config')


def choose(rows: Sequence[Tuple[float, dict]]) -> float:
    """The value with the best overall top-1; ties go to the first. Runs
    whose calibration collapsed are not chosen."""
    best = None
    for value, metrics in rows:
        if metrics.get('collapsed'):
            continue
        if best is None or metrics['top1'] > best[1]:
            best = (value, metrics['top1'])
    if best is None:
        raise TuningError(
            'every value of the sweep trained a collapsed calibration '
            f'(sigma ~ 0: it predicts like stage 1): {[v for v, _ in rows]}; '
            'sweep lower stage-2 learning rates (see docs/stage2.md)')
    return best[0]


def at_edge(values: Sequence[float], chosen: float) -> Optional[str]:
    """``'largest'`` / ``'smallest'`` when ``chosen`` is an end of a sweep
    the best value may lie beyond (0, the lower bound of rho and tau, is
    not such an end), else None."""
    if len(values) < 2:
        return None
    if chosen == max(values):
        return 'largest'
    if chosen == min(values) and chosen != 0:
        return 'smallest'
    return None


def format_table(sweep: str, rows, chosen: float) -> str:
    """Markdown table of one sweep; the chosen row is marked."""
    name = 'rho' if sweep == 'rho' else (
        'lr' if sweep.endswith('lr') else 'tau')
    lines = [
        f'| {sweep}: {name} | ' + ' | '.join(h for _, h in COLUMNS) + ' |',
        '|---' * (len(COLUMNS) + 1) + '|'
    ]
    for value, metrics in rows:
        mark = ' (chosen)' if value == chosen else ''
        lines.append(f'| {value:g}{mark} | ' +
                     ' | '.join(f'{metrics[k]:.2f}'
                                for k, _ in COLUMNS) + ' |')
    return '\n'.join(lines)


def write_snippets(work_dir: str, chosen: Dict[str, float],
                   rule: str) -> Dict[str, str]:
    """One config snippet per method; returns ``{method: path}``."""
    head = f'# Written by tools/tune_calibration.py. {rule}\n'
    files = {}
    if 'rho' in chosen or 'lr' in chosen:
        text = head
        if 'rho' in chosen:
            text += (f'model = dict(head=dict(loss=dict('
                     f'rho={chosen["rho"]!r})))\n')
        if 'lr' in chosen:
            text += (f'optim_wrapper = dict(optimizer=dict('
                     f'lr={chosen["lr"]!r}))\n')
        files['disalign'] = text
    for method in BASELINES:
        if f'{method}-lr' in chosen:
            files[method] = head + (f'optim_wrapper = dict(optimizer=dict('
                                    f'lr={chosen[method + "-lr"]!r}))\n')
    for sweep in ('tau-norm', 'logit-adjust'):
        if sweep in chosen:
            files[sweep] = head + (f'model = dict(head=dict(calibration=dict('
                                   f'tau={chosen[sweep]!r})))\n')
    paths = {}
    for method, text in files.items():
        paths[method] = osp.join(work_dir, f'tuned_{method}.py')
        with open(paths[method], 'w') as f:
            f.write(text)
    return paths


def plot_curves(path: str, results: Dict[str, dict]) -> None:
    """Validation overall and few-shot top-1 against each swept value."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sweeps = list(results)
    cols = min(3, len(sweeps))
    rows = -(-len(sweeps) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(sweeps):]:
        ax.set_visible(False)
    for ax, sweep in zip(axes.flat, sweeps):
        rows = results[sweep]['rows']
        xs = [r['value'] for r in rows]
        for key, label in (('top1', 'overall'), ('few', 'few-shot')):
            ax.plot(xs, [r['metrics'][key] for r in rows], 'o-', label=label)
        ax.axvline(results[sweep]['chosen'], color='grey', ls=':')
        if sweep.endswith('lr'):
            ax.set_xscale('log')
        ax.set_xlabel(results[sweep]['parameter'])
        ax.set_ylabel('validation top-1 (%)')
        ax.set_title(sweep)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


RULE = ('Chosen: the best validation overall top-1 of each sweep (ties: the '
        'first value given); DisAlign\'s lr at the chosen rho.')


def tune(cfg: Config,
         checkpoint: str,
         work_dir: str,
         sweeps: Dict[str, Sequence[float]],
         val_ann_file: Optional[str] = None,
         passes: int = 1,
         augment: bool = False,
         device: str = 'cpu',
         compile: bool = False,
         baselines: Optional[Dict[str, Config]] = None) -> dict:
    """Extract once, sweep on validation, write table, plot and snippets.

    Args:
        cfg (Config): The image DisAlign stage-2 config.
        checkpoint (str): The stage-1 checkpoint.
        work_dir (str): Where caches, runs and results go.
        sweeps (dict): ``{sweep: values}`` for the sweeps of
            :data:`SWEEPS` to run (``rho``, ``lr``, ``crt-lr``,
            ``lws-lr``, ``tau-norm``, ``logit-adjust``).
        val_ann_file (str, optional): The validation list (default: the
            config's ``tuning_ann_file``).
        passes (int): Training passes to cache. Defaults to 1.
        augment (bool): Cache the training passes through the training
            pipeline. Defaults to False.
        device (str): Extraction device. Defaults to 'cpu'.
        compile (bool): Compile the frozen network for the extraction.
            Defaults to False.
        baselines (dict, optional): ``{'crt': Config, 'lws': Config}``:
            the stage-2 configs the ``crt-lr`` / ``lws-lr`` sweeps train
            (same training split as ``cfg``). Defaults to None.

    Returns:
        dict: What ``results.json`` holds.
    """
    from mmdisalign.cls.datasets import (FeatureCacheDataset,
                                         feature_fingerprint)
    t_start = time.perf_counter()
    unknown = set(sweeps) - {s for s, _, _ in SWEEPS}
    if unknown:
        raise TuningError(f'unknown sweep(s) {sorted(unknown)}')
    sweeps = {
        s: check_values(p, sweeps[s])
        for s, _, p in SWEEPS if sweeps.get(s) is not None
    }
    if not sweeps:
        raise TuningError('nothing to sweep: give --rho, --lr, --crt-lr, '
                          '--lws-lr, --tau-norm or --logit-adjust')
    check_config(cfg, sweeps)
    baselines = dict(baselines or {})
    check_baselines(cfg, sweeps, baselines)
    val_dataset = tuning_split(cfg, val_ann_file)
    os.makedirs(work_dir, exist_ok=True)
    model, _ = build_frozen_model(cfg, checkpoint, device)
    sha1 = feature_fingerprint(model)
    del model
    options = dict(device=device, compile=compile)
    caches = {}
    t0 = time.perf_counter()
    caches['train'] = extract(
        cfg,
        checkpoint,
        osp.join(work_dir, 'cache_train'),
        passes=passes,
        augment=augment,
        sha1=sha1,
        **options)
    caches['val'] = extract(
        cfg,
        checkpoint,
        osp.join(work_dir, 'cache_val'),
        dataset=val_dataset,
        sha1=sha1,
        **options)
    t_extract = time.perf_counter() - t0
    val_cache = FeatureCacheDataset(osp.join(work_dir, 'cache_val'))
    metric = _metric(cfg)
    metric.dataset_meta = dict(val_cache.metainfo)
    results, chosen = {}, {}
    current = copy.deepcopy(cfg)
    for sweep, method, param in SWEEPS:
        if sweep not in sweeps:
            continue
        t0 = time.perf_counter()
        rows = []
        for value in sweeps[sweep]:
            variant = _with_value(baselines.get(method, current), sweep, value)
            if method in TRAINED:
                metrics = train_and_evaluate(
                    variant, checkpoint, osp.join(work_dir, 'cache_train'),
                    osp.join(work_dir, 'runs', f'{sweep}_{value:g}'),
                    f'{sweep}{value:g}', val_cache, metric)
            else:
                model, _ = build_frozen_model(variant, checkpoint, device)
                metrics = evaluate(model.head, val_cache, metric)
            rows.append((value, metrics))
        for value, metrics in rows:
            if metrics.get('collapsed'):
                means = ', '.join(
                    f'{name} {mean:.3g}'
                    for name, mean in metrics['collapsed'].items())
                print(
                    f'note: {sweep} {value:g}: calibration collapsed (mean '
                    f'sigma: {means}): it predicts like stage 1; not chosen',
                    flush=True)
        chosen[sweep] = choose(rows)
        if method == 'disalign':
            # the lr sweep runs at the chosen rho
            current = _with_value(current, sweep, chosen[sweep])
        results[sweep] = dict(
            method=method,
            parameter=param,
            rows=[dict(value=v, metrics=m) for v, m in rows],
            chosen=chosen[sweep],
            edge=at_edge(sweeps[sweep], chosen[sweep]),
            seconds=round(time.perf_counter() - t0, 2))
        print('\n' + format_table(sweep, rows, chosen[sweep]), flush=True)
        if results[sweep]['edge']:
            print(
                f'note: the chosen {param} {chosen[sweep]:g} is the '
                f'{results[sweep]["edge"]} value of the {sweep} sweep: the '
                'best value may lie beyond it; widen the sweep to check',
                flush=True)
    snippets = write_snippets(work_dir, chosen, RULE)
    plot = osp.join(work_dir, 'tuning_curves.png')
    plot_curves(plot, results)
    out = dict(
        rule=RULE,
        checkpoint=osp.abspath(checkpoint),
        validation=_ann_path(val_dataset),
        feature_sha1=sha1,
        train_samples=caches['train']['num_samples'],
        val_samples=caches['val']['num_samples'],
        passes=passes,
        augment=augment,
        sweeps=results,
        chosen=chosen,
        snippets=snippets,
        plot=plot,
        extraction_seconds=round(t_extract, 2),
        extraction_reused=caches['train']['reused']
        and caches['val']['reused'],
        seconds=round(time.perf_counter() - t_start, 2))
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(out, f, indent=1)
    print(
        f'\n{RULE}\nchosen: {chosen}\nsnippets: {snippets}\nplot: {plot}\n'
        f'extraction {out["extraction_seconds"]:.1f} s, total '
        f'{out["seconds"]:.1f} s',
        flush=True)
    return out


def _floats(text: str) -> List[float]:
    return [float(v) for v in text.split(',') if v.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='image DisAlign stage-2 config')
    parser.add_argument(
        '--checkpoint',
        help='stage-1 checkpoint (default: the config\'s load_from)')
    parser.add_argument(
        '--work-dir',
        help='default: work_dirs/tune_<config name>; feature caches are '
        'reused from it when they come from the same weights')
    parser.add_argument(
        '--val-ann-file',
        help='validation list relative to the data root (default: the '
        'config\'s tuning_ann_file); the test list is refused')

    def sweep_arg(name, default, what):
        parser.add_argument(
            f'--{name}',
            type=_floats,
            default=None,
            help=f'comma-separated {what} (default when no sweep is given: '
            f'{",".join(f"{v:g}" for v in default)}; "" skips it)')

    sweep_arg('rho', DEFAULT_RHO, 'rho of the GRW loss (DisAlign), >= 0')
    sweep_arg('lr', DEFAULT_LR, 'stage-2 learning rates (DisAlign), > 0')
    sweep_arg('crt-lr', DEFAULT_LR,
              'learning rates of cRT (needs --crt-config), > 0')
    sweep_arg('lws-lr', DEFAULT_LR,
              'learning rates of LWS (needs --lws-config), > 0')
    for method, option in BASELINES.items():
        parser.add_argument(
            option,
            default=None,
            help=f'the {method} stage-2 config (same data as CONFIG); '
            f'with it, the {method} lr is swept (default sweep when no '
            'sweep is given)')
    sweep_arg('tau-norm', DEFAULT_TAU, 'tau of tau-normalisation, >= 0')
    sweep_arg('logit-adjust', DEFAULT_TAU,
              'tau of post-hoc logit adjustment, >= 0')
    parser.add_argument(
        '--passes', type=int, default=1, help='training passes to cache')
    parser.add_argument(
        '--augment',
        action='store_true',
        help='cache the training passes through the training pipeline')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='run the frozen network compiled by torch.compile')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of the config (and of --crt-config / '
        '--lws-config), key=value')
    args = parser.parse_args(argv)
    given = {s: getattr(args, s.replace('-', '_')) for s, _, _ in SWEEPS}
    if all(v is None for v in given.values()):
        given = {
            'rho': DEFAULT_RHO,
            'lr': DEFAULT_LR,
            'tau-norm': DEFAULT_TAU,
            'logit-adjust': DEFAULT_TAU
        }
        for method, option in BASELINES.items():
            if getattr(args, option[2:].replace('-', '_')):
                given[f'{method}-lr'] = DEFAULT_LR
    args.sweeps = {k: v for k, v in given.items() if v}
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)

    def config(path):
        cfg = load_config(path)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        return cfg

    cfg = config(args.config)
    baselines = {
        method: config(getattr(args, option[2:].replace('-', '_')))
        for method, option in BASELINES.items()
        if getattr(args, option[2:].replace('-', '_'))
    }
    checkpoint = args.checkpoint or cfg.get('load_from')
    if not checkpoint:
        raise SystemExit('tune_calibration.py: error: no stage-1 checkpoint: '
                         'give --checkpoint (the config has no load_from)')
    work_dir = args.work_dir or osp.join(
        'work_dirs', 'tune_' + osp.splitext(osp.basename(args.config))[0])
    try:
        return tune(
            cfg,
            checkpoint,
            work_dir,
            args.sweeps,
            val_ann_file=args.val_ann_file,
            passes=args.passes,
            augment=args.augment,
            device=args.device,
            compile=args.compile,
            baselines=baselines)
    except TuningError as exc:
        raise SystemExit(f'tune_calibration.py: error: {exc}') from None


if __name__ == '__main__':
    main()
