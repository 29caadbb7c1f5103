"""Extract the frozen stage-1 features of a classification training set.

Runs the frozen network of an image stage-2 config (stage-1 weights from its
``load_from`` or ``--checkpoint``) over the training set once, or
``--passes`` times through the training augmentation (``--augment``), and
stores the pooled features, the stage-1 logits and the labels as
memory-mapped ``.npy`` files (:class:`FeatureCacheWriter`, the format that
``mmdisalign.cls.FeatureCacheDataset`` reads). Then
train stage 2 on them with mmengine's Runner and a cached-feature config
(``CachedFeatureClassifier`` + ``FeatureCacheDataset`` +
``FeatureCacheHook``), and test the checkpoint on images with the image
config::

    python tools/cache_features.py IMAGE_CONFIG --out CACHE_DIR
    python tools/train.py CACHED_CONFIG \\
        --cfg-options train_dataloader.dataset.cache_dir=CACHE_DIR
    python tools/test.py IMAGE_CONFIG work_dirs/<cached config>/epoch_10.pth

The model is built, seeded and initialised as the Runner does it, the
stage-1 weights are loaded as ``load_from`` loads them, and the network is
run in the state stage 2 trains it in (train mode, norm layers of the
backbone and neck in eval mode). The training set is read in order; with
``--augment`` through the training pipeline (pass ``p`` seeds the data
workers with ``seed + p``), otherwise through the test pipeline. The
backbone and neck run compiled by ``torch.compile`` (:class:`FrozenFeatures`;
``--no-compile``: eagerly); where compilation is unavailable or fails, they
run eagerly and the reason is logged.
"""
import argparse
import copy
import json
import logging
import os
import os.path as osp
import re
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config

try:
    import mmdisalign  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmdisalign  # noqa: F401
from mmdisalign.cls.datasets.feature_cache import CACHE_VERSION
from mmdisalign.compat import TRUST_KEY, trusted_checkpoints
from mmdisalign.utils.config import CfgOptionsAction, load_config

#: Keys a stage-1 checkpoint may lack (see DisAlignFreezeHook).
_OPTIONAL_KEYS = (re.compile(r'(.*\.)?num_batches_tracked$'), )
_DTYPES = ('float32', 'float16')
_FILES = ('feats.npy', 'logits.npy', 'labels.npy', 'meta.json')


def _check_dtype(dtype: str) -> np.dtype:
    if str(dtype) not in _DTYPES:
        raise ValueError(f'dtype must be one of {_DTYPES}, but got {dtype!r}')
    return np.dtype(str(dtype))


def cache_nbytes(num_samples: int,
                 feat_dim: int,
                 num_classes: int,
                 dtype: str = 'float16',
                 passes: int = 1) -> Dict[str, int]:
    """Bytes a cache takes on disk (without the ``.npy`` headers).

    Args:
        num_samples (int): Training samples ``N``.
        feat_dim (int): Feature channels ``D``.
        num_classes (int): Classes ``K``.
        dtype (str): ``'float16'`` or ``'float32'``. Defaults to
            'float16'.
        passes (int): Passes ``P``. Defaults to 1.

    Returns:
        dict: ``feats``, ``logits``, ``labels`` and ``total`` in bytes.

    Examples:
        >>> cache_nbytes(115846, 2048, 1000)['feats']  # ImageNet-LT, R-50
        474505216
    """
    item = _check_dtype(dtype).itemsize
    sizes = dict(
        feats=passes * num_samples * feat_dim * item,
        logits=passes * num_samples * num_classes * item,
        labels=num_samples * 8)
    sizes['total'] = sum(sizes.values())
    return sizes


