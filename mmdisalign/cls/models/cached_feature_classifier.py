"""An image classifier that trains its head on cached neck features."""
from typing import Optional, Tuple

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

__all__ = ['CachedFeatureClassifier']


@MODELS.register_module()
class CachedFeatureClassifier(ImageClassifier):
    """:class:`ImageClassifier` fed with cached neck features.

    Stage 2 of a classifier without running the frozen network: the inputs
    are the pooled neck features that ``tools/cache_features.py`` stored
    (:class:`FeatureCacheDataset`), :meth:`extract_feat` returns them, and
    the head (calibration, loss) runs as in the image model.

    The backbone and neck are built as usual and never run: the state dict
    is the image model's, so ``load_from`` reads the stage-1 checkpoint,
    ``DisAlignFreezeHook`` freezes and re-initialises exactly as for
    images, and the checkpoint the Runner writes is a complete stage-2
    checkpoint, tested on images with the image config.

    Args:
        data_preprocessor (dict, optional): The image model's data
            preprocessor (the Runner merges the config's top-level one).
            What acts on pixels (mean, std, ``to_rgb``, padding) was applied
            at extraction and is left out; the labels are prepared as for
            images (``to_onehot``, ``num_classes``). Batch augmentations
            (mixup, cutmix) mix images, which cached features cannot do:
            they are refused. Defaults to None.
        train_cfg (dict, optional): As for :class:`ImageClassifier`; its
            ``augments`` are refused likewise. Defaults to None.
        **kwargs: The other arguments of :class:`ImageClassifier`
            (``backbone``, ``neck``, ``head``, ...).
    """

    def __init__(self,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        image = dict(data_preprocessor or {})
        augments = image.get('batch_augments') or (train_cfg
                                                   or {}).get('augments')
        if augments:
            raise ValueError(
                f'the config uses batch augmentations ({augments!r}); they '
                'mix images, which cached features cannot do: train stage 2 '
                'on images')
        super().__init__(
            data_preprocessor=dict(
                type='mmpretrain.ClsDataPreprocessor',
                to_onehot=image.get('to_onehot', False),
                num_classes=image.get('num_classes')),
            train_cfg=train_cfg,
            **kwargs)

    def extract_feat(self,
                     inputs: torch.Tensor,
                     stage: str = 'neck') -> Tuple[torch.Tensor]:
        """The neck output: the cached features.

        Args:
            inputs (Tensor): ``(N, D)`` cached features.
            stage (str): Only ``'neck'``. Defaults to 'neck'.

        Returns:
            tuple[Tensor]: ``(inputs, )``.
        """
        if stage != 'neck':
            raise ValueError('a cached-feature classifier has only the neck '
                             f'output, not stage {stage!r}')
        return (inputs, )
