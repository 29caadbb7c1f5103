"""Every shipped segmentation config builds, fits its stage-1 model and
trains one iteration on fake data."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmdisalign.seg  # noqa: F401
from mmdisalign.engine.hooks.freeze_hook import plan_freeze
from mmdisalign.utils.class_freq import save_class_freq

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'seg')
CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
TOY_STAGE1 = 'fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64.py'

# Stage-2 config -> the stage-1 config whose checkpoint it loads.
STAGE1 = {
    'fcn_r50-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'mmseg::fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py',
    'fcn_r101-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'mmseg::fcn/fcn_r101-d8_4xb4-160k_ade20k-512x512.py',
    'deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py',
    'deeplabv3plus_r101-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512.py',
    'deeplabv3plus_r101_ade20k_disalign.py':
    'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-160k_ade20k-512x512.py',
    'deeplabv3plus_s101-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'mmseg::resnest/resnest_s101-d8_deeplabv3plus_4xb4-160k_ade20k-512x512.py',
    'fcn_r18-w16-d8_1xb4-400_fmnist-scenes-64x64_disalign.py':
    osp.join(CONFIG_DIR, TOY_STAGE1),
    # LWS: the DisAlign stage 2 with the LWS calibration
    'fcn_r50-d8_8xb4-4k_ade20k-512x512_lws.py':
    'mmseg::fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py',
    'deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_lws.py':
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py',
    'fcn_r18-w16-d8_1xb4-400_fmnist-scenes-64x64_lws.py':
    osp.join(CONFIG_DIR, TOY_STAGE1),
}
ADE = [name for name in STAGE1 if 'ade20k' in name]
# Post-hoc baselines: the stage-1 model tested with a calibration.
POSTHOC = {
    f'{model}_{dataset}_{method}.py': stage1
    for model, dataset, stage1 in (
        ('fcn_r50-d8_4xb4', 'ade20k-512x512',
         'mmseg::fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py'),
        ('deeplabv3plus_r50-d8_4xb4', 'ade20k-512x512',
         'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-'
         '512x512.py'),
        ('fcn_r18-w16-d8_1xb4', 'fmnist-scenes-64x64',
         osp.join(CONFIG_DIR, TOY_STAGE1)),
    )
    for method in ('tau-norm', 'logit-adjust')
}
# Checkpoint files of the mmseg model zoo (stage 1 of the ADE20K configs).
_DLV3P_R101 = 'deeplabv3plus_r101-d8_512x512_160k_ade20k_20200615_123232'
ZOO = {
    'fcn_r50-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'fcn_r50-d8_512x512_160k_ade20k_20200615_100713-4edbc3b4.pth',
    'fcn_r101-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'fcn_r101-d8_512x512_160k_ade20k_20200615_105816-fd192bd5.pth',
    'deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'deeplabv3plus_r50-d8_512x512_160k_ade20k_20200615_124504-6135c7e0.pth',
    'deeplabv3plus_r101-d8_8xb4-4k_ade20k-512x512_disalign.py':
    _DLV3P_R101 + '-38ed86bb.pth',
    'deeplabv3plus_r101_ade20k_disalign.py':
    _DLV3P_R101 + '-38ed86bb.pth',
    'deeplabv3plus_s101-d8_8xb4-4k_ade20k-512x512_disalign.py':
    'deeplabv3plus_s101-d8_512x512_160k_ade20k_20200807_144503-27b26226.pth',
}
ZOO.update({
    name.replace('_disalign.py', '_lws.py'): ZOO[name]
    for name in ('fcn_r50-d8_8xb4-4k_ade20k-512x512_disalign.py',
                 'deeplabv3plus_r50-d8_8xb4-4k_ade20k-512x512_disalign.py')
})


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One intra-op thread: faster for these tiny models on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sync_bn_to_bn(cfg):
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for value in cfg.values():
            _sync_bn_to_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _sync_bn_to_bn(value)


def _model_cfg(cfg, freq_file=None):
    """The model config for the CPU: BN for SyncBN, a 32x32 crop and a
    local frequency file; everything else as shipped."""
    model = copy.deepcopy(cfg.model)
    _sync_bn_to_bn(model)
    model.data_preprocessor.size = (32, 32)
    if freq_file is not None:
        model.decode_head.loss_decode.class_freq = freq_file
    return model


def _freq_file(tmp_path, num_classes):
    path = tmp_path / 'freq.json'
    save_class_freq(
        path, [1000 - 5 * i for i in range(num_classes)], count_type='pixels')
    return str(path)


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_config_names_are_unique_under_configs():
    names = [
        osp.basename(p) for p in glob.glob(
            osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    ]
    assert len(names) == len(set(names))
    assert 'deeplabv3plus_r101_ade20k_disalign.py' in CONFIGS
    assert set(STAGE1) | set(POSTHOC) | {TOY_STAGE1} == set(CONFIGS)


@pytest.mark.parametrize('name', ADE)
def test_reference_stage2_schedule(name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    assert cfg.custom_imports['imports'] == ['mmdisalign.seg']
    assert [h['type'] for h in cfg.custom_hooks
            ] == ['DisAlignFreezeHook', 'DisAlignStage2FastPathHook']
    assert cfg.train_cfg.max_iters == 4000
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
    [poly] = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end,
            poly.by_epoch) == ('PolyLR', 0.9, 1e-4, 0, 4000, False)
    assert cfg.train_dataloader.batch_size == 4  # x 8 GPUs
    head = cfg.model.decode_head
    assert head.type.startswith('DisAlign') and head.confidence == 'reference'
    assert head.num_classes == 150
    assert dict(head.loss_decode) == dict(
        type='GRWCrossEntropyLoss',
        class_freq='data/ade/ADEChallengeData2016/'
        'ade20k_train_pixel_freq.json',
        num_classes=150,
        rho=0.2,
        avg_mode='pixel',
        loss_weight=1.0)
    assert cfg.model.auxiliary_head.loss_decode.loss_weight == 0.0
    assert cfg.model.pretrained is None  # nothing downloaded at run time
    assert cfg.load_from == f'checkpoints/{ZOO[name]}'
    assert cfg.val_evaluator.type == 'HeadBodyTailIoUMetric'
    assert cfg.val_evaluator.class_freq == head.loss_decode.class_freq
    assert cfg.test_evaluator == cfg.val_evaluator
    # the data pipeline is mmseg's ADE20K one, untouched
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.crop_size == (512, 512)


def _load(path):
    return get_config(path) if path.startswith('mmseg::') else \
        Config.fromfile(path)


def _shrink(model):
    """Few channels for the CPU iteration (the shipped sizes are built on
    the meta device): same backbone type and depth, same heads."""
    if model.backbone.get('depth', 50) < 50:
        return model  # the toy model is tiny already
    # bottleneck stages output 4 * 8 * (1, 2, 4, 8) = 32 .. 256 channels
    model.backbone.update(base_channels=8, stem_channels=16)
    model.decode_head.update(in_channels=256, channels=16)
    if 'c1_in_channels' in model.decode_head:
        model.decode_head.update(c1_in_channels=32, c1_channels=8)
    model.auxiliary_head.update(in_channels=128, channels=16)
    return model


@pytest.mark.parametrize('name', sorted(STAGE1))
def test_build_and_fit_the_stage1_model(name, tmp_path):
    """The shipped config builds as is; its model has the stage-1 model's
    keys and shapes plus the calibration only (so the upstream checkpoint
    loads without renaming). Built on the meta device: no memory, fast."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    init_default_scope(cfg.default_scope)
    num_classes = cfg.model.decode_head.num_classes
    freq = _freq_file(tmp_path, num_classes)
    with torch.device('meta'):
        model = MODELS.build(_model_cfg(cfg, freq))
        stage1 = MODELS.build(_model_cfg(_load(STAGE1[name])))
    assert type(model.decode_head).__name__ == cfg.model.decode_head.type
    assert type(model.decode_head).__mro__[2] is type(stage1.decode_head)
    ours, theirs = _shapes(model), _shapes(stage1)
    extra = sorted(set(ours) - set(theirs))
    assert set(theirs) <= set(ours)
    assert all(k.startswith('decode_head.calibration.') for k in extra)
    assert all(ours[k] == theirs[k] for k in theirs)
    assert ours['decode_head.calibration.alpha'] == (num_classes, )
    if name.endswith('_lws.py'):
        # LWS: a scale per class, nothing else
        assert extra == ['decode_head.calibration.alpha']
    else:
        assert 'decode_head.calibration.beta' in extra
        # the reference confidence: 1x1 conv without bias, BN, ReLU
        assert ours['decode_head.calibration.confidence.conv.weight'] == (
            1, cfg.model.decode_head.channels, 1, 1)
        assert 'decode_head.calibration.confidence.bn.running_mean' in ours
    # DisAlignFreezeHook trains exactly the calibration
    plan = plan_freeze(model)
    assert plan.calibrations == ['decode_head.calibration']
    assert set(plan.trainable) == {
        n
        for n, _ in model.named_parameters()
        if n.startswith('decode_head.calibration.')
    }
    assert 'decode_head.conv_seg.weight' in plan.frozen


