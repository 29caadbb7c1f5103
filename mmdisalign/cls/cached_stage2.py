"""Classification stage 2 from cached features, with the config's recipe.

:func:`cache_features` runs the frozen stage-1 network of a stage-2 config
once (or ``passes`` times with the training augmentation) over the training
set and stores the pooled features, the stage-1 logits and the labels with
:class:`~mmdisalign.cls.feature_cache.FeatureCacheWriter`.
:func:`train_cached` then trains what the config's stage 2 trains (the
DisAlign calibration, or a baseline: LWS, cRT's classifier, ...) on those
features only, and writes a normal stage-2 checkpoint.

Nothing of the recipe is restated here; everything comes from the config:

- the model (``cfg.model``), built and initialised as the Runner does
  (``init_weights`` after seeding with ``cfg.randomness``), then the
  stage-1 checkpoint (``load_from``) loaded as ``Runner.load_checkpoint``
  does;
- the freezing: the config's own :class:`DisAlignFreezeHook` (its
  ``trainable`` patterns, its stage-1 checks);
- the loss: the head's ``loss`` (e.g. ``GRWCrossEntropyLoss``), called as
  ``ImageClassifier.loss`` calls it, then ``parse_losses`` and
  ``OptimWrapper.update_params`` as ``BaseModel.train_step`` does;
- the optimiser (``optim_wrapper``) and the schedulers
  (``param_scheduler``, with ``convert_to_iter_based`` and the same epoch
  length), stepped as ``ParamSchedulerHook`` steps them;
- the data order: the config's sampler (``DefaultSampler``,
  ``ClassBalancedSampler``, ...) built with the Runner's seed and
  ``set_epoch`` before each epoch, the batch size and ``drop_last`` of
  ``train_dataloader``.

With one pass and no augmentation in the training pipeline this is the
Runner's stage 2 up to float rounding (tested). With augmentation, epoch
``e`` uses pass ``e % passes``. Unsupported (clear errors): batch
augmentations (mixup / cutmix), batch samplers, iteration-based loops,
necks with more than one output.
"""
import copy
import hashlib
import math
import os
import os.path as osp
import time
from types import SimpleNamespace
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DATA_SAMPLERS, HOOKS, MODELS, PARAM_SCHEDULERS
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model,
                                        save_checkpoint, weights_to_cpu)
from mmengine.runner.utils import set_random_seed

from .feature_cache import (FeatureCache, FeatureCacheWriter, extract_features,
                            stage1_logits)

__all__ = [
    'build_stage2_model', 'cache_features', 'train_cached',
    'run_cached_stage2', 'feature_fingerprint'
]

_FREEZE_HOOK = 'DisAlignFreezeHook'


class _LabelsDataset:
    """What a sampler needs of a dataset: its length and labels."""

    def __init__(self, labels: np.ndarray, num_classes: int) -> None:
        self._labels = np.asarray(labels, dtype=np.int64)
        self.metainfo = dict(classes=[str(i) for i in range(num_classes)])

    def __len__(self) -> int:
        return len(self._labels)

    def get_gt_labels(self) -> np.ndarray:
        return self._labels

    def get_cat_ids(self, idx: int):
        return [int(self._labels[idx])]


def _runner_stub(model, cfg: Config, checkpoint: str, logger):
    """The attributes of a Runner that ``DisAlignFreezeHook`` reads."""
    return SimpleNamespace(
        model=model,
        logger=logger,
        distributed=False,
        optim_wrapper=None,
        _load_from=checkpoint,
        _resume=False,
        work_dir=cfg.get('work_dir', '.'))


def _freeze_hook(cfg: Config):
    """Build the config's ``DisAlignFreezeHook``."""
    hooks = [
        h for h in cfg.get('custom_hooks', []) or []
        if isinstance(h, dict) and h.get('type') == _FREEZE_HOOK
    ]
    if len(hooks) != 1:
        raise ValueError(
            f'a stage-2 config needs exactly one {_FREEZE_HOOK} in '
            f'custom_hooks; this one has {len(hooks)} '
            f'({cfg.get("custom_hooks")!r})')
    return HOOKS.build(copy.deepcopy(hooks[0]))


