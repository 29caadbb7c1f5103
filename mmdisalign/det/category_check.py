"""Check that datasets, evaluators, frequency files and model agree on the
categories (mmdet would silently read an extra label as background)."""
from typing import Any, List, Optional, Sequence

from mmdet.models.dense_heads import RPNHead
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper

from mmdisalign.utils.class_freq import check_class_order, load_class_freq_meta
from mmdisalign.utils.misc import unwrap_datasets

__all__ = ['DisAlignCategoryCheckHook', 'dataset_category_ids']


def dataset_category_ids(dataset: Any) -> Optional[List[int]]:
    """``dataset.cat_ids`` (label order) after full initialisation, or None
    for a dataset without category ids."""
    if hasattr(dataset, 'full_init'):
        dataset.full_init()  # a no-op once initialised
    cat_ids = getattr(dataset, 'cat_ids', None)
    return None if cat_ids is None else list(cat_ids)


def _describe(dataset: Any) -> str:
    ann_file = getattr(dataset, 'ann_file', None)
    name = type(dataset).__name__
    return f'{name}(ann_file={ann_file!r})' if ann_file else name


def _first_difference(a: Sequence[int], b: Sequence[int]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f'label {i} is category id {x} in one and {y} in the other'
    return (f'they agree on the first {min(len(a), len(b))} categories but '
            f'have {len(a)} and {len(b)}')


@HOOKS.register_module()
class DisAlignCategoryCheckHook(Hook):
    """Stop a run whose data, evaluator, frequencies and model disagree.

    Checked once per split, before training, validation or testing: the
    number of categories against every box and mask head and the dataset's
    ``metainfo``; the category ids against the other splits, an
    ``LVISMetric``'s ``ann_file`` and the class-frequency files of the
    losses. See docs/det.md.

    Args:
        check_metainfo (bool): Require ``metainfo['classes']`` to have one
            name per category of the file. Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_metainfo: bool = True) -> None:
        self.check_metainfo = check_metainfo
        self._checked = set()
        self._reference: Optional[tuple] = None

    def before_train(self, runner) -> None:
        self._check(runner, 'train', runner.train_dataloader.dataset, None)
        if runner.val_loop is not None:
            self.before_val(runner)

    def before_val(self, runner) -> None:
        loop = runner.val_loop
        self._check(runner, 'val', loop.dataloader.dataset, loop.evaluator)

    def before_test(self, runner) -> None:
        loop = runner.test_loop
        self._check(runner, 'test', loop.dataloader.dataset, loop.evaluator)

    def _check(self, runner, split: str, dataset: Any, evaluator: Any) -> None:
        if split in self._checked:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        # Class heads: RoI box / mask heads and one-stage heads (the RPN
        # scores objectness only).
        heads = [(name, module) for name, module in model.named_modules()
                 if isinstance(module, (BBoxHead, FCNMaskHead, BaseDenseHead))
                 and not isinstance(module, RPNHead)]
        for inner in unwrap_datasets(dataset):
            cat_ids = dataset_category_ids(inner)
            if cat_ids is None:
                continue
            where = f'the {split} dataset {_describe(inner)}'
            self._check_heads(heads, cat_ids, where)
            self._check_metainfo(inner, cat_ids, where)
            self._check_reference(cat_ids, where)
            self._check_freq_files(model, inner, cat_ids, where,
                                   MMLogger.get_current_instance())
            if evaluator is not None:
                self._check_evaluator(evaluator, cat_ids, where)
        self._checked.add(split)

    @staticmethod
    def _check_heads(heads: List[tuple], cat_ids: List[int],
                     where: str) -> None:
        wrong = [
            f'{name} (num_classes={head.num_classes})' for name, head in heads
            if head.num_classes != len(cat_ids)
        ]
        if wrong:
            raise ValueError(
                f'{where} has {len(cat_ids)} categories, but the model '
                f'predicts another number of classes: {", ".join(wrong)}. '
                'Labels would be wrong (label num_classes is the background '
                'of the RoI head). Use an annotation file of the category '
                "set the model was built for, or set the heads' "
                'num_classes to the number of categories of the file.')

    def _check_metainfo(self, dataset: Any, cat_ids: List[int],
                        where: str) -> None:
        classes = dataset.metainfo.get('classes')
        if self.check_metainfo and classes is not None and len(classes) != len(
                cat_ids):
            raise ValueError(
                f'{where} has {len(cat_ids)} categories but its '
                f'metainfo names {len(classes)} classes. For a dataset '
                'other than the one the dataset class describes, set '
                "metainfo=dict(classes=(...)) with one name per category of "
                'the file, in category-id order.')

    def _check_reference(self, cat_ids: List[int], where: str) -> None:
        if self._reference is None:
            self._reference = (cat_ids, where)
            return
        ref_ids, ref_where = self._reference
        if ref_ids != cat_ids:
            raise ValueError(
                f'{where} and {ref_where} list different categories '
                f'({_first_difference(ref_ids, cat_ids)}); labels would not '
                'mean the same class in both.')

    @staticmethod
    def _check_freq_files(model, dataset: Any, cat_ids: List[int], where: str,
                          logger: Any) -> None:
        seen = set()
        for name, module in model.named_modules():
            source = getattr(module, 'source', None)
            if not isinstance(source, str) or source in seen or not hasattr(
                    module, 'class_weight'):
                continue
            seen.add(source)
            meta = load_class_freq_meta(source)
            file_ids = meta.get('category_ids')
            if file_ids is not None and list(file_ids) != cat_ids:
                raise ValueError(
                    f'The class-frequency file {source!r} (used by {name}) '
                    f'was written for another category set than {where}: '
                    f'{_first_difference(file_ids, cat_ids)}. Write it from '
                    'the training annotations of this dataset with '
                    'tools/analysis_tools/lvis_class_freq.py.')
            if file_ids is None:
                check_class_order(
                    meta.get('classes'), dataset.metainfo.get('classes'),
                    f'{source!r} (used by {name})', where, logger)

    @staticmethod
    def _check_evaluator(evaluator: Any, cat_ids: List[int],
                         where: str) -> None:
        for metric in getattr(evaluator, 'metrics', []):
            # LVISMetric keeps its ann_file only as this LVIS API object
            # (mmdet 3.3.0); its public cat_ids is set at the first
            # evaluation, too late for this check.
            api = getattr(metric, '_lvis_api', None)
            if api is None:
                continue
            metric_ids = list(api.get_cat_ids())
            if metric_ids != cat_ids:
                raise ValueError(
                    f'{type(metric).__name__} evaluates against an ann_file '
                    f'whose categories differ from {where} '
                    f'({_first_difference(metric_ids, cat_ids)}); it maps '
                    'label i to its i-th category, so every score would be '
                    'given to another category.')
