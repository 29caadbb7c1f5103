"""The command line of tools/train.py and tools/test.py: --launcher,
--local-rank, and how the options change the config."""
import os

import pytest
import torch
from mmengine.config import Config


@pytest.fixture
def clean_env(monkeypatch):
    """No LOCAL_RANK in os.environ; the whole environment is restored
    afterwards (the tools export LOCAL_RANK themselves)."""
    saved = dict(os.environ)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    yield monkeypatch
    os.environ.clear()
    os.environ.update(saved)


def test_local_rank_arguments(h, clean_env):
    train = h.load_tool('train')
    args = train.parse_args(['cfg.py', '--local-rank', '3'])
    assert args.local_rank == 3 and os.environ['LOCAL_RANK'] == '3'
    clean_env.delenv('LOCAL_RANK')
    args = train.parse_args(
        ['cfg.py', '--local_rank=2', '--launcher', 'pytorch'])
    assert (args.local_rank, args.launcher) == (2, 'pytorch')
    assert os.environ['LOCAL_RANK'] == '2'
    # torchrun's LOCAL_RANK wins over the (default) argument
    clean_env.setenv('LOCAL_RANK', '5')
    test = h.load_tool('test')
    args = test.parse_args(['cfg.py', 'ckpt.pth', '--local-rank', '0'])
    assert os.environ['LOCAL_RANK'] == '5'
    assert h.load_tool('test').parse_args(['c.py', 'k.pth']).launcher == 'none'


def test_train_merge_args(h, tmp_path):
    train = h.load_tool('train')
    cfg = Config(
        dict(
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            load_from='stage1.pth',
            train_dataloader=dict(batch_size=2, pin_memory=True),
            val_dataloader=dict(batch_size=2),
            val_cfg=dict(),
            val_evaluator=dict(type='Accuracy')))
    args = train.parse_args([
        'configs/x/my_config.py', '--no-validate', '--no-pin-memory',
        '--no-persistent-workers', '--cfg-options', 'train_cfg.max_epochs=3'
    ])
    out = train.merge_args(cfg, args)
    assert out.work_dir == os.path.join('./work_dirs', 'my_config')
    assert out.val_dataloader is None and out.val_cfg is None
    assert out.train_dataloader.pin_memory is False
    assert out.train_dataloader.persistent_workers is False
    assert out.train_cfg.max_epochs == 3
    assert out.get('resume', False) is False and out.load_from == 'stage1.pth'

    # --resume without a checkpoint in the work dir: start from load_from
    work = tmp_path / 'w'
    work.mkdir()
    cfg = Config(dict(load_from='stage1.pth'))
    args = train.parse_args(['x.py', '--work-dir', str(work), '--resume'])
    out = train.merge_args(cfg, args)
    assert (out.resume, out.load_from) == (False, 'stage1.pth')
    # ... with one: mmengine's auto-resume (load_from None)
    (work / 'epoch_1.pth').write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    out = train.merge_args(Config(dict(load_from='stage1.pth')), args)
    assert (out.resume, out.load_from) == (True, None)
    args = train.parse_args(['x.py', '--resume', 'other.pth'])
    out = train.merge_args(Config(dict(load_from='stage1.pth')), args)
    assert (out.resume, out.load_from) == (True, 'other.pth')

    args = train.parse_args(['x.py', '--auto-scale-lr'])
    with pytest.raises(ValueError, match='base_batch_size'):
        train.merge_args(Config(dict()), args)
    out = train.merge_args(
        Config(dict(auto_scale_lr=dict(base_batch_size=64))), args)
    assert out.auto_scale_lr.enable is True

    args = train.parse_args(['x.py', '--amp'])
    out = train.merge_args(Config(dict(optim_wrapper=dict())), args)
    assert out.optim_wrapper == dict(
        type='AmpOptimWrapper', loss_scale='dynamic')
    if not torch.cuda.is_available():
        # mmengine stops --amp on a CPU when the Runner builds the wrapper.
        from mmengine.optim import build_optim_wrapper
        with pytest.raises(
                AssertionError, match='only available training '
                'on gpu'):
            build_optim_wrapper(
                torch.nn.Linear(1, 1),
                dict(
                    type='AmpOptimWrapper', optimizer=dict(type='SGD',
                                                           lr=0.1)))
    with pytest.raises(ValueError, match='the config uses .*MyWrapper'):
        train.merge_args(
            Config(dict(optim_wrapper=dict(type='MyWrapper'))), args)


def test_test_merge_args(h):
    test = h.load_tool('test')
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            default_hooks=dict(visualization=dict(type='VisualizationHook')),
            test_evaluator=dict(type='Accuracy')))
    args = test.parse_args(
        ['x.py', 'k.pth', '--show-dir', 'vis', '--interval', '3'])
    out = test.merge_args(cfg, args)
    assert out.load_from == 'k.pth' and out.resume is False
    assert out.default_hooks.visualization == dict(
        type='VisualizationHook',
        enable=True,
        show=False,
        wait_time=2,
        interval=3,
        out_dir='vis')
    with pytest.raises(ValueError, match='--out must be a .pkl file'):
        test.merge_args(cfg, test.parse_args(['x.py', 'k', '--out', 'p.txt']))
    with pytest.raises(ValueError, match='--tta needs tta_model'):
        test.merge_args(cfg, test.parse_args(['x.py', 'k', '--tta']))

    seg = Config(
        dict(
            default_scope='mmseg',
            default_hooks=dict(
                visualization=dict(type='SegVisualizationHook')),
            visualizer=dict(type='SegLocalVisualizer'),
            test_evaluator=dict(type='IoUMetric')))
    out = test.merge_args(
        seg, test.parse_args(['x.py', 'k', '--out', 'maps', '--show-dir',
                              'v']))
    assert out.test_evaluator == dict(
        type='IoUMetric', output_dir='maps', keep_results=True)
    assert out.visualizer.save_dir == 'v'
    assert out.default_hooks.visualization.draw is True

    det = Config(
        dict(
            default_scope='mmdet',
            default_hooks=dict(
                visualization=dict(type='DetVisualizationHook'))))
    out = test.merge_args(det,
                          test.parse_args(['x.py', 'k', '--show-dir', 'v']))
    assert out.default_hooks.visualization == dict(
        type='DetVisualizationHook', draw=True, test_out_dir='v')
    with pytest.raises(ValueError, match='need a visualization hook'):
        test.merge_args(
            Config(dict(default_scope='mmdet', default_hooks=dict())),
            test.parse_args(['x.py', 'k', '--show']))