def build_stage2_model(cfg: Config,
                       checkpoint: Optional[str] = None,
                       device: str = 'cpu',
                       seed: Optional[int] = None,
                       logger=None):
    """Build, initialise, load and freeze the stage-2 model of ``cfg``.

    As the Runner does it: seed (``cfg.randomness``, or ``seed``), build
    ``cfg.model`` (with the top-level ``data_preprocessor`` merged in),
    ``init_weights()``, load the stage-1 checkpoint
    (non-strict, ``module.`` prefixes removed) and run the config's
    ``DisAlignFreezeHook`` (which checks the checkpoint and freezes).

    Args:
        cfg (Config): A stage-2 config.
        checkpoint (str, optional): Stage-1 checkpoint. Defaults to None
            (``cfg.load_from``).
        device (str): Defaults to 'cpu'.
        seed (int, optional): Overrides ``cfg.randomness.seed``.
        logger (MMLogger, optional): Defaults to the current logger.

    Returns:
        tuple: ``(model, hook, runner_stub, seed)``.
    """
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    logger = logger or MMLogger.get_current_instance()
    randomness = dict(cfg.get('randomness') or {})
    if seed is None:
        seed = randomness.get('seed')
    seed = set_random_seed(
        seed=seed, deterministic=randomness.get('deterministic', False))
    checkpoint = checkpoint or cfg.get('load_from')
    if not checkpoint:
        raise ValueError('no stage-1 checkpoint: the config has no '
                         '`load_from` and none was given (--checkpoint)')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'stage-1 checkpoint {checkpoint} not found')
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        # as Runner.__init__ does: a top-level data_preprocessor (the
        # mmpretrain convention) goes into the model unless it has one
        model_cfg.setdefault('data_preprocessor',
                             copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg).to(device)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    hook = _freeze_hook(cfg)
    stub = _runner_stub(model, cfg, checkpoint, logger)
    hook.after_load_checkpoint(stub, ckpt)
    _load_checkpoint_to_model(
        model, ckpt, strict=False, revise_keys=[(r'^module\.', '')])
    model.train()
    hook.before_train(stub)
    return model, hook, stub, seed


def _check_model(model) -> None:
    head = getattr(model, 'head', None)
    if head is None or not hasattr(model, 'extract_feat'):
        raise TypeError('cached stage 2 supports mmpretrain classifiers '
                        '(extract_feat + head), not '
                        f'{type(model).__name__}')
    augments = getattr(model.data_preprocessor, 'batch_augments', None)
    if augments is not None:
        raise ValueError(
            'the config uses batch augmentations (e.g. mixup / cutmix, '
            f'{type(augments).__name__}) in its data preprocessor; they mix '
            'images, which cached features cannot do: train stage 2 with '
            'the Runner')