@pytest.mark.parametrize('name', sorted(STAGE1))
def test_train_one_iteration(name, tmp_path):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    init_default_scope(cfg.default_scope)
    num_classes = cfg.model.decode_head.num_classes
    model = MODELS.build(
        _shrink(_model_cfg(cfg, _freq_file(tmp_path, num_classes))))
    # Freeze as DisAlignFreezeHook does: only the calibration trains.
    plan = plan_freeze(model)
    params = dict(model.named_parameters())
    for frozen in plan.frozen:
        params[frozen].requires_grad_(False)
    model.train()
    for module in plan.frozen_norms.values():
        module.eval()

    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim_wrapper = build_optim_wrapper(model,
                                        copy.deepcopy(cfg.optim_wrapper))
    torch.manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        label = torch.randint(0, num_classes, (1, 32, 32))
        label[:, :8] = 255
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(dict(img_shape=(32, 32), ori_shape=(32, 32)))
        samples.append(sample)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)] * 2,
        data_samples=samples)
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['decode.loss_grw'])
    assert log_vars['aux.loss_ce'].item() == 0.0  # auxiliary weight 0
    after = model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    # every frozen tensor (BN statistics included) is unchanged
    assert changed and all(
        k.startswith('decode_head.calibration.') for k in changed)
    assert ('decode_head.calibration.alpha' if name.endswith('_lws.py') else
            'decode_head.calibration.beta') in changed