class FeatureCacheWriter:
    """Create a cache directory and fill it chunk by chunk.

    The arrays are created with :func:`numpy.lib.format.open_memmap`, so
    nothing larger than a chunk is held in memory. ``meta.json`` is written
    by :meth:`close`; a directory without it is an unfinished cache that
    ``FeatureCacheDataset`` refuses to open.

    Args:
        out_dir (str): Directory to create (must not hold a cache yet unless
            ``overwrite``).
        num_samples (int): Training samples ``N``.
        feat_dim (int): Feature channels ``D``.
        num_classes (int): Classes ``K``.
        passes (int): Passes ``P``. Defaults to 1.
        dtype (str): ``'float32'`` or ``'float16'``. Defaults to
            'float32'.
        overwrite (bool): Replace an existing cache. Defaults to False.
    """

    def __init__(self,
                 out_dir: str,
                 num_samples: int,
                 feat_dim: int,
                 num_classes: int,
                 passes: int = 1,
                 dtype: str = 'float32',
                 overwrite: bool = False) -> None:
        self.dtype = _check_dtype(dtype)
        existing = [f for f in _FILES if osp.exists(osp.join(out_dir, f))]
        if existing and not overwrite:
            raise FileExistsError(
                f'{out_dir} already holds a feature cache ({existing}); '
                'pass overwrite=True (--overwrite) to replace it')
        os.makedirs(out_dir, exist_ok=True)
        meta_file = osp.join(out_dir, 'meta.json')
        if osp.exists(meta_file):
            os.remove(meta_file)  # unfinished until close()
        self.out_dir = out_dir
        self.shape = (passes, num_samples)

        def open_array(name, dtype, shape):
            return np.lib.format.open_memmap(
                osp.join(out_dir, name), mode='w+', dtype=dtype, shape=shape)

        self.feats = open_array('feats.npy', self.dtype,
                                self.shape + (feat_dim, ))
        self.logits = open_array('logits.npy', self.dtype,
                                 self.shape + (num_classes, ))
        self.labels = open_array('labels.npy', np.int64, (num_samples, ))
        self._written = np.zeros(self.shape, dtype=bool)

    def write(self, pass_idx: int, indices: Sequence[int], feats, logits,
              labels) -> None:
        """Store the rows ``indices`` of pass ``pass_idx``.

        Args:
            pass_idx (int): The pass.
            indices (Sequence[int]): Dataset indices of the rows.
            feats (Tensor | np.ndarray): ``(len(indices), D)``.
            logits (Tensor | np.ndarray): ``(len(indices), K)``.
            labels (Tensor | np.ndarray): ``(len(indices),)``.
        """
        idx = np.asarray(indices, dtype=np.int64)
        feats, logits, labels = (
            x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
            for x in (feats, logits, labels))
        # numpy would broadcast a wrong shape into the rows without a word
        for name, array, expect in (
            ('feats', feats, (idx.size, self.feats.shape[2])),
            ('logits', logits, (idx.size, self.logits.shape[2])),
            ('labels', labels, (idx.size, )),
        ):
            if array.shape != expect:
                raise ValueError(f'{name} must have shape {expect}, but got '
                                 f'{array.shape}')
        if pass_idx == 0:
            self.labels[idx] = labels
        elif not np.array_equal(self.labels[idx], labels):
            bad = idx[self.labels[idx] != labels][0]
            raise ValueError(f'pass {pass_idx} gives sample {bad} another '
                             'label than pass 0: the data order changed')
        self.feats[pass_idx, idx] = feats
        self.logits[pass_idx, idx] = logits
        self._written[pass_idx, idx] = True

    def close(self, meta: Optional[dict] = None) -> dict:
        """Flush the arrays and write ``meta.json``.

        Args:
            meta (dict, optional): Extra JSON-serialisable information.

        Returns:
            dict: The full meta data written.

        Raises:
            RuntimeError: If some rows were never written.
        """
        missing = np.argwhere(~self._written)
        if missing.size:
            p, i = missing[0]
            raise RuntimeError(
                f'{len(missing)} cache rows were never written (first: pass '
                f'{p}, sample {i})')
        for array in (self.feats, self.logits, self.labels):
            array.flush()
        full = dict(
            version=CACHE_VERSION,
            num_samples=self.shape[1],
            passes=self.shape[0],
            feat_dim=self.feats.shape[2],
            num_classes=self.logits.shape[2],
            dtype=self.dtype.name,
            label_counts=np.bincount(
                self.labels, minlength=self.logits.shape[2]).tolist())
        full.update(meta or {})
        with open(osp.join(self.out_dir, 'meta.json'), 'w') as f:
            json.dump(full, f, indent=1)
        del self.feats, self.logits, self.labels
        return full