def cache_features(cfg: Config,
                   out_dir: str,
                   checkpoint: Optional[str] = None,
                   passes: int = 1,
                   augment: bool = False,
                   dtype: str = 'float32',
                   batch_size: Optional[int] = None,
                   num_workers: Optional[int] = None,
                   device: str = 'cpu',
                   seed: Optional[int] = None,
                   overwrite: bool = False,
                   log_every: int = 0,
                   built: Optional[tuple] = None) -> dict:
    """Extract the frozen stage-1 features of ``cfg``'s training set.

    The model is the stage-2 model of the config after freezing
    (:func:`build_stage2_model`), in the state the Runner trains it in
    (train mode, frozen norm layers in eval mode). The training set is
    read in order; with ``augment`` through the training pipeline (pass
    ``p`` seeds the data workers with ``seed + p``), otherwise through the
    test pipeline.

    Args:
        cfg (Config): A stage-2 config.
        out_dir (str): Cache directory.
        checkpoint (str, optional): Stage-1 checkpoint. Defaults to None
            (``cfg.load_from``).
        passes (int): Passes over the training set. Defaults to 1.
        augment (bool): Use the training pipeline. Defaults to False.
        dtype (str): ``'float32'`` or ``'float16'``. Defaults to
            'float32'.
        batch_size (int, optional): Defaults to the training batch size.
        num_workers (int, optional): Defaults to the training loader's.
        device (str): Defaults to 'cpu'.
        seed (int, optional): Overrides ``cfg.randomness.seed``.
        overwrite (bool): Replace an existing cache. Defaults to False.
        log_every (int): Progress every that many batches. Defaults to 0.
        built (tuple, optional): The output of :func:`build_stage2_model`
            for this config and checkpoint, to reuse. Defaults to None.

    Returns:
        dict: The cache's meta data.
    """
    if passes > 1 and not augment:
        raise ValueError('passes > 1 without augment would store the same '
                         'features several times')
    start = time.perf_counter()
    if built is None:
        built = build_stage2_model(cfg, checkpoint, device, seed)
    model, _, _, seed = built
    _check_model(model)
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    if not augment:
        loader_cfg.dataset.pipeline = copy.deepcopy(
            cfg.test_dataloader.dataset.pipeline)
    loader_cfg.sampler = dict(
        type='DefaultSampler', shuffle=False, round_up=False)
    loader_cfg.pop('batch_sampler', None)
    loader_cfg.drop_last = False
    if batch_size is not None:
        loader_cfg.batch_size = batch_size
    if num_workers is not None:
        loader_cfg.num_workers = num_workers
        if num_workers == 0:
            loader_cfg.persistent_workers = False
    writer = None
    pass_seconds = []
    for p in range(passes):
        loader = Runner.build_dataloader(
            copy.deepcopy(loader_cfg), seed=seed + p)
        if writer is None:
            with torch.no_grad():
                probe = model.data_preprocessor(
                    loader.collate_fn([loader.dataset[0]]), False)
                feat = model.extract_feat(probe['inputs'])[-1]
                logits = stage1_logits(model.head, (feat, ))
            writer = FeatureCacheWriter(
                out_dir,
                len(loader.dataset),
                feat.shape[1],
                logits.shape[1],
                passes=passes,
                dtype=dtype,
                overwrite=overwrite)
        pass_seconds.append(
            extract_features(model, loader, writer, p, device, log_every))
    ckpt = checkpoint or cfg.get('load_from')
    stat = os.stat(ckpt)
    return writer.close(
        dict(
            augment=bool(augment),
            seed=seed,
            config=cfg.filename,
            checkpoint=osp.abspath(ckpt),
            checkpoint_size=stat.st_size,
            checkpoint_mtime=stat.st_mtime,
            feature_sha1=feature_fingerprint(model),
            pass_seconds=pass_seconds,
            seconds=time.perf_counter() - start))


def _build_sampler(cfg: Config, cache: FeatureCache, seed: int):
    loader = cfg.train_dataloader
    if loader.get('batch_sampler') is not None:
        raise ValueError('cached stage 2 does not support batch samplers '
                         f'({loader.batch_sampler!r})')
    dataset = _LabelsDataset(cache.labels, cache.meta['num_classes'])
    sampler = DATA_SAMPLERS.build(
        copy.deepcopy(loader.sampler),
        default_args=dict(dataset=dataset, seed=seed))
    return sampler, int(loader.batch_size), bool(
        loader.get('drop_last', False))


def _build_schedulers(cfg: Config, optim_wrapper, max_epochs: int,
                      epoch_length: int) -> list:
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    built = []
    for sched in schedulers:
        sched = copy.deepcopy(sched)
        sched.setdefault(
            'end', max_epochs if sched.get('by_epoch', True) else max_epochs *
            epoch_length)
        built.append(
            PARAM_SCHEDULERS.build(
                sched,
                default_args=dict(
                    optimizer=optim_wrapper, epoch_length=epoch_length)))
    return built