def test_toy_stage1_builds_and_trains_one_iteration():
    cfg = Config.fromfile(osp.join(CONFIG_DIR, TOY_STAGE1))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(_model_cfg(cfg))
    optim_wrapper = build_optim_wrapper(model,
                                        copy.deepcopy(cfg.optim_wrapper))
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 32, 32).long())
    sample.set_metainfo(dict(img_shape=(32, 32), ori_shape=(32, 32)))
    data = dict(
        inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)] * 2,
        data_samples=[sample, copy.deepcopy(sample)])
    weight = model.decode_head.conv_seg.weight.clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(weight, model.decode_head.conv_seg.weight)


@pytest.mark.parametrize('name', sorted(POSTHOC))
def test_posthoc_on_the_stage1_model(name, tmp_path):
    """A post-hoc config is its stage-1 model tested with a calibration:
    the stage-1 weights load into it with nothing missing or unexpected,
    and one test step gives the stage-1 scores, per pixel and class,
    divided by ||w_j|| (tau-norm) or minus log(n_j / n) (logit
    adjustment, tau 1)."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    init_default_scope(cfg.default_scope)
    num_classes = cfg.model.decode_head.num_classes
    freq = _freq_file(tmp_path, num_classes)
    assert 'DisAlignFreezeHook' not in str(cfg.get('custom_hooks'))
    assert cfg.test_evaluator.type == 'HeadBodyTailIoUMetric'
    calib = cfg.model.decode_head.calibration
    assert calib.tau == 1.0
    model_cfg = _shrink(_model_cfg(cfg))
    if 'class_freq' in calib:
        assert calib.class_freq == cfg.test_evaluator.class_freq
        model_cfg.decode_head.calibration.class_freq = freq
    torch.manual_seed(0)
    stage1 = MODELS.build(_shrink(_model_cfg(_load(POSTHOC[name])))).eval()
    model = MODELS.build(model_cfg).eval()
    result = model.load_state_dict(stage1.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    inputs = torch.rand(2, 3, 32, 32)
    metas = [dict(img_shape=(32, 32), ori_shape=(32, 32))] * 2
    with torch.no_grad():
        ours = model.encode_decode(inputs, metas)
        theirs = stage1.encode_decode(inputs, metas)
    weight = stage1.decode_head.conv_seg.weight.flatten(1)
    if name.endswith('_tau-norm.py'):
        expected = theirs / weight.norm(dim=1).view(1, -1, 1, 1)
    else:
        counts = torch.tensor([1000. - 5 * i for i in range(num_classes)])
        expected = theirs - (counts / counts.sum()).log().view(1, -1, 1, 1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