def build_frozen_model(cfg: Config,
                       checkpoint: str,
                       device: str = 'cpu',
                       seed: Optional[int] = None):
    """Build, initialise and load the classifier of an image config.

    As the Runner does it: seed (``cfg.randomness``, or ``seed``), build
    ``cfg.model`` (with the top-level ``data_preprocessor`` merged in),
    ``init_weights()``, load the stage-1 checkpoint (non-strict, ``module.``
    prefixes removed). The backbone and neck must all come from the
    checkpoint. Then train mode with the norm layers of the backbone and
    neck in eval mode, as ``DisAlignFreezeHook`` leaves them.

    Returns:
        tuple: ``(model, seed)``.
    """
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint, set_random_seed

    from mmdisalign.engine.stage1_check import (check_stage1_weights,
                                                checkpoint_shapes)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    randomness = dict(cfg.get('randomness') or {})
    seed = set_random_seed(
        seed=randomness.get('seed') if seed is None else seed,
        deterministic=randomness.get('deterministic', False))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor',
                             copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg).to(device)
    model.init_weights()
    augments = getattr(model.data_preprocessor, 'batch_augments', None)
    if augments is not None:
        raise ValueError(
            'the config uses batch augmentations (e.g. mixup / cutmix, '
            f'{type(augments).__name__}) in its data preprocessor; they mix '
            'images, which cached features cannot do: train stage 2 with '
            'the Runner on images')
    ckpt = load_checkpoint(
        model,
        checkpoint,
        map_location='cpu',
        revise_keys=[(r'^module\.', '')])
    frozen = {
        key: tuple(value.shape)
        for key, value in model.state_dict().items()
        if key.startswith(('backbone.', 'neck.'))
    }
    check_stage1_weights(
        frozen,
        checkpoint_shapes(ckpt),
        source=checkpoint,
        allow_missing=_OPTIONAL_KEYS)
    model.train()
    for name, module in model.named_modules():
        if name.startswith(('backbone', 'neck')) and getattr(
                module, 'running_mean', None) is not None:
            module.eval()
    return model, seed


class FrozenFeatures:
    """``model.extract_feat`` compiled by ``torch.compile``, or eager.

    The compiled function is specialised to the shape of the first batch
    (``dynamic=False``); a batch of another shape (the last, smaller one)
    runs eagerly, so nothing is compiled twice. Where ``torch.compile``
    raises, when it is called or on the first batch (e.g. no C++ compiler
    for inductor on the CPU, no Triton on CUDA, an unsupported Python), the
    reason is logged as a warning and every batch runs eagerly; an error of
    the model itself is raised again by the eager call. Compiled features
    equal the eager ones up to float rounding (docs/performance.md).

    Args:
        model (nn.Module): The frozen classifier (``extract_feat``).
        compile (bool): Compile. Defaults to True.
    """

    def __init__(self, model, compile: bool = True) -> None:
        self.model = model
        self.compiled = None
        self.reason = None if compile else 'disabled (compile=False)'
        self._shape = None
        if compile:
            try:
                self.compiled = torch.compile(
                    model.extract_feat, dynamic=False)
            except Exception as exc:  # unavailable here
                self._fall_back(exc)

    @property
    def is_compiled(self) -> bool:
        """Whether the batches run compiled (so far)."""
        return self.compiled is not None

    def _fall_back(self, exc: Exception) -> None:
        from mmengine.logging import print_log
        lines = str(exc).strip().splitlines() or ['']
        self.reason = f'{type(exc).__name__}: {lines[0][:300]}'
        self.compiled = None
        print_log(
            'feature extraction runs eagerly: torch.compile failed '
            f'({self.reason})',
            logger='current',
            level=logging.WARNING)

    def __call__(self, inputs: torch.Tensor):
        if self.compiled is not None:
            if self._shape is None:
                self._shape = inputs.shape
            if inputs.shape == self._shape:
                try:
                    return self.compiled(inputs)
                except Exception as exc:  # compilation failed
                    self._fall_back(exc)
        return self.model.extract_feat(inputs)


def _neck_feature(feats) -> torch.Tensor:
    """The single (N, D) tensor of a classifier's neck output."""
    if len(feats) != 1 or feats[0].dim() != 2:
        raise ValueError(
            'feature caching needs a neck that outputs one pooled (N, D) '
            'feature (e.g. GlobalAveragePooling), but got '
            f'{[tuple(f.shape) for f in feats]}')
    return feats[0]


