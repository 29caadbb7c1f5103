"""Stage 2 on cached features: pass selection, cache checks, marker."""
import os.path as osp

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from mmdisalign.engine.hooks.freeze_hook import STAGE2_META_KEY
from ...datasets.feature_cache import feature_fingerprint, stage1_logits

__all__ = ['FeatureCacheHook']


@HOOKS.register_module()
class FeatureCacheHook(Hook):
    """Train a ``CachedFeatureClassifier`` on a ``FeatureCacheDataset``.

    - ``before_train`` refuses a cache that does not come from the loaded
      weights: the SHA-1 of the backbone and neck recorded at extraction
      must match, and the loaded classifier must give the cached stage-1
      logits of the first :attr:`num_check` samples (unless stage 2 trains
      the classifier itself, as cRT does). It also refuses a cache of
      another number of classes, trainable parameters outside the head
      (the cached features do not depend on them) and, for a cache of
      several passes, an iteration-based loop or persistent data workers
      (the pass would never change).
    - ``before_train_epoch``: epoch ``e`` reads pass ``e % passes``.
    - ``before_save_checkpoint`` records the cache in
      ``meta['mmdisalign_stage2']`` (``path='cached_features'``), next to
      what ``DisAlignFreezeHook`` writes there.

    The priority is ``'BELOW_NORMAL'``: the hook runs after
    ``DisAlignFreezeHook`` and sees what it left trainable.
    """

    priority = 'BELOW_NORMAL'

    #: Samples whose cached logits ``before_train`` recomputes.
    num_check = 64

    def before_train(self, runner) -> None:
        """Check the cache against the model and the loop.

        Args:
            runner (Runner): The runner.
        """
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        dataset = runner.train_dataloader.dataset
        meta = dataset.meta
        load_from = runner.cfg.get('load_from')
        outside = [
            name for name, param in model.named_parameters()
            if param.requires_grad and not name.startswith('head.')
        ]
        if outside:
            raise ValueError(
                f'FeatureCacheHook: {outside[:5]} are trainable, but the '
                'cached features do not depend on them: freeze them '
                '(DisAlignFreezeHook) or train stage 2 on images')
        if dataset.passes > 1 and (
                not isinstance(runner.train_loop, EpochBasedTrainLoop)
                or runner.train_dataloader.persistent_workers):
            raise ValueError(
                f'FeatureCacheHook: {dataset.cache_dir} holds '
                f'{dataset.passes} passes, read one per epoch: that needs an '
                'epoch-based loop (train_cfg.by_epoch) and no persistent '
                'data workers')
        if load_from and meta.get('checkpoint') and osp.abspath(
                load_from) != meta['checkpoint']:
            runner.logger.warning(
                f'the cache was made from {meta["checkpoint"]}, training '
                f'loads {osp.abspath(load_from)}')
        sha1 = meta.get('feature_sha1')
        if sha1 is not None and sha1 != feature_fingerprint(model):
            raise ValueError(
                f'the features of {dataset.cache_dir} were extracted with '
                f'other backbone / neck weights than those of {load_from} '
                '(SHA-1 differs): extract them again')
        head_classes = getattr(model.head, 'num_classes', None)
        if head_classes not in (None, meta['num_classes']):
            raise ValueError(f'the cache has {meta["num_classes"]} classes, '
                             f'the head {head_classes}')
        if any(param.requires_grad
               for name, param in model.head.named_parameters()
               if not name.startswith('calibration.')):
            return  # the stage-1 classifier is trained: no logits check
        self._check_logits(model, dataset, load_from)

    def _check_logits(self, model, dataset, load_from) -> None:
        """Recompute the cached stage-1 logits of the first samples."""
        n = min(self.num_check, len(dataset))
        device = next(model.head.parameters()).device
        feats = torch.from_numpy(np.array(dataset.feats[0, :n], np.float32))
        cached = torch.from_numpy(np.array(dataset.logits[0, :n], np.float32))
        with torch.no_grad():
            again = stage1_logits(model.head, (feats.to(device), )).cpu()
        tol = 1e-2 if dataset.meta['dtype'] == 'float16' else 1e-4
        err = (again - cached).abs().max().item()
        if err > tol * max(1.0, cached.abs().max().item()):
            raise ValueError(
                f'the cached logits of {dataset.cache_dir} differ from those '
                f'of the loaded classifier by up to {err:.3g}: the cache was '
                f'made with other stage-1 weights than {load_from}')

    def before_train_epoch(self, runner) -> None:
        """Read pass ``epoch % passes`` in this epoch.

        Args:
            runner (Runner): The runner.
        """
        dataset = runner.train_dataloader.dataset
        dataset.set_pass(runner.epoch % dataset.passes)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the cache in ``meta['mmdisalign_stage2']``.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The checkpoint being saved.
        """
        dataset = runner.train_dataloader.dataset
        load_from = runner.cfg.get('load_from')
        entry = checkpoint.setdefault('meta',
                                      {}).setdefault(STAGE2_META_KEY, {})
        entry.update(
            path='cached_features',
            cache_dir=osp.abspath(dataset.cache_dir),
            cache_passes=dataset.passes,
            cache_dtype=dataset.meta['dtype'],
            cache_augment=dataset.meta.get('augment'),
            stage1_checkpoint=load_from and osp.abspath(load_from))
