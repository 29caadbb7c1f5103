"""No host-device synchronisation from mmdisalign code in a stage-2 step.

``Tensor.item``, ``.cpu()``, ``.tolist()``, ``.numpy()``, ``bool(tensor)``,
``float(tensor)`` and ``int(tensor)`` wait for the device. A counter
patches them and attributes each call to the first caller outside torch;
a real stage-2 ``train_step`` of each task (frozen by DisAlignFreezeHook,
GRW loss, SGD optim wrapper) must have none from a file under
mmdisalign/. Upstream code may synchronise; ours must not.
"""
import copy
import importlib.util
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

import mmdisalign
from mmdisalign.engine.hooks import (DisAlignFreezeHook,
                                     DisAlignStage2FastPathHook)

MMDISALIGN_DIR = osp.dirname(osp.abspath(mmdisalign.__file__)) + osp.sep
TORCH_DIR = osp.dirname(osp.abspath(torch.__file__)) + osp.sep
HERE = osp.dirname(osp.abspath(__file__))


class HostSyncCounter:
    """Count the synchronising Tensor methods while active.

    Each call is recorded as ``(method, file, line, stack)``, ``file`` and
    ``line`` of the first frame outside torch (torch's own Python code,
    e.g. ``Tensor.__format__`` calling ``item``, is attributed to its
    caller).
    """

    METHODS = ('item', 'cpu', 'tolist', 'numpy', '__bool__', '__float__',
               '__int__')

    def __init__(self, root: str = MMDISALIGN_DIR) -> None:
        self.root = root
        self.calls = []

    def _wrap(self, name, original):
        calls = self.calls

        def counted(tensor, *args, **kwargs):
            frame = sys._getframe(1)
            stack = []
            while frame is not None:
                stack.append((frame.f_code.co_filename, frame.f_lineno))
                frame = frame.f_back
            origin = next((f for f in stack
                           if not osp.abspath(f[0]).startswith(TORCH_DIR)),
                          stack[0])
            calls.append((name, osp.abspath(origin[0]), origin[1], stack))
            return original(tensor, *args, **kwargs)

        return counted

    def __enter__(self):
        self._saved = {}
        for name in self.METHODS:
            self._saved[name] = vars(torch.Tensor).get(name)
            setattr(torch.Tensor, name,
                    self._wrap(name, getattr(torch.Tensor, name)))
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            if original is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, original)

    def ours(self):
        """The calls that originate from a file under ``root``."""
        return [c[:3] for c in self.calls if c[1].startswith(self.root)]


def test_counter_counts_calls_from_mmdisalign_files_only():
    # A tiny function whose code object lives in a file under mmdisalign/.
    source = ('def sync(x):\n'
              '    a = x.sum().item()\n'
              '    b = x.cpu()\n'
              '    c = x.tolist()\n'
              '    d = bool(x.any())\n'
              '    e = float(x.sum())\n'
              "    f = f'{x.sum():.1f}'\n"
              '    return a, b, c, d, e, f\n')
    fake = osp.join(MMDISALIGN_DIR, 'fake_module.py')
    namespace = {}
    exec(compile(source, fake, 'exec'), namespace)
    x = torch.ones(3)
    with HostSyncCounter() as counter:
        namespace['sync'](x)
        x.sum().item()  # from this test file: not ours
    assert sorted(m for m, *_ in counter.ours()) == sorted(
        ['item', 'cpu', 'tolist', '__bool__', '__float__', 'item'])
    # the last `item` comes from Tensor.__format__, attributed to line 7
    assert [(f, line) for _, f, line in counter.ours()
            ] == [(fake, n) for n in (2, 3, 4, 5, 6, 7)]
    assert [c[1] for c in counter.calls
            if c[1] == osp.abspath(__file__)] == [osp.abspath(__file__)]
    # restored afterwards
    assert 'item' not in vars(torch.Tensor)
    assert torch.Tensor.__bool__ is torch._C.TensorBase.__bool__