def extract_pass(model,
                 dataloader,
                 writer,
                 pass_idx: int,
                 log_every: int = 0,
                 features: Optional[FrozenFeatures] = None) -> float:
    """Run the frozen model over the training set (in order) into a cache.

    Args:
        features (FrozenFeatures, optional): The backbone and neck to run.
            Defaults to None (``model.extract_feat``, eager).

    Returns:
        float: Seconds taken.
    """
    from mmdisalign.cls.datasets import stage1_logits
    extract_feat = features or model.extract_feat
    start = time.perf_counter()
    pos = 0
    with torch.no_grad():
        for i, data in enumerate(dataloader):
            data = model.data_preprocessor(data, False)
            feat = _neck_feature(extract_feat(data['inputs']))
            logits = stage1_logits(model.head, (feat, ))
            labels = torch.cat(
                [s.gt_label.reshape(-1)[:1] for s in data['data_samples']])
            writer.write(pass_idx, range(pos, pos + len(feat)), feat, logits,
                         labels)
            pos += len(feat)
            if log_every and (i + 1) % log_every == 0:
                print(
                    f'  pass {pass_idx}: {i + 1}/{len(dataloader)} batches, '
                    f'{time.perf_counter() - start:.0f} s',
                    flush=True)
    return time.perf_counter() - start


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
                   compile: bool = True) -> dict:
    """Extract the frozen stage-1 features of ``cfg``'s training set.

    Args:
        cfg (Config): An image stage-2 (or stage-1) classification config.
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
        compile (bool): Run the backbone and neck compiled by
            ``torch.compile`` (:class:`FrozenFeatures`; eager where that
            fails, with the reason logged). The stage-1 logits are computed
            eagerly from the features either way. Defaults to True.

    Returns:
        dict: The cache's meta data.
    """
    from mmengine.runner import Runner

    from mmdisalign.cls.datasets import feature_fingerprint, stage1_logits
    if passes > 1 and not augment:
        raise ValueError('passes > 1 without augment would store the same '
                         'features several times')
    checkpoint = checkpoint or cfg.get('load_from')
    if not checkpoint:
        raise ValueError('no stage-1 checkpoint: the config has no '
                         '`load_from` and none was given (--checkpoint)')
    start = time.perf_counter()
    model, seed = build_frozen_model(cfg, checkpoint, device, seed)
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
        loader_cfg.persistent_workers = num_workers > 0
    features = FrozenFeatures(model, compile)
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
            extract_pass(model, loader, writer, p, log_every, features))
    stat = os.stat(checkpoint)
    return writer.close(
        dict(
            augment=augment,
            seed=seed,
            config=cfg.filename,
            classes=list(loader.dataset.metainfo.get('classes') or []),
            checkpoint=osp.abspath(checkpoint),
            checkpoint_size=stat.st_size,
            checkpoint_mtime=stat.st_mtime,
            feature_sha1=feature_fingerprint(model),
            pass_seconds=pass_seconds,
            compiled=features.is_compiled,
            compile_fallback=features.reason,
            seconds=time.perf_counter() - start))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='image stage-2 config')
    parser.add_argument('--out', required=True, help='cache directory')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing cache')
    parser.add_argument(
        '--checkpoint',
        help='stage-1 checkpoint (default: the config\'s load_from)')
    parser.add_argument(
        '--passes',
        type=int,
        default=1,
        help='passes over the training set (needs --augment when > 1)')
    parser.add_argument(
        '--augment',
        action='store_true',
        help='read the training set through the training pipeline '
        '(default: the test pipeline)')
    parser.add_argument(
        '--dtype',
        choices=['float32', 'float16'],
        default='float32',
        help='storage type of features and logits')
    parser.add_argument(
        '--batch-size',
        type=int,
        help='extraction batch size (default: the training one)')
    parser.add_argument(
        '--num-workers',
        type=int,
        help='data workers (default: the training loader\'s)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument(
        '--no-compile',
        action='store_true',
        help='run the backbone and neck eagerly instead of compiled by '
        'torch.compile')
    parser.add_argument(
        '--seed', type=int, help='overrides the config\'s randomness.seed')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of the config, key=value')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load the checkpoint with weights_only=False (can run code '
        'stored in it: only for files you trust); same as '
        'trust_checkpoint=True in the config')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    with trusted_checkpoints(
            args.trust_checkpoint or cfg.get(TRUST_KEY, False)):
        meta = _cache_features_from_args(cfg, args)
    print(f'cached {meta["passes"]} pass(es) x {meta["num_samples"]} '
          f'samples ({meta["feat_dim"]}-d features, {meta["num_classes"]} '
          f'classes, {meta["dtype"]}) in {args.out} in '
          f'{meta["seconds"]:.1f} s, backbone and neck ' +
          ('compiled'
           if meta['compiled'] else f'eager ({meta["compile_fallback"]})'))
    return meta


def _cache_features_from_args(cfg, args) -> dict:
    return cache_features(
        cfg,
        args.out,
        checkpoint=args.checkpoint,
        passes=args.passes,
        augment=args.augment,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        seed=args.seed,
        overwrite=args.overwrite,
        log_every=50,
        compile=not args.no_compile)


if __name__ == '__main__':
    main()
