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

``--tune`` (cls): every method's hyper-parameter is chosen on a
validation split first, per seed, on that seed's stage 1
(``tools/tune_calibration.py``: rho and the learning rate of DisAlign, the
learning rate of cRT and LWS, tau of tau-norm and logit adjustment, each
the best validation overall top-1 of its sweep on cached stage-1
features); every method is then trained / tested with its chosen values
and reported in a second table beside the untuned one (same stage 1s,
same test set), with the chosen values and the tuning time per seed. The
data set needs a validation list (``--val-list``) held out from the
training and test lists: the default ``data/fashion_mnist_lt_val`` is
Fashion-MNIST-LT built with ``--val-per-class`` (200) validation images
per class, taken out of the training pool, so its stage 1 differs from the
untuned default's.

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
    .venv/bin/python tools/compare_baselines.py --tune     # + tuned table
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
from typing import Tuple

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
from disalign_demo.out_dir import describe_differences
from disalign_demo.scenes import TASKS, scene_stage_config
from tune_calibration import (DEFAULT_LR, DEFAULT_RHO, DEFAULT_TAU, SWEEPS,
                              TuningError, allow_collapse, check_values,
                              collapsed_calibrations, tune)

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

#: ``--tune``: method -> ((sweep of tools/tune_calibration.py, the config
#: key its chosen value sets), ...).
TUNED = {
    'tau-norm': (('tau-norm', 'model.head.calibration.tau'), ),
    'logit-adjust': (('logit-adjust', 'model.head.calibration.tau'), ),
    'crt': (('crt-lr', 'optim_wrapper.optimizer.lr'), ),
    'lws': (('lws-lr', 'optim_wrapper.optimizer.lr'), ),
    'disalign':
    (('rho', 'model.head.loss.rho'), ('lr', 'optim_wrapper.optimizer.lr')),
}
# DisAlign's values, trained on cached features
TUNED['disalign-cached'] = TUNED['disalign']
#: Table names of the tuned methods.
TUNED_NAMES = {
    'tau-norm': 'tau-norm (tau tuned)',
    'logit-adjust': 'logit adjustment (tau tuned)',
    'crt': 'cRT (lr tuned)',
    'lws': 'LWS (lr tuned)',
    'disalign': 'DisAlign (rho, lr tuned)',
    'disalign-cached': 'DisAlign, cached features (rho, lr tuned)',
}
#: ``--tune``: validation images per class of the Fashion-MNIST-LT build
#: (full, ``--quick``).
VAL_PER_CLASS = (200, 6)

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
    parser.add_argument(
        '--tune',
        action='store_true',
        help='cls: choose every method\'s hyper-parameter on the validation '
        'list first (tools/tune_calibration.py, per seed) and report the '
        'tuned methods in a second table beside the untuned one')
    parser.add_argument(
        '--val-list',
        default='fashion_mnist_lt_val.txt',
        help='--tune: the validation list under --data-root, held out from '
        'the training and test lists (default: %(default)s)')
    parser.add_argument(
        '--val-per-class',
        type=int,
        default=None,
        help='--tune: validation images per class when Fashion-MNIST-LT is '
        f'built (default: {VAL_PER_CLASS[0]}, {VAL_PER_CLASS[1]} with '
        '--quick)')
    for name, default in (('rho', DEFAULT_RHO), ('lr', DEFAULT_LR),
                          ('tau', DEFAULT_TAU)):
        parser.add_argument(
            f'--{name}-values',
            default=None,
            help=f'--tune: comma-separated {name} values to sweep (default: '
            f'{",".join(f"{v:g}" for v in default)})')
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
                         'set tau; --tune chooses tau on validation)')
    elif args.tune:
        parser.error('--tune applies to --task cls (tools/tune_calibration.py '
                     'tunes classifiers on cached features)')
    _tuning_args(parser, args)
    for key in ('stage1_iters', 'stage2_iters'):
        if getattr(args, key) is not None and getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1, got '
                         f'{getattr(args, key)}')
        if args.task != 'cls' and args.quick and getattr(args, key) is None:
            setattr(args, key, QUICK_ITERS[key == 'stage2_iters'])
    if args.work_dir is None:
        args.work_dir = osp.join(
            REPO, 'work_dirs',
            ('baselines_tuned' if args.tune else 'baselines')
            if args.task == 'cls' else f'compare_{args.task}')
    return args