def _load_fastpath_builders():
    """The tiny mmseg / mmdet models of tests/test_perf."""
    path = osp.join(osp.dirname(HERE), 'test_perf', 'test_stage2_fastpath.py')
    spec = importlib.util.spec_from_file_location('_fastpath_builders', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cls_model_and_batch():
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    import mmdisalign.cls  # noqa: F401
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[120.] * 3,
                std=[50.] * 3,
                to_rgb=False),
            backbone=dict(
                type='ResNet',
                depth=18,
                num_stages=1,
                out_indices=(0, ),
                strides=(1, ),
                dilations=(1, ),
                stem_channels=8,
                base_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='DisAlignLinearClsHead',
                num_classes=3,
                in_channels=8,
                calibration=dict(
                    type='DisAlignCalibration', init_mode='reference_cls'),
                loss=dict(
                    type='GRWCrossEntropyLoss',
                    class_freq=[50, 10, 2],
                    rho=1.2))))
    model.init_weights()
    g = torch.Generator().manual_seed(3)
    batch = dict(
        inputs=list(
            torch.randint(
                0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)),
        data_samples=[DataSample().set_gt_label(i % 3) for i in range(4)])
    return model, batch


def retinanet_model():
    """A tiny RetinaNet with the DisAlign dense head and the GRW focal
    loss (one-stage detection)."""
    import mmdet
    from mmdet.registry import MODELS
    from mmengine.config import Config

    import mmdisalign.det  # noqa: F401
    init_default_scope('mmdet')
    base = osp.join(
        osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_', 'models',
        'retinanet_r50_fpn.py')
    cfg = Config.fromfile(base).model
    cfg.backbone.update(depth=18, base_channels=4, init_cfg=None)
    cfg.neck.update(in_channels=[4, 8, 16, 32], out_channels=8)
    cfg.bbox_head.update(
        type='DisAlignRetinaHead',
        in_channels=8,
        feat_channels=8,
        stacked_convs=1,
        num_classes=3,
        loss_cls=dict(
            type='GRWFocalLoss',
            use_sigmoid=True,
            class_freq=[50, 10, 2],
            rho=0.8,
            num_classes=3))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def build(task):
    if task == 'cls':
        return cls_model_and_batch()
    builders = _load_fastpath_builders()
    if task == 'seg':
        return builders.seg_model(), builders.seg_batch()
    if task == 'det-one-stage':
        return retinanet_model(), builders.det_batch()
    return builders.det_model(), builders.det_batch()


@pytest.mark.parametrize('fast_path', [False, True])
@pytest.mark.parametrize('task', ['cls', 'seg', 'det', 'det-one-stage'])
def test_stage2_train_step_has_no_host_sync(task, fast_path):
    model, batch = build(task)
    runner = SimpleNamespace(
        model=model,
        logger=MMLogger.get_instance('test_no_host_sync'),
        distributed=False,
        optim_wrapper=None)
    freeze = DisAlignFreezeHook(check_stage1=False)
    model.train()
    freeze.before_train(runner)
    # Stage 2 trains the calibration only.
    assert {n
            for n, p in model.named_parameters() if p.requires_grad} == {
                n
                for n, _ in model.named_parameters() if '.calibration.' in n
            }
    if fast_path:
        DisAlignStage2FastPathHook().before_train(runner)
    optim_wrapper = OptimWrapper(
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                        lr=0.1))
    calibration = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }
    for step in range(2):
        with HostSyncCounter() as counter:
            freeze.before_train_iter(runner, step)
            log_vars = model.train_step(copy.deepcopy(batch), optim_wrapper)
        assert counter.ours() == [], counter.ours()
    # a real step: a finite loss, and the calibration moved
    assert torch.isfinite(log_vars['loss'])
    assert calibration and all(
        not torch.equal(p.detach(), calibration[n])
        for n, p in model.named_parameters()
        if n in calibration and n.endswith(('alpha', 'beta')))
