"""tools/tune_calibration.py on a tiny Fashion-MNIST-LT with a val split.

One stage 1 (the shipped config, 2 epochs on 40..4 images per class) per
module; the tuning runs on its cached features. Every sweep's choice is
checked against the metrics the tool wrote (results.json) and the table it
printed; the snippets load with mmengine's Config.
"""
import json
import os
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

EPOCHS = 10
DATA = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'
pytestmark = pytest.mark.skipif(
    not osp.isfile(DATA), reason='dataset-fashion-mnist')


@pytest.fixture(scope='module')
def tool():
    import importlib.util
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'mmdisalign_tools_tune_calibration',
        osp.join(repo, 'tools', 'tune_calibration.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """The tiny data set (with a val list), a stage-1 checkpoint and the
    DisAlign stage-2 config pointed at them."""
    from disalign_demo import experiments as exp
    from disalign_demo.fashion_mnist_lt import build_fashion_mnist_lt
    root = tmp_path_factory.mktemp('tune')
    data = str(root / 'data')
    meta = build_fashion_mnist_lt(
        data,
        ratio=10,
        seed=0,
        max_per_class=40,
        val_per_class=6,
        test_per_class=10)
    cwd = os.getcwd()
    try:
        cfg = exp.stage_config(exp.STAGE1_CONFIG, data, str(root / 's1'), 0,
                               True)
        # 10 epochs: a stage 1 good enough for the sweeps to differ
        cfg.train_cfg.max_epochs = EPOCHS
        cfg.param_scheduler[0].update(end=EPOCHS, T_max=EPOCHS)
        cfg.default_hooks.checkpoint.interval = EPOCHS
        _, ckpt, _ = exp.run_stage('stage 1', cfg, 'test')
        stage2 = exp.stage_config(
            osp.join(exp.CONFIG_DIR,
                     'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py'),
            data,
            str(root / 's2'),
            0,
            True,
            load_from=ckpt)
        baselines = {
            m:
            exp.stage_config(
                osp.join(exp.CONFIG_DIR,
                         f'resnet18-s3w16_1xb128-10e_fashion-mnist-lt_{m}.py'),
                data,
                str(root / m),
                0,
                True,
                load_from=ckpt)
            for m in ('crt', 'lws')
        }
    finally:
        os.chdir(cwd)
        MMLogger._instance_dict.clear()
    return dict(
        root=root,
        data=data,
        checkpoint=ckpt,
        cfg=stage2,
        baselines=baselines,
        num_train=sum(meta['train_counts']))


def _tune(tool, setup, work, sweeps, **kwargs):
    try:
        return tool.tune(setup['cfg'].copy(), setup['checkpoint'], str(work),
                         sweeps, **kwargs)
    finally:
        MMLogger._instance_dict.clear()


def _printed_rows(text, sweep):
    """``{value: overall}`` of one printed table."""
    block = text.split(f'| {sweep}: ')[1].split('\n\n')[0]
    rows = {}
    for line in block.splitlines()[2:]:
        m = re.match(r'\| ([-\d.e]+)( \(chosen\))? \| ([\d.]+) \|', line)
        if m:
            rows[float(m.group(1))] = (float(m.group(3)), bool(m.group(2)))
    return rows


def test_tune_all_sweeps(tool, setup, tmp_path, capsys):
    work = tmp_path / 'tune'
    sweeps = {
        'rho': [0, 1.2, 2],
        'lr': [0.01, 0.1, 0.3],
        'tau-norm': [0, 0.5, 1, 2],
        'logit-adjust': [0, 1, 2]
    }
    out = _tune(tool, setup, work, sweeps)
    printed = capsys.readouterr().out
    saved = json.loads((work / 'results.json').read_text())
    assert saved['chosen'] == out['chosen']
    assert saved['train_samples'] == setup['num_train']
    assert saved['val_samples'] == 60  # 6 per class, not the test list
    assert saved['validation'].endswith('fashion_mnist_lt_val.txt')
    for sweep, values in sweeps.items():
        result = saved['sweeps'][sweep]
        rows = result['rows']
        assert [r['value'] for r in rows] == [float(v) for v in values]
        overall = [r['metrics']['top1'] for r in rows]
        best = max(overall)
        # the best overall top-1; ties: the first
        assert result['chosen'] == rows[overall.index(best)]['value']
        assert result['edge'] == tool.at_edge(values, result['chosen'])
        if result['edge']:
            assert (f'the chosen {result["parameter"]} {result["chosen"]:g} '
                    f'is the {result["edge"]} value of the {sweep} sweep'
                    in printed)
        table = _printed_rows(printed, sweep)
        assert {
            v: o
            for v, (o, _) in table.items()
        } == pytest.approx({r['value']: r['metrics']['top1']
                            for r in rows},
                           abs=0.005)
        assert [v for v, (_, c) in table.items() if c] == [result['chosen']]
        for r in rows:
            for key in ('top1', 'many', 'medium', 'few'):
                assert 0 <= r['metrics'][key] <= 100
    # the lr sweep runs at the chosen rho: lr 0.1 (the config's) repeats
    # the chosen rho's run
    assert setup['cfg'].optim_wrapper.optimizer.lr == 0.1
    rho_rows = {
        r['value']: r['metrics']
        for r in saved['sweeps']['rho']['rows']
    }
    lr_rows = {r['value']: r['metrics'] for r in saved['sweeps']['lr']['rows']}
    assert lr_rows[0.1] == rho_rows[out['chosen']['rho']]
    # tau 0 of both post-hoc methods is the stage-1 model itself
    t0 = saved['sweeps']['tau-norm']['rows'][0]['metrics']
    assert saved['sweeps']['logit-adjust']['rows'][0]['metrics'] == t0
    # the settings differ: no sweep is flat
    for sweep in sweeps:
        assert len(
            {r['metrics']['top1']
             for r in saved['sweeps'][sweep]['rows']}) > 1, sweep
    # the snippets load and hold the chosen values
    chosen = out['chosen']
    dis = Config.fromfile(out['snippets']['disalign'])
    assert dis.model.head.loss.rho == chosen['rho']
    assert dis.optim_wrapper.optimizer.lr == chosen['lr']
    for method in ('tau-norm', 'logit-adjust'):
        snip = Config.fromfile(out['snippets'][method])
        assert snip.model.head.calibration.tau == chosen[method]
    assert (work / 'tuning_curves.png').stat().st_size > 1000

    # Again on the same work dir: the caches are reused, same numbers.
    again = _tune(tool, setup, work, {'tau-norm': [0, 0.5, 1, 2]})
    assert again['extraction_reused']
    assert again['sweeps']['tau-norm']['rows'] == saved['sweeps']['tau-norm'][
        'rows']


def test_tune_baseline_learning_rates(tool, setup, tmp_path, capsys):
    """cRT and LWS: their lr swept with their own configs on the cached
    features (cRT re-initialises and re-trains head.fc, LWS trains the
    scales); the chosen lr is the sweep's best and goes to their snippets."""
    work = tmp_path / 'baselines'
    sweeps = {'crt-lr': [0.01, 0.3, 1.0], 'lws-lr': [0.01, 0.3, 1.0]}
    out = _tune(
        tool,
        setup,
        work,
        sweeps,
        baselines={
            k: v.copy()
            for k, v in setup['baselines'].items()
        })
    printed = capsys.readouterr().out
    for sweep, values in sweeps.items():
        result = out['sweeps'][sweep]
        assert result['method'] == sweep[:3] and result['parameter'] == 'lr'
        rows = result['rows']
        assert [r['value'] for r in rows] == values
        overall = [r['metrics']['top1'] for r in rows]
        assert result['chosen'] == rows[overall.index(max(overall))]['value']
        assert len(set(overall)) > 1, sweep  # the lr matters
        table = _printed_rows(printed, sweep)
        assert [v for v, (_, c) in table.items() if c] == [result['chosen']]
        snippet = Config.fromfile(out['snippets'][sweep[:3]])
        assert snippet.optim_wrapper.optimizer.lr == result['chosen']
    # cRT at lr 0.01 from a re-initialised classifier is far from the
    # stage-1 head that tau-norm 0 evaluates: the baselines train their own
    # head, not the DisAlign one
    stage1 = _tune(tool, setup, work, {'tau-norm': [0]})
    s1 = stage1['sweeps']['tau-norm']['rows'][0]['metrics']
    assert out['sweeps']['crt-lr']['rows'][0]['metrics'] != s1


def test_baseline_sweeps_need_their_config(tool, setup, tmp_path):
    with pytest.raises(tool.TuningError, match='give it with --crt-config'):
        tool.tune(setup['cfg'].copy(), setup['checkpoint'],
                  str(tmp_path / 'x'), {'crt-lr': [0.1]})
    other = setup['baselines']['lws'].copy()
    other.train_dataloader.dataset.ann_file = 'fashion_mnist_lt_val.txt'
    with pytest.raises(tool.TuningError, match='point both configs at the '):
        tool.tune(
            setup['cfg'].copy(),
            setup['checkpoint'],
            str(tmp_path / 'x'), {'lws-lr': [0.1]},
            baselines=dict(lws=other))


@pytest.mark.parametrize(
    'values, chosen, edge',
    [
        ([0, 1.2, 2], 2, 'largest'),
        ([0.01, 0.1, 0.3], 0.01, 'smallest'),
        ([0, 1.2, 2], 0, None),  # rho / tau cannot go below 0
        ([0, 1.2, 2], 1.2, None),
        ([1.2], 1.2, None),
    ])
def test_chosen_at_the_edge_of_a_sweep(tool, values, chosen, edge):
    assert tool.at_edge(values, chosen) == edge


def test_augmented_passes(tool, setup, tmp_path):
    """k augmented training passes are cached (epoch e reads pass e mod k);
    a later run with other passes extracts again instead of reusing."""
    work = tmp_path / 'aug'
    out = _tune(tool, setup, work, {'rho': [1.2]}, passes=2, augment=True)
    meta = json.loads((work / 'cache_train' / 'meta.json').read_text())
    assert meta['passes'] == 2 and meta['augment'] is True
    assert meta['num_samples'] == setup['num_train']
    val = json.loads((work / 'cache_val' / 'meta.json').read_text())
    assert val['passes'] == 1 and val['augment'] is False
    assert out['chosen'] == {'rho': 1.2}
    again = _tune(tool, setup, work, {'rho': [1.2]})
    assert not again['extraction_reused']
    meta = json.loads((work / 'cache_train' / 'meta.json').read_text())
    assert meta['passes'] == 1 and meta['augment'] is False


def test_refuses_bad_input(tool, setup, tmp_path):
    cfg = setup['cfg']
    # the test split
    with pytest.raises(tool.TuningError, match='is the test split'):
        tool.tuning_split(cfg, 'fashion_mnist_lt_test.txt')
    # no validation split named
    no_val = cfg.copy()
    no_val.tuning_ann_file = None
    with pytest.raises(tool.TuningError, match='--val-ann-file'):
        tool.tuning_split(no_val)
    # a named list that was not built
    with pytest.raises(tool.TuningError, match='--val-per-class'):
        tool.tuning_split(cfg, 'missing_val.txt')
    # values out of range
    for sweep, values, match in (('rho', [1, -0.5], 'rho must be >= 0'),
                                 ('tau-norm', [-1], 'tau must be >= 0'),
                                 ('logit-adjust', [-1], 'tau must be >= 0'),
                                 ('lr', [0.1, 0], 'must be > 0')):
        with pytest.raises(tool.TuningError, match=match):
            tool.tune(cfg.copy(), setup['checkpoint'], str(tmp_path / 'x'),
                      {sweep: values})
    # a cache made from other weights
    import torch
    ckpt = torch.load(
        setup['checkpoint'], map_location='cpu', weights_only=False)
    key = next(k for k in ckpt['state_dict'] if k.startswith('backbone.'))
    ckpt['state_dict'][key] = ckpt['state_dict'][key] + 1
    other = str(tmp_path / 'other.pth')
    torch.save(ckpt, other)
    work = tmp_path / 'cache'
    _tune(tool, setup, work, {'tau-norm': [1]})
    with pytest.raises(tool.TuningError, match='other backbone / neck'):
        tool.tune(setup['cfg'].copy(), other, str(work), {'tau-norm': [1]})


def test_command_line_errors(tool, setup, tmp_path):
    cfg_file = str(tmp_path / 'stage2.py')
    setup['cfg'].dump(cfg_file)
    with pytest.raises(SystemExit, match='is the test split'):
        tool.main([
            cfg_file, '--checkpoint', setup['checkpoint'], '--work-dir',
            str(tmp_path / 'w'), '--val-ann-file', 'fashion_mnist_lt_test.txt',
            '--tau-norm', '1'
        ])
    with pytest.raises(SystemExit, match='rho must be >= 0'):
        tool.main([
            cfg_file, '--checkpoint', setup['checkpoint'], '--work-dir',
            str(tmp_path / 'w'), '--rho=-1'
        ])
    with pytest.raises(SystemExit, match='give it with --crt-config'):
        tool.main([
            cfg_file, '--checkpoint', setup['checkpoint'], '--work-dir',
            str(tmp_path / 'w'), '--crt-lr', '0.1'
        ])
    # a baseline config adds its lr sweep to the default sweeps
    args = tool.parse_args([cfg_file, '--lws-config', cfg_file])
    assert args.sweeps == {
        'rho': tool.DEFAULT_RHO,
        'lr': tool.DEFAULT_LR,
        'lws-lr': tool.DEFAULT_LR,
        'tau-norm': tool.DEFAULT_TAU,
        'logit-adjust': tool.DEFAULT_TAU
    }


@pytest.mark.parametrize('config,split', [
    ('imagenet_lt/resnet50_8xb32-10e_imagenet-lt_disalign.py',
     'ImageNet_LT_val.txt'),
    ('places_lt/resnet152_8xb32-10e_places-lt_disalign.py',
     'Places_LT_val.txt'),
    ('fashion_mnist_lt/resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py',
     'fashion_mnist_lt_val.txt'),
    ('inaturalist2018/resnet50_8xb32-10e_inat2018_disalign.py', None),
])
def test_shipped_tuning_splits(tool, config, split):
    """Each data set config names its validation list, never the test one
    (iNaturalist 2018 has none: the tool asks for --val-ann-file)."""
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'cls', config))
    assert cfg.get('tuning_ann_file') == split
    if split is None:
        with pytest.raises(tool.TuningError, match='--val-ann-file'):
            tool.tuning_split(cfg)
    else:
        assert split != cfg.test_dataloader.dataset.ann_file
        path = osp.join(cfg.test_dataloader.dataset.data_root, split)
        if osp.isfile(path):  # the data set is here, with its val list
            assert tool.tuning_split(cfg)['ann_file'] == split
        else:  # the list is missing, not refused as the test split
            with pytest.raises(tool.TuningError, match='does not exist'):
                tool.tuning_split(cfg)