def _tuning_args(parser, args) -> None:
    """Check the ``--tune`` options; set ``args.sweeps`` (or None)."""
    values = {k: getattr(args, f'{k}_values') for k in ('rho', 'lr', 'tau')}
    if not args.tune:
        given = [f'--{k}-values' for k, v in values.items() if v is not None]
        if args.val_per_class is not None:
            given.append('--val-per-class')
        if given:
            parser.error(f'{", ".join(given)} only apply with --tune')
        args.sweeps = None
        return
    if args.val_per_class is None:
        args.val_per_class = VAL_PER_CLASS[args.quick]
    if args.val_per_class < 1:
        parser.error(f'--val-per-class must be >= 1, got {args.val_per_class}')
    defaults = dict(rho=DEFAULT_RHO, lr=DEFAULT_LR, tau=DEFAULT_TAU)
    try:
        values = {
            k:
            check_values(
                k, defaults[k] if v is None else
                [float(x) for x in v.split(',') if x.strip()])
            for k, v in values.items()
        }
    except (TuningError, ValueError) as e:
        parser.error(f'--tune: {e}')
    param = {sweep: p for sweep, _, p in SWEEPS}
    args.sweeps = {
        sweep: values[param[sweep]]
        for m in args.methods if m in TUNED for sweep, _ in TUNED[m]
    }
    if not args.sweeps:
        parser.error(f'--tune: none of the methods {args.methods} has a '
                     f'hyper-parameter to tune (those that do: {list(TUNED)})')


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

    def tuning_settings(self) -> dict:
        """What the tuning of a seed (``--tune``) depends on besides the
        stage 1 and the setup."""
        return dict(
            quick=self.args.quick,
            val_list=self.args.val_list,
            sweeps=self.args.sweeps)

    def done(self, path: str, how: str, settings=None):
        """The result record at ``path`` if that run is finished.

        ``settings``: those of a tuned run (default: :meth:`settings`).
        """
        if not osp.isfile(path):
            return None
        with open(path) as f:
            found = json.load(f)
        if settings is None:
            settings = self.settings(how)
        # records written before the setup (Fashion-MNIST-LT) or the
        # settings were recorded: those of the first version
        saved = dict(
            found.get('setup', self.setup), **found.get('settings', settings))
        now = dict(self.setup, **settings)
        if saved != now:
            diff = describe_differences(saved, now, 'now')
            raise ValueError(
                f'{path} is the result of another run ({diff}): use another '
                '--work-dir for this run (nothing was overwritten), or delete '
                f'{osp.dirname(path)} to run it again')
        return found

    def save(self,
             result_file: str,
             method: str,
             seed: int,
             config: str,
             ckpt: str,
             metrics: dict,
             t0: float,
             settings=None,
             collapsed=None) -> dict:
        """Write (and return) the result record of one run.

        ``collapsed``: ``{calibration: mean sigma}`` of a stage 2 whose
        calibration collapsed (recorded when there is one).
        """
        if settings is None:
            settings = self.settings(self.methods[method][1])
        result = dict(
            method=method,
            seed=seed,
            config=osp.relpath(config, REPO),
            checkpoint=ckpt,
            metrics=self.metrics(metrics),
            settings=settings,
            setup=self.setup,
            seconds=round(time.time() - t0, 1))
        if collapsed:
            result['collapsed'] = collapsed
            log(
                f'seed {seed} {method}: the calibration collapsed (mean '
                'sigma ' + ', '.join(f'{k} {v:.2g}'
                                     for k, v in collapsed.items()) +
                '): it predicts like stage 1; reported as measured', WHO)
        return _write_json(result_file, result)


def _write_json(path: str, record: dict) -> dict:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(record, f, indent=1)
    return record