def feature_fingerprint(model) -> str:
    """SHA-1 of the weights the cached features depend on.

    Every tensor of ``model.state_dict()`` under ``backbone.`` and
    ``neck.``, in key order.

    Args:
        model (nn.Module): An mmpretrain classifier.

    Returns:
        str: The hex digest.
    """
    digest = hashlib.sha1()
    for key, value in model.state_dict().items():
        if key.startswith(('backbone.', 'neck.')):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _check_cache(cache: FeatureCache, model, checkpoint: str, logger,
                 reinitialized=()) -> None:
    """Fail when the cache does not come from this model's weights."""
    meta = cache.meta
    if meta.get('checkpoint') and osp.abspath(
            checkpoint) != meta['checkpoint']:
        logger.warning(f'the cache was made from {meta["checkpoint"]}, '
                       f'training loads {osp.abspath(checkpoint)}')
    if 'feature_sha1' in meta and meta['feature_sha1'] != feature_fingerprint(
            model):
        raise ValueError(
            f'the features of {cache.cache_dir} were extracted with other '
            f'backbone / neck weights than those of {checkpoint} (SHA-1 '
            'differs): extract them again')
    if any(k.startswith('head.') for k in reinitialized):
        return  # the stage-1 classifier is re-initialised: no logits check
    n = min(64, cache.num_samples)
    feats, logits, _ = cache.batch(0, range(n))
    dev = next(model.parameters()).device
    with torch.no_grad():
        again = stage1_logits(model.head, (feats.to(dev), )).cpu()
    tol = 1e-2 if meta['dtype'] == 'float16' else 1e-4
    err = (again - logits).abs().max().item()
    scale = max(1.0, logits.abs().max().item())
    if err > tol * scale:
        raise ValueError(
            f'the cached logits of {cache.cache_dir} differ from those of '
            f'the loaded classifier by up to {err:.3g}: the cache was made '
            f'with other stage-1 weights than {checkpoint}')


def train_cached(cfg: Config,
                 cache_dir: str,
                 work_dir: Optional[str] = None,
                 checkpoint: Optional[str] = None,
                 device: str = 'cpu',
                 seed: Optional[int] = None,
                 log_interval: int = 0,
                 built: Optional[tuple] = None) -> dict:
    """Train the config's stage 2 on cached features; save a checkpoint.

    Args:
        cfg (Config): The stage-2 config.
        cache_dir (str): A cache of :func:`cache_features` for this config
            and stage-1 checkpoint.
        work_dir (str, optional): Where ``epoch_{max_epochs}.pth`` goes.
            Defaults to ``cfg.work_dir``.
        checkpoint (str, optional): Stage-1 checkpoint. Defaults to None
            (``cfg.load_from``).
        device (str): Defaults to 'cpu'.
        seed (int, optional): Overrides ``cfg.randomness.seed``.
        log_interval (int): Print the loss every that many iterations
            (0: once per epoch). Defaults to 0.
        built (tuple, optional): The output of :func:`build_stage2_model`
            for this config and checkpoint, not trained yet, to reuse (the
            extraction leaves it unchanged). Defaults to None.

    Returns:
        dict: ``checkpoint`` (the written file), ``seconds``, ``iters``,
        ``last_loss``.
    """
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample
    start = time.perf_counter()
    logger = MMLogger.get_current_instance()
    work_dir = work_dir or cfg.get('work_dir')
    if not work_dir:
        raise ValueError('no work_dir: give one or set cfg.work_dir')
    train_cfg = cfg.get('train_cfg') or {}
    if not train_cfg.get('by_epoch', 'max_epochs'
                         in train_cfg) or ('max_epochs' not in train_cfg):
        raise ValueError('cached stage 2 supports epoch-based training '
                         f'(train_cfg.max_epochs); got {dict(train_cfg)!r}')
    max_epochs = int(train_cfg['max_epochs'])
    cache = FeatureCache(cache_dir)
    checkpoint = checkpoint or cfg.get('load_from')
    if built is None:
        built = build_stage2_model(cfg, checkpoint, device, seed, logger)
    model, hook, stub, seed = built
    _check_model(model)
    _check_cache(cache, model, checkpoint, logger,
                 getattr(hook, 'reinitialized', ()))
    head_classes = getattr(model.head, 'num_classes', None)
    if head_classes is not None and head_classes != cache.meta['num_classes']:
        raise ValueError(f'the cache has {cache.meta["num_classes"]} '
                         f'classes, the head {head_classes}')
    optim_wrapper = build_optim_wrapper(model,
                                        copy.deepcopy(cfg.optim_wrapper))
    stub.optim_wrapper = optim_wrapper
    sampler, batch_size, drop_last = _build_sampler(cfg, cache, seed)
    num = len(sampler)
    epoch_length = num // batch_size if drop_last else math.ceil(num /
                                                                 batch_size)
    schedulers = _build_schedulers(cfg, optim_wrapper, max_epochs,
                                   epoch_length)
    samples = [
        DataSample().set_gt_label(int(y)) for y in cache.labels.tolist()
    ]
    iters, loss_value = 0, float('nan')
    for epoch in range(max_epochs):
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)
        model.train()
        order = np.fromiter(iter(sampler), dtype=np.int64, count=num)
        pass_idx = epoch % cache.passes
        for b in range(epoch_length):
            idx = order[b * batch_size:(b + 1) * batch_size]
            hook.before_train_iter(stub, b)
            feats, _, _ = cache.batch(pass_idx, idx, device)
            data_samples = [samples[i] for i in idx.tolist()]
            with optim_wrapper.optim_context(model):
                losses = model.head.loss((feats, ), data_samples)
            parsed, log_vars = model.parse_losses(losses)
            optim_wrapper.update_params(parsed)
            for sched in schedulers:
                if not sched.by_epoch:
                    sched.step()
            iters += 1
            loss_value = float(log_vars['loss'].detach())
            if log_interval and iters % log_interval == 0:
                logger.info(f'cached stage 2: epoch {epoch + 1} iter '
                            f'{b + 1}/{epoch_length} loss {loss_value:.4f}')
        for sched in schedulers:
            if sched.by_epoch:
                sched.step()
        if not log_interval:
            logger.info(f'cached stage 2: epoch {epoch + 1}/{max_epochs} '
                        f'loss {loss_value:.4f}')
    os.makedirs(work_dir, exist_ok=True)
    out = osp.join(work_dir, f'epoch_{max_epochs}.pth')
    meta = dict(
        epoch=max_epochs,
        iter=iters,
        seed=seed,
        config=cfg.filename,
        mmdisalign_stage2=dict(
            path='cached_features',
            cache_dir=osp.abspath(cache_dir),
            cache_passes=cache.passes,
            cache_dtype=cache.meta['dtype'],
            cache_augment=cache.meta.get('augment'),
            stage1_checkpoint=osp.abspath(checkpoint)))
    save_checkpoint(
        dict(meta=meta, state_dict=weights_to_cpu(model.state_dict())), out)
    return dict(
        checkpoint=out,
        seconds=time.perf_counter() - start,
        iters=iters,
        last_loss=loss_value)