def test_collapsed_runs_are_reported_not_chosen(tool):
    stage1_like = dict(top1=80.0, collapsed={'head.calibration': 1e-13})
    rows = [(0.01, dict(top1=70.0)), (0.1, dict(top1=75.0)),
            (0.3, stage1_like)]
    assert tool.choose(rows) == 0.1
    with pytest.raises(
            tool.TuningError,
            match=r'every value of the sweep trained a collapsed '
            r'calibration .*: \[0\.3\]; sweep lower stage-2 learning rates'):
        tool.choose([(0.3, stage1_like)])


def test_cached_config_lets_a_collapsed_run_finish(tool):
    cfg = Config(
        dict(
            model=dict(type='ImageClassifier'),
            train_dataloader=dict(batch_size=4, sampler=None),
            custom_hooks=[dict(type='DisAlignFreezeHook')],
            default_hooks=dict(checkpoint=dict(type='CheckpointHook'))))
    out = tool.cached_config(cfg, 'stage1.pth', 'cache', 'work', 'lr0.3')
    assert [h.type for h in out.custom_hooks
            ] == ['DisAlignFreezeHook', 'FeatureCacheHook']
    assert out.custom_hooks[0].allow_collapsed_calibration is True
    assert 'allow_collapsed_calibration' not in cfg.custom_hooks[0]