def _stage1_checkpoint(stage1: dict, seed: int, seed_dir: str,
                       what: str) -> str:
    """The stage-1 checkpoint of a seed; a clear error when it is gone."""
    ckpt = stage1['checkpoint']
    if not osp.isfile(ckpt):
        raise FileNotFoundError(
            f'seed {seed} {what}: the stage-1 checkpoint {ckpt} '
            f'(named by {osp.join(seed_dir, "stage1", "result.json")}) is '
            f'missing: restore it, or delete {osp.join(seed_dir, "stage1")}'
            ' to train stage 1 again')
    return ckpt


def run_method(cmp: Comparison,
               method: str,
               seed: int,
               seed_dir: str,
               stage1: dict,
               tuning=None) -> dict:
    """Metrics of one method on one seed (reused when already done).

    ``tuning``: the seed's tuning record (:func:`run_tuning`): the method
    runs with its chosen values, in ``<seed dir>/tuned/<method>``.
    """
    args = cmp.args
    config, how, _ = cmp.methods[method]
    settings = values = None
    name = f'seed {seed} {method}'
    work_dir = osp.join(seed_dir, method)
    if tuning is not None:
        values = {key: tuning['chosen'][sweep] for sweep, key in TUNED[method]}
        settings = dict(cmp.tuning_settings(), values=values)
        name += ' (tuned: ' + ', '.join(f'{k.split(".")[-1]} {v:g}'
                                        for k, v in values.items()) + ')'
        work_dir = osp.join(seed_dir, 'tuned', method)
    result_file = osp.join(work_dir, 'result.json')
    found = cmp.done(result_file, how, settings)
    if found is not None:
        log(f'{name}: reusing {result_file}', WHO)
        return found
    stage1_ckpt = _stage1_checkpoint(stage1, seed, seed_dir, method)
    cfg = cmp.config(config, work_dir, seed, how, load_from=stage1_ckpt)
    if values is not None:
        cfg.merge_from_dict(values)
    # a stage 2 whose calibration collapsed (sigma ~ 0: it predicts like
    # stage 1) is a result of the comparison, reported as such, not its end
    collapsed = {}
    allow_collapse(cfg)

    def trained(runner):
        collapsed.update(collapsed_calibrations(runner))

    t0 = time.time()
    if how == 'test':
        metrics, ckpt = evaluate_stage(name, cfg, stage1_ckpt,
                                       WHO), stage1_ckpt
    elif how == 'train':
        metrics, ckpt, _ = run_stage(name, cfg, WHO, trained)
    else:
        cached_cfg = stage_config(
            CACHED_STAGE2_CONFIG,
            cmp.data,
            work_dir,
            seed,
            args.quick,
            load_from=stage1_ckpt,
            **cmp.stage_options)
        if values is not None:
            cached_cfg.merge_from_dict(values)
        allow_collapse(cached_cfg)
        metrics, ckpt, _ = run_stage2_cached(
            name,
            cfg,
            cached_cfg,
            passes=1,
            augment=True,
            who=WHO,
            trained=trained)
    return cmp.save(
        result_file,
        method,
        seed,
        config,
        ckpt,
        metrics,
        t0,
        settings,
        collapsed=collapsed)


def run_tuning(cmp: Comparison, seed: int, seed_dir: str,
               stage1: dict) -> dict:
    """``--tune``: choose the values of every method on validation, on the
    seed's stage 1 (reused when already done)."""
    tune_dir = osp.join(seed_dir, 'tune')
    record_file = osp.join(tune_dir, 'tuning.json')
    settings = cmp.tuning_settings()
    found = cmp.done(record_file, 'tune', settings)
    if found is not None:
        log(f'seed {seed} tuning: reusing {record_file}', WHO)
        return found
    ckpt = _stage1_checkpoint(stage1, seed, seed_dir, 'tuning')
    sweeps = cmp.args.sweeps

    def config(method):
        config, how, _ = METHODS[method]
        return cmp.config(
            config, osp.join(tune_dir, 'runs'), seed, how, load_from=ckpt)

    # the DisAlign config carries every sweep but the baselines' lr (its
    # head has the calibration, its loss the class counts)
    baselines = {m: config(m) for m in ('crt', 'lws') if f'{m}-lr' in sweeps}
    log(
        f'seed {seed} tuning on {cmp.args.val_list}: ' +
        '; '.join(f'{k} {",".join(f"{v:g}" for v in vs)}'
                  for k, vs in sweeps.items()), WHO)
    try:
        out = tune(
            config('disalign'),
            ckpt,
            tune_dir,
            sweeps,
            val_ann_file=cmp.args.val_list,
            baselines=baselines)
    except TuningError as e:
        raise SystemExit(f'compare_baselines.py: error: {e}') from None
    log(
        f'seed {seed} tuning: chosen {out["chosen"]} in {out["seconds"]:.0f}'
        f' s (feature extraction {out["extraction_seconds"]:.0f} s)', WHO)
    return _write_json(
        record_file,
        dict(
            seed=seed,
            checkpoint=ckpt,
            chosen=out['chosen'],
            sweeps=out['sweeps'],
            validation=out['validation'],
            val_samples=out['val_samples'],
            plot=out['plot'],
            extraction_seconds=out['extraction_seconds'],
            seconds=out['seconds'],
            settings=settings,
            setup=cmp.setup))


