"""Segmentation and detection on the Fashion-MNIST scenes, method by method.

The task side of ``tools/compare_baselines.py --task seg|det``: for each
task the shipped CPU configs of every method (stage 1, DisAlign, LWS,
tau-norm, logit adjustment), the data set (built unless an identical build
is there), how a shipped config is pointed at a run's data, directories,
seed and schedule, and how the test metrics of the task become the columns
of the comparison table (in %) and the per-class values of its plot.
"""
import json
import math
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from .experiments import REPO, TOOLS, log

__all__ = ['SceneTask', 'TASKS', 'set_iters', 'scene_stage_config']

SEG_DIR = osp.join(REPO, 'configs', 'seg')
DET_DIR = osp.join(REPO, 'configs', 'det', 'fmnist')
_SEG = 'fcn_r18-w16-d8_1xb4{}_fmnist-scenes-64x64{}.py'
_DET = 'mask-rcnn_r18-w16_fpn_1xb2{}_fmnist-lvis{}.py'
#: Method -> how it is obtained: trained as stage 1, trained from the
#: frozen stage 1, or the stage-1 checkpoint tested with the config.
HOW = {
    'stage1': 'stage1',
    'tau-norm': 'test',
    'logit-adjust': 'test',
    'lws': 'train',
    'disalign': 'train',
}


def _methods(folder: str, pattern: str, stage1: str,
             stage2: str) -> Dict[str, Tuple[str, str, str]]:
    """``method -> (config, how, table name)`` of one task."""
    names = {
        'stage1': 'stage 1',
        'tau-norm': 'tau-norm (tau 1)',
        'logit-adjust': 'logit adjustment (tau 1)',
        'lws': 'LWS',
        'disalign': 'DisAlign',
    }
    files = {
        'stage1': pattern.format(f'-{stage1}', ''),
        'tau-norm': pattern.format('', '_tau-norm'),
        'logit-adjust': pattern.format('', '_logit-adjust'),
        'lws': pattern.format(f'-{stage2}', '_lws'),
        'disalign': pattern.format(f'-{stage2}', '_disalign'),
    }
    return {m: (osp.join(folder, files[m]), HOW[m], names[m]) for m in names}


class SceneTask:
    """One task on its Fashion-MNIST scenes.

    Args:
        name (str): ``'seg'`` or ``'det'``.
        title (str): The data set and metric, for the table's caption.
        methods (dict): ``method -> (config, how, table name)``.
        columns (list[tuple[str, str]]): ``(metric key, header)`` of the
            table, in the order of the table; keys of :meth:`metrics`.
        default_data (str): Default data root (full builds).
        class_metric (str): What the per-class plot shows.
    """

    def __init__(self, name: str, title: str, methods: dict,
                 columns: List[Tuple[str, str]], default_data: str,
                 class_metric: str) -> None:
        self.name = name
        self.title = title
        self.methods = methods
        self.columns = columns
        self.default_data = default_data
        self.class_metric = class_metric

    @property
    def stage1_config(self) -> str:
        return self.methods['stage1'][0]

    # -- to be given by each task ---------------------------------------
    def build_data(self, data_root: str, quick: bool, who: str) -> dict:
        """Build the scenes (unless built) and their class-frequency file;
        return ``dict(classes=[...], counts=[...])`` of the training set."""
        raise NotImplementedError

    def point_at(self, cfg, data_root: str) -> None:
        """Point the datasets, metric and class-frequency files of ``cfg``
        at ``data_root``."""
        raise NotImplementedError

    def metrics(self, raw: dict, classes: Sequence[str]) -> dict:
        """Table columns (in %) and ``per_class`` of the test metrics."""
        raise NotImplementedError


