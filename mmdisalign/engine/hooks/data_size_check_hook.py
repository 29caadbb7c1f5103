"""Stop a run whose data set cannot give every process a sample."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

__all__ = ['DataSizeCheckHook']


@HOOKS.register_module()
class DataSizeCheckHook(Hook):
    """Raise if a data set is empty or smaller than the number of processes.

    mmengine's ``DefaultSampler`` pads every process's share with repeated
    samples, so a smaller data set would silently train (or evaluate) on
    copies. Runs on every rank before training, validation and testing;
    ``tools/train.py`` and ``tools/test.py`` register it.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        self._check(runner.train_dataloader, 'train_dataloader', runner)
        if runner.val_loop is not None:  # built by Runner.train()
            self._check(runner.val_dataloader, 'val_dataloader', runner)

    def before_val(self, runner) -> None:
        self._check(runner.val_dataloader, 'val_dataloader', runner)

    def before_test(self, runner) -> None:
        self._check(runner.test_dataloader, 'test_dataloader', runner)

    @staticmethod
    def _check(dataloader, name: str, runner) -> None:
        """Raise if ``dataloader.dataset`` is too small for the run."""
        dataset = getattr(dataloader, 'dataset', None)
        if not hasattr(dataset, '__len__'):  # e.g. an iterable data set
            return
        num_samples = len(dataset)
        if num_samples == 0:
            raise ValueError(f'{name}.dataset is empty: check its data_root, '
                             'ann_file and filters.')
        if num_samples < runner.world_size:
            raise ValueError(
                f'{name}.dataset has {num_samples} sample(s) but the run has '
                f'{runner.world_size} processes: each process needs at least '
                'one sample (the sampler would fill the others with copies). '
                f'Use at most {num_samples} processes or a larger data set.')