def run_cached_stage2(cfg: Config,
                      cache_dir: str,
                      work_dir: Optional[str] = None,
                      checkpoint: Optional[str] = None,
                      device: str = 'cpu',
                      seed: Optional[int] = None,
                      log_interval: int = 0,
                      **extract_kwargs) -> dict:
    """Extract (unless ``cache_dir`` holds a cache) and train, end to end.

    The stage-2 model is built once and serves both steps.

    Args:
        cfg (Config): The stage-2 config.
        cache_dir (str): Cache directory; filled first if it holds no
            cache.
        work_dir (str, optional): See :func:`train_cached`.
        checkpoint (str, optional): Stage-1 checkpoint. Defaults to None
            (``cfg.load_from``).
        device (str): Defaults to 'cpu'.
        seed (int, optional): Overrides ``cfg.randomness.seed``.
        log_interval (int): See :func:`train_cached`.
        **extract_kwargs: ``passes``, ``augment``, ``dtype``,
            ``batch_size``, ``num_workers``, ``log_every`` of
            :func:`cache_features`.

    Returns:
        dict: :func:`train_cached`'s result plus ``extraction`` (the cache
        meta data, or None when the cache existed) and ``total_seconds``.
    """
    start = time.perf_counter()
    built = build_stage2_model(cfg, checkpoint, device, seed)
    extraction = None
    if not osp.isfile(osp.join(cache_dir, 'meta.json')):
        extraction = cache_features(
            cfg,
            cache_dir,
            checkpoint,
            device=device,
            built=built,
            **extract_kwargs)
    result = train_cached(
        cfg,
        cache_dir,
        work_dir=work_dir,
        checkpoint=checkpoint,
        device=device,
        log_interval=log_interval,
        built=built)
    result['extraction'] = extraction
    result['total_seconds'] = time.perf_counter() - start
    return result
