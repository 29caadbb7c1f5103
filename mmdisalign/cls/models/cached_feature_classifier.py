"""An image classifier that trains its head on cached neck features."""
from typing import Optional, Tuple

import torch
from mmpretrain.models import ClsDataPreprocessor, ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

__all__ = ['CachedFeatureDataPreprocessor', 'CachedFeatureClassifier']


@MODELS.register_module()
class CachedFeatureDataPreprocessor(ClsDataPreprocessor):
    """The data preprocessor of :class:`CachedFeatureClassifier`.

    Takes a batch of ``feature_cache_collate``
    (``dict(inputs=(B, D), gt_label=(B,))``), moves both tensors to the
    device and makes the data samples there, one per sample, each with its
    ``gt_label``: what :class:`ClsDataPreprocessor` makes of per-sample
    items, with one copy of the labels and no per-sample conversion.
    Batches of per-sample items (other collate functions) and
    ``to_onehot`` go through :class:`ClsDataPreprocessor`.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        """Move the batch to the device and make the data samples.

        Args:
            data (dict): A batch from the data loader.
            training (bool): Whether in training. Defaults to False.

        Returns:
            dict: ``inputs`` and ``data_samples``.
        """
        if 'gt_label' not in data:
            return super().forward(data, training)
        inputs = self.cast_data(data['inputs'])
        samples = [
            DataSample(gt_label=label)
            for label in self.cast_data(data['gt_label']).split(1)
        ]
        if self.to_onehot:
            return super().forward(
                dict(inputs=inputs, data_samples=samples), training)
        return dict(inputs=inputs, data_samples=samples)


@MODELS.register_module()
class CachedFeatureClassifier(ImageClassifier):
    """:class:`ImageClassifier` fed with cached neck features.

    Stage 2 of a classifier without running the frozen network: the inputs
    are the pooled neck features that ``tools/cache_features.py`` stored
    (``FeatureCacheDataset``), :meth:`extract_feat` returns them, and the
    head (calibration, loss) runs as in the image model.

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
            images (``to_onehot``, ``num_classes``) by a
            :class:`CachedFeatureDataPreprocessor`. Batch augmentations
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
                type=CachedFeatureDataPreprocessor,
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