def _replace_class_freq(node, path: str) -> None:
    """Every ``class_freq`` value in a config tree becomes ``path``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'class_freq':
                node[key] = path
            else:
                _replace_class_freq(value, path)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_class_freq(value, path)


def _set_tau(node, tau: float) -> int:
    """Set ``tau`` of every post-hoc calibration config; return how many."""
    found = 0
    if isinstance(node, dict):
        if node.get('type') in ('TauNormCalibration',
                                'LogitAdjustCalibration'):
            node['tau'] = tau
            found += 1
        for value in node.values():
            found += _set_tau(value, tau)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += _set_tau(value, tau)
    return found


def _percent(value) -> float:
    """An LVIS metric (0..1) in % (LVIS gives -1 for an empty group: NaN)."""
    value = float(value)
    return math.nan if value < 0 else round(value * 100, 2)


class SegTask(SceneTask):
    """FCN on the Fashion-MNIST scenes: mIoU, head / body / tail mIoU."""

    def build_data(self, data_root: str, quick: bool, who: str) -> dict:
        freq_file = osp.join(data_root, 'train_pixel_freq.json')
        args = dict(num_train=3000, num_val=500, seed=0)
        if quick:
            args = dict(num_train=48, num_val=16, seed=0)
        meta_file = osp.join(data_root, 'meta.json')
        built = False
        if osp.isfile(meta_file) and osp.isfile(freq_file):
            with open(meta_file) as f:
                splits = json.load(f)['splits']
            built = (splits['training']['num_images'],
                     splits['validation']['num_images']) == (args['num_train'],
                                                             args['num_val'])
        if built:
            log(f'Fashion-MNIST scenes found in {data_root}', who)
        else:
            t0 = time.time()
            log(f'building Fashion-MNIST scenes in {data_root} ...', who)
            converter = _tool('dataset_converters', 'fmnist_ade_scenes')
            converter.build_fmnist_scenes(data_root, **args)
            pixel_freq = _tool('analysis_tools', 'seg_pixel_freq')
            pixel_freq.main([
                self.stage1_config, freq_file, '--cfg-options',
                f'train_dataloader.dataset.data_root={data_root}'
            ])
            log(f'built in {time.time() - t0:.1f} s', who)
        with open(freq_file) as f:
            freq = json.load(f)
        return dict(classes=freq['classes'], counts=freq['counts'])

    def point_at(self, cfg, data_root: str) -> None:
        for loader in (cfg.train_dataloader, cfg.test_dataloader):
            loader.dataset.data_root = data_root
        freq_file = osp.join(data_root, 'train_pixel_freq.json')
        _replace_class_freq(cfg.model, freq_file)
        cfg.test_evaluator.class_freq = freq_file
        cfg.test_evaluator.classwise = True

    def metrics(self, raw: dict, classes: Sequence[str]) -> dict:
        out = {key: float(raw[key]) for key, _ in self.columns}
        out['per_class'] = [float(raw[f'IoU.{c}']) for c in classes]
        return out


class DetTask(SceneTask):
    """Mask R-CNN on the Fashion-MNIST scenes in LVIS layout: box AP,
    AP_r / AP_c / AP_f."""

    def build_data(self, data_root: str, quick: bool, who: str) -> dict:
        from mmdisalign.det.lvis_stats import write_class_freq
        ann = osp.join(data_root, 'annotations')
        train_file = osp.join(ann, 'lvis_fmnist_train.json')
        freq_file = osp.join(ann, 'lvis_fmnist_train_class_freq.json')
        args = dict(n_max=200, val_per_class=10, seed=0)
        if quick:
            args = dict(n_max=24, val_per_class=2, seed=0)
        built = False
        if osp.isfile(train_file) and osp.isfile(freq_file):
            with open(freq_file) as f:
                built = max(json.load(f)['instance_count']) == args['n_max']
        if built:
            log(f'Fashion-MNIST LVIS scenes found in {data_root}', who)
        else:
            t0 = time.time()
            log(f'building Fashion-MNIST LVIS scenes in {data_root} ...', who)
            if TOOLS not in sys.path:
                sys.path.append(TOOLS)
            from disalign_demo.fmnist_lvis import build_fmnist_lvis
            built = build_fmnist_lvis(data_root, **args)
            write_class_freq(built['train'], freq_file, stats=built['stats'])
            log(f'built in {time.time() - t0:.1f} s', who)
        with open(freq_file) as f:
            freq = json.load(f)
        return dict(classes=freq['classes'], counts=freq['counts'])

    def point_at(self, cfg, data_root: str) -> None:
        data_root = osp.join(data_root, '')
        for loader in (cfg.train_dataloader, cfg.test_dataloader):
            loader.dataset.data_root = data_root
        _replace_class_freq(
            cfg.model,
            osp.join(data_root, 'annotations',
                     'lvis_fmnist_train_class_freq.json'))
        cfg.test_evaluator.ann_file = osp.join(data_root, 'annotations',
                                               'lvis_fmnist_val.json')
        # Box AP only (the mask branch is frozen in every method), with
        # the AP of every category for the plot.
        cfg.test_evaluator.metric = ['bbox']
        cfg.test_evaluator.classwise = True

    def metrics(self, raw: dict, classes: Sequence[str]) -> dict:
        out = {
            key: _percent(raw[f'lvis/bbox_{key.replace("_", "")}'])
            for key, _ in self.columns
        }
        out['per_class'] = [
            _percent(raw[f'lvis/{c}_precision']) for c in classes
        ]
        return out


def _tool(folder: str, name: str):
    """A script of ``tools/<folder>/`` as a module."""
    import importlib.util
    path = osp.join(TOOLS, folder, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TASKS = {
    'seg':
    SegTask(
        'seg',
        'Fashion-MNIST scenes (64x64), validation set, mIoU (%)',
        _methods(SEG_DIR, _SEG, '3k', '400'), [('mIoU', 'mIoU'),
                                               ('head_mIoU', 'head'),
                                               ('body_mIoU', 'body'),
                                               ('tail_mIoU', 'tail')],
        osp.join(REPO, 'data', 'fmnist_scenes'),
        class_metric='IoU (%)'),
    'det':
    DetTask(
        'det',
        'Fashion-MNIST LVIS scenes (128x128), validation set, box AP (%)',
        _methods(DET_DIR, _DET, '2k', '500'), [('AP', 'AP'), ('AP_r', 'AP_r'),
                                               ('AP_c', 'AP_c'),
                                               ('AP_f', 'AP_f')],
        osp.join(REPO, 'data', 'fmnist_lvis'),
        class_metric='box AP (%)'),
}


def set_iters(cfg, iters: int) -> None:
    """Shorten (or lengthen) an iteration-based schedule to ``iters``.

    The LR schedule keeps its shape: a scheduler that ends with the
    schedule ends at ``iters`` and its milestones scale with it; a shorter
    one (the warm-up) keeps its length, capped at ``iters``.
    """
    old = cfg.train_cfg.max_iters
    scale = iters / old
    for sched in cfg.param_scheduler:
        if sched.get('end') == old:
            sched.end = iters
            if 'milestones' in sched:
                sched.milestones = [
                    max(1, round(m * scale)) for m in sched.milestones
                ]
        elif sched.get('end') is not None:
            sched.end = min(sched.end, iters)
    cfg.train_cfg.max_iters = iters


def scene_stage_config(task: SceneTask,
                       config: str,
                       data_root: str,
                       work_dir: str,
                       seed: int,
                       load_from: Optional[str] = None,
                       iters: Optional[int] = None,
                       tau: Optional[float] = None,
                       workers: int = 0):
    """Load a shipped scenes config and point it at this run.

    The test set is evaluated once, after training (no validation during
    training); one checkpoint, the last.

    Args:
        task (SceneTask): The task of the config.
        config (str): A config of ``task.methods``.
        data_root (str): The built data set.
        work_dir (str): The run's work dir.
        seed (int): ``randomness.seed``.
        load_from (str, optional): The stage-1 checkpoint (stage 2).
        iters (int, optional): Training iterations instead of the
            config's (:func:`set_iters`).
        tau (float, optional): ``tau`` of the post-hoc calibrations
            instead of the config's.
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
    task.point_at(cfg, data_root)
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.num_workers = workers
        loader.persistent_workers = workers > 0
    if iters is not None:
        set_iters(cfg, iters)
    max_iters = cfg.train_cfg.max_iters
    cfg.default_hooks.checkpoint.update(
        interval=max_iters, max_keep_ckpts=1, save_last=True)
    cfg.default_hooks.logger.interval = min(cfg.default_hooks.logger.interval,
                                            max(1, max_iters // 10))
    if tau is not None:
        _set_tau(cfg.model, tau)
    if load_from is not None:
        cfg.load_from = load_from
    return cfg
