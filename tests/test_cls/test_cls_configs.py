"""The main job's configs build and train one iteration as plain models.

Every shipped classification config (baselines and the ImageNet-LT /
iNaturalist / Places-LT ones included) is built and trained one iteration
through the Runner in test_lt_configs.py; this file checks the two
configs of the main job without the Runner.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmdisalign.cls  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASELINES = ('_crt', '_lws', '_tau-norm', '_logit-adjust')
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', 'cls', 'fashion_mnist_lt', '*.py'))
    if not any(b in osp.basename(p) for b in BASELINES))


def _fake_batch(cfg, n=4):
    """Inputs of the shape the config's data pipeline produces (cached
    neck features for a cached-feature config)."""
    g = torch.Generator().manual_seed(0)
    if cfg.model.type == 'CachedFeatureClassifier':
        inputs = torch.rand(n, cfg.model.head.in_channels, generator=g)
    else:
        channels = len(cfg.data_preprocessor.mean)
        size = 28
        for t in cfg.train_dataloader.dataset.pipeline:
            crop = t.get('crop_size', t.get('scale'))
            if t['type'] in ('RandomCrop', 'RandomResizedCrop') and crop:
                size = crop if isinstance(crop, int) else crop[0]
        inputs = (torch.rand(n, channels, size, size, generator=g) * 255).to(
            torch.uint8)
    num_classes = cfg.model.head.num_classes
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(n)]
    return dict(inputs=list(inputs), data_samples=samples)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_and_trains_one_iteration(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    loss = cfg.model.head.get('loss', {})
    if 'class_freq' in loss:
        # The data set may not be built here: same number of classes.
        loss['class_freq'] = list(range(cfg.model.head.num_classes, 0, -1))
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.init_weights()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01)
    from mmengine.optim import OptimWrapper
    wrapper = OptimWrapper(optimizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log_vars = model.train_step(_fake_batch(cfg), wrapper)
    assert torch.isfinite(log_vars['loss'])
    changed = [
        k for k, v in model.state_dict().items()
        if v.dtype.is_floating_point and not torch.equal(v, before[k])
    ]
    assert changed, 'one SGD step changed nothing'
    if 'DisAlign' in cfg.model.head.type:
        assert any(k.startswith('head.calibration.') for k in changed)
        assert cfg.load_from and cfg.custom_hooks[0].type == (
            'DisAlignFreezeHook')