def run_seed(cmp: Comparison, seed: int) -> Tuple[dict, dict, dict]:
    """Stage 1 and every method for one seed.

    Returns:
        tuple: ``(results, tuned, tuning)``: the result record of every
        method; with ``--tune``, those of the tuned methods and the tuning
        record (else empty dicts).
    """
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
    if not cmp.args.tune:
        return results, {}, {}
    tuning = run_tuning(cmp, seed, seed_dir, stage1)
    tuned = {
        m: run_method(cmp, m, seed, seed_dir, stage1, tuning)
        for m in cmp.args.methods if m in TUNED
    }
    return results, tuned, tuning


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.time()
    os.chdir(REPO)
    import torch
    args.work_dir = osp.abspath(args.work_dir)
    task = None if args.task == 'cls' else TASKS[args.task]
    default_data = (
        task.default_data if task else osp.join(
            REPO, 'data',
            'fashion_mnist_lt_val' if args.tune else 'fashion_mnist_lt'))
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
            data_root,
            args.quick,
            WHO,
            layout=exp.data_layout(args),
            **(dict(val_per_class=args.val_per_class, val_list=args.val_list)
               if args.tune else {}))
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
    per_seed, tuned, tuning = {}, {}, {}
    for seed in args.seeds:
        per_seed[seed], tuned[seed], tuning[seed] = run_seed(cmp, seed)
    keys = keys or {k: f'lt/{k}' for k in METRIC_KEYS}
    names = {m: methods_of(args.task)[m][2] for m in args.methods}
    lines, summary = report(args.methods, names, per_seed, args.seeds, columns,
                            keys, [('disalign', 'stage1')])
    lines = [caption, ''] + lines
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
    if args.tune:
        tuned_lines, tuned_results = tuned_report(args, per_seed, tuned,
                                                  tuning, columns, keys, data)
        lines += [''] + tuned_lines
        results['tuned'] = tuned_results
    runs = {
        m: [per_seed[s][m]['metrics'] for s in args.seeds]
        for m in args.methods
    }
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


def report(methods, names: dict, records: dict, seeds, columns, keys: dict,
           pairs) -> Tuple[list, dict]:
    """The mean ± std table, per-seed values and paired differences.

    Args:
        methods (list[str]): The rows, in order.
        names (dict): ``method -> table name``.
        records (dict): ``seed -> method -> result record``.
        seeds (list[int]): The seeds.
        columns (list[tuple]): ``(metric key, column name)`` of the table.
        keys (dict): ``column name -> metric key`` of the differences.
        pairs (list[tuple]): ``(a, b)`` methods whose paired difference
            ``a - b`` is reported (when both are rows).

    Returns:
        tuple: The text lines and :func:`summarize_runs` of the rows.
    """
    runs = {m: [records[s][m]['metrics'] for s in seeds] for m in methods}
    lines = [
        format_mean_table([(names[m], runs[m]) for m in methods], columns), ''
    ]
    (first, first_name), (last, last_name) = columns[0], columns[-1]
    lines.append(f'Per seed ({first_name} / {last_name}):')
    for m in methods:
        lines.append(f'- {names[m]}: ' + '; '.join(
            f'seed {s} {records[s][m]["metrics"][first]:.2f} / '
            f'{records[s][m]["metrics"][last]:.2f}' +
            (' (collapsed)' if records[s][m].get('collapsed') else '')
            for s in seeds))
    collapsed = [(s, m) for m in methods for s in seeds
                 if records[s][m].get('collapsed')]
    if collapsed:
        lines.append('(collapsed: the calibration switched itself off, mean '
                     'sigma ~ 0, the run predicts like stage 1: ' +
                     '; '.join(f'seed {s} {names[m]} ' + ', '.join(
                         f'{k} {v:.2g}'
                         for k, v in records[s][m]['collapsed'].items())
                               for s, m in collapsed) + ')')
    diff_lines = []
    for a, b in pairs:
        if not all(a in records[s] and b in records[s] for s in seeds):
            continue
        diffs = []
        for name, key in keys.items():
            mean, std = mean_std([
                records[s][a]['metrics'][key] - records[s][b]['metrics'][key]
                for s in seeds
            ])
            diffs.append(f'{name} {mean:+.2f} ± {std:.2f}')
        diff_lines.append(f'{names[a]} - {names[b]} (paired by seed): ' +
                          ', '.join(diffs))
    if diff_lines:
        lines += [''] + diff_lines
    return lines, summarize_runs(runs, keys)


