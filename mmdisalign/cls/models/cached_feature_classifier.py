"""An image classifier that trains its head on cached neck features."""
from typing import List, Optional, Tuple, Union

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

__all__ = ['CachedFeatureClassifier']


@MODELS.register_module()
class CachedFeatureClassifier(ImageClassifier):
    """:class:`ImageClassifier` fed with cached neck features.

    Stage 2 of a classifier without running the frozen network: the inputs
    are the pooled neck features that ``tools/cache_features.py`` stored
    (:class:`FeatureCacheDataset`), :meth:`extract_feat` only batches them,
    and the head (calibration, loss) runs as in the image model.

    The backbone and neck are built as usual and never run: the state dict
    is the image model's, so ``load_from`` reads the stage-1 checkpoint,
    ``DisAlignFreezeHook`` freezes and re-initialises exactly as for
    images, and the checkpoint the Runner writes is a complete stage-2
    checkpoint, tested on images with the image config.

    Args:
        data_preprocessor (dict, optional): The image model's data
            preprocessor (the Runner merges the config's top-level one). It
            was applied when the features were extracted, so it is not used
            here (the features only move to the device); its batch
            augmentations (mixup, cutmix) mix images, which cached features
            cannot do, so they are refused. Defaults to None.
        train_cfg (dict, optional): As for :class:`ImageClassifier`;
            ``augments`` are refused likewise. Defaults to None.
        **kwargs: The other arguments of :class:`ImageClassifier`
            (``backbone``, ``neck``, ``head``, ...).
    """

    def __init__(self,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        augments = ((data_preprocessor or {}).get('batch_augments')
                    or (train_cfg or {}).get('augments'))
        if augments:
            raise ValueError(
                f'the config uses batch augmentations ({augments!r}); they '
                'mix images, which cached features cannot do: train stage 2 '
                'with the image model')
        super().__init__(
            data_preprocessor=dict(type='mmengine.BaseDataPreprocessor'),
            train_cfg=train_cfg,
            **kwargs)

    def extract_feat(self,
                     inputs: Union[torch.Tensor, List[torch.Tensor]],
                     stage: str = 'neck') -> Tuple[torch.Tensor]:
        """The neck output: the cached ``(N, D)`` features, batched.

        Args:
            inputs (Tensor | list[Tensor]): ``(N, D)``, or N ``(D,)``
                features.
            stage (str): Only ``'neck'``. Defaults to 'neck'.

        Returns:
            tuple[Tensor]: ``((N, D), )``.
        """
        if stage != 'neck':
            raise ValueError('a cached-feature classifier has only the neck '
                             f'output, not stage {stage!r}')
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(inputs)
        return (inputs, )
