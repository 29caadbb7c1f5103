"""Check that datasets, evaluators, frequency files and model agree.

mmdet's LVIS / COCO datasets number the labels by the categories of the
annotation file, whatever the model predicts. An annotation file with more
categories than the box head gives labels ``>= num_classes``: the label
``num_classes`` silently means "background" to the RoI head, larger ones
crash deep inside a loss. A frequency file of another category set gives
GRW weights to the wrong classes. :class:`DisAlignCategoryCheckHook` turns
each of these into an error before the first iteration.
"""
from typing import Any, List, Optional, Sequence

from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdisalign.utils.class_freq import load_class_freq_meta

__all__ = ['DisAlignCategoryCheckHook', 'dataset_category_ids']

_MAX_LISTED = 10


def _unwrap_dataset(dataset: Any) -> List[Any]:
    """The innermost datasets of dataset wrappers (repeat, class-balanced,
    concatenation)."""
    datasets = getattr(dataset, 'datasets', None)
    if isinstance(datasets, (list, tuple)):
        found = []
        for item in datasets:
            found.extend(_unwrap_dataset(item))
        return found
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        return _unwrap_dataset(inner)
    return [dataset]


def dataset_category_ids(dataset: Any) -> Optional[List[int]]:
    """The category ids of an mmdet COCO-style dataset, in label order.

    Args:
        dataset: A (possibly wrapped) dataset.

    Returns:
        list[int] | None: ``dataset.cat_ids`` after full initialisation, or
        None for datasets without category ids.
    """
    if hasattr(
            dataset,
            'full_init') and not getattr(dataset, '_fully_initialized', True):
        dataset.full_init()
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

    Checked once per run, before training (training and validation
    datasets), validation or testing:

    - every RoI head (box and mask heads) predicts exactly as many classes
      as the annotation file has categories;
    - the dataset's ``metainfo['classes']`` names as many classes (set
      ``metainfo=dict(classes=...)`` for a dataset other than LVIS);
    - the training, validation and test files list the same category ids
      in the same order, and so does the ``ann_file`` of an ``LVISMetric``
      (it maps label ``i`` to its ``i``-th category id);
    - a class-frequency file used by a loss (``GRWCrossEntropyLoss``) lists
      the same ``category_ids`` (written by
      ``tools/analysis_tools/lvis_class_freq.py``), or, for files without
      ids, the same class names.

    Args:
        check_metainfo (bool): Require ``metainfo['classes']`` to have one
            name per category of the file. Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_metainfo: bool = True) -> None:
        self.check_metainfo = bool(check_metainfo)
        self._checked = set()
        self._reference: Optional[tuple] = None

    # runner entry points -------------------------------------------------
    def before_train(self, runner) -> None:
        """Check the training and validation data."""
        self._check(runner, 'train', runner.train_dataloader.dataset, None)
        val_loop = runner.val_loop
        if val_loop is not None:
            self._check(runner, 'val', val_loop.dataloader.dataset,
                        val_loop.evaluator)

    def before_val(self, runner) -> None:
        """Check the validation data (once)."""
        loop = runner.val_loop
        self._check(runner, 'val', loop.dataloader.dataset, loop.evaluator)

    def before_test(self, runner) -> None:
        """Check the test data (once)."""
        loop = runner.test_loop
        self._check(runner, 'test', loop.dataloader.dataset, loop.evaluator)

    # checks ----------------------------------------------------------------
    def _check(self, runner, split: str, dataset: Any, evaluator: Any) -> None:
        if split in self._checked:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        heads = self._class_heads(model)
        for inner in _unwrap_dataset(dataset):
            cat_ids = dataset_category_ids(inner)
            if cat_ids is None:
                continue
            where = f'the {split} dataset {_describe(inner)}'
            self._check_heads(heads, cat_ids, where)
            self._check_metainfo(inner, cat_ids, where)
            self._check_reference(split, cat_ids, where)
            self._check_freq_files(model, inner, cat_ids, where)
            if evaluator is not None:
                self._check_evaluator(evaluator, cat_ids, where)
        self._checked.add(split)

    @staticmethod
    def _class_heads(model) -> List[tuple]:
        return [(name, module) for name, module in model.named_modules()
                if isinstance(module, (BBoxHead, FCNMaskHead))]

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
        if not self.check_metainfo:
            return
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        if classes is not None and len(classes) != len(cat_ids):
            raise ValueError(
                f'{where} has {len(cat_ids)} categories but its '
                f'metainfo names {len(classes)} classes. For a dataset '
                'other than the one the dataset class describes, set '
                "metainfo=dict(classes=(...)) with one name per category of "
                'the file, in category-id order.')

    def _check_reference(self, split: str, cat_ids: List[int],
                         where: str) -> None:
        reference = self._reference
        if reference is None:
            self._reference = (list(cat_ids), where)
            return
        ref_ids, ref_where = reference
        if ref_ids != list(cat_ids):
            raise ValueError(
                f'{where} and {ref_where} list different categories '
                f'({_first_difference(ref_ids, cat_ids)}); labels would not '
                'mean the same class in both.')

    @staticmethod
    def _check_freq_files(model, dataset: Any, cat_ids: List[int],
                          where: str) -> None:
        seen = set()
        for name, module in model.named_modules():
            source = getattr(module, 'source', None)
            if not isinstance(source, str) or source in seen or not hasattr(
                    module, 'class_weight'):
                continue
            seen.add(source)
            meta = load_class_freq_meta(source)
            file_ids = meta.get('category_ids')
            if file_ids is not None:
                if list(file_ids) != list(cat_ids):
                    raise ValueError(
                        f'The class-frequency file {source!r} (used by '
                        f'{name}) was written for another category set than '
                        f'{where}: {_first_difference(file_ids, cat_ids)}. '
                        'Write it from the training annotations of this '
                        'dataset with tools/analysis_tools/lvis_class_freq.py.'
                    )
                continue
            classes = meta.get('classes')
            names = (getattr(dataset, 'metainfo', None) or {}).get('classes')
            if classes is not None and names is not None and list(
                    classes) != list(names):
                diff = [
                    f'{i}: {a!r} vs {b!r}'
                    for i, (a, b) in enumerate(zip(classes, names)) if a != b
                ][:_MAX_LISTED]
                raise ValueError(
                    f'The class-frequency file {source!r} (used by {name}) '
                    f'names other classes than {where}: {"; ".join(diff)}.')

    @staticmethod
    def _check_evaluator(evaluator: Any, cat_ids: List[int],
                         where: str) -> None:
        for metric in getattr(evaluator, 'metrics', []):
            api = getattr(metric, '_lvis_api', None)
            if api is None:
                continue
            metric_ids = list(api.get_cat_ids())
            if metric_ids != list(cat_ids):
                raise ValueError(
                    f'{type(metric).__name__} evaluates against an ann_file '
                    f'whose categories differ from {where} '
                    f'({_first_difference(metric_ids, cat_ids)}); it maps '
                    'label i to its i-th category, so every score would be '
                    'given to another category.')