def tuned_report(args, per_seed: dict, tuned: dict, tuning: dict, columns,
                 keys: dict, data: dict) -> Tuple[list, dict]:
    """``--tune``: the tuned table (stage 1 and the tuned methods), the
    values chosen per seed and the tuning time."""
    methods = [m for m in args.methods if m in TUNED]
    rows = (['stage1'] if 'stage1' in args.methods else
            []) + [f'{m}:tuned' for m in methods]
    names = dict({f'{m}:tuned': TUNED_NAMES[m]
                  for m in methods},
                 stage1=METHODS['stage1'][2])
    for m in args.methods:
        names.setdefault(m, METHODS[m][2])
    records = {
        s: dict(per_seed[s], **{f'{m}:tuned': tuned[s][m]
                                for m in methods})
        for s in args.seeds
    }
    val_samples = tuning[args.seeds[0]]['val_samples']
    lines = [
        f'Tuned: every method\'s hyper-parameter chosen per seed on the '
        f'validation list {args.val_list} ({val_samples} images, none in the '
        'training or test list) by tools/tune_calibration.py (best '
        'validation overall top-1 of each sweep, on cached clean features of '
        'that seed\'s stage 1), then trained / tested as in the table above; '
        f'test set, top-1 (%), mean ± std over seeds {args.seeds}:', ''
    ]
    pairs = [('disalign:tuned', 'stage1'), ('disalign:tuned', 'disalign')]
    pairs += [('disalign:tuned', f'{m}:tuned') for m in methods
              if m != 'disalign']
    table, summary = report(rows, names, records, args.seeds, columns, keys,
                            pairs)
    lines += table + [
        '', 'Sweeps: ' + '; '.join(f'{k} {",".join(f"{v:g}" for v in vs)}'
                                   for k, vs in args.sweeps.items())
    ]
    lines.append('Chosen on validation (per seed; * the largest or '
                 'smallest value of its sweep):')
    for s in args.seeds:
        lines.append(
            f'- seed {s}: ' +
            ', '.join(f'{k} {v:g}' +
                      ('*' if tuning[s]['sweeps'][k].get('edge') else '')
                      for k, v in tuning[s]['chosen'].items()) +
            f' (tuning {tuning[s]["seconds"]:.0f} s, of which '
            f'feature extraction {tuning[s]["extraction_seconds"]:.0f}'
            ' s)')
    seconds = [tuning[s]['seconds'] for s in args.seeds]
    lines.append(f'Tuning time per seed: {mean_std(seconds)[0]:.0f} s on '
                 'average (the trained methods then run as untuned)')
    return lines, dict(
        val_list=args.val_list,
        val_samples=val_samples,
        sweeps=args.sweeps,
        summary=summary,
        chosen={str(s): tuning[s]['chosen']
                for s in args.seeds},
        tuning_seconds={str(s): tuning[s]['seconds']
                        for s in args.seeds},
        per_seed={str(s): tuned[s]
                  for s in args.seeds})


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
