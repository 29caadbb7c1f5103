"""mim: the wheel carries mmdisalign/.mim/{configs,tools}, and
``mim train mmdisalign CONFIG`` trains from a wheel install kept apart from
the editable development install, with mim's default launcher (one
process) and with ``--launcher pytorch --gpus 2``.

The sources are copied to a scratch folder and built there with
``python -m build --no-isolation`` (sdist, then the wheel from the sdist:
this checks MANIFEST.in and the build step of setup.py together). The wheel
is installed with ``pip install --no-deps --target``, and that folder goes
first on ``PYTHONPATH``, so both ``import mmdisalign`` and mim's
``pkg_resources`` lookup find the wheel, not the checkout.
"""
import importlib.util
import shutil
import tarfile
import zipfile

import pytest
import torch

#: Folders of the checkout that the build needs (with every top-level file).
PACKAGES = ('mmdisalign', 'configs', 'tools')


@pytest.fixture(scope='module')
def wheel(h, tmp_path_factory):
    if importlib.util.find_spec('build') is None:
        pytest.skip('needs the "build" package (the dev extra)')
    root = tmp_path_factory.mktemp('wheel')
    src = root / 'src'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim',
                                    '*.egg-info')
    src.mkdir()
    for path in h.REPO.iterdir():
        if path.is_file() and not path.name.startswith('.'):
            shutil.copy2(path, src / path.name)
    for name in PACKAGES:
        shutil.copytree(h.REPO / name, src / name, ignore=ignore)
    proc = h.run([
        h.PYTHON, '-m', 'build', '--no-isolation', '--outdir', root / 'dist',
        src
    ], h.tool_env(root), root)
    h.check_ok(proc)
    wheels = list((root / 'dist').glob('mmdisalign-*.whl'))
    sdists = list((root / 'dist').glob('mmdisalign-*.tar.gz'))
    assert len(wheels) == 1 and len(sdists) == 1
    return wheels[0], sdists[0]


def test_wheel_contents(h, wheel):
    whl, sdist = wheel
    names = set(zipfile.ZipFile(whl).namelist())
    stage2 = h.STAGE2_CONFIG.relative_to(h.REPO)
    for name in ('tools/train.py', 'tools/test.py', 'tools/dist_train.sh',
                 'tools/dist_test.sh', 'tools/slurm_train.sh',
                 'tools/slurm_test.sh', str(stage2)):
        assert f'mmdisalign/.mim/{name}' in names, name
    assert 'mmdisalign/engine/dist.py' in names
    shipped = {
        str(p.relative_to(h.REPO))
        for p in (h.REPO / 'configs').rglob('*.py')
        if '__pycache__' not in p.parts
    }
    in_wheel = {
        n[len('mmdisalign/.mim/'):]
        for n in names if n.startswith('mmdisalign/.mim/configs/')
    }
    assert shipped <= in_wheel
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    with tarfile.open(sdist) as tar:
        members = {m.split('/', 1)[1] for m in tar.getnames() if '/' in m}
    assert str(stage2) in members and 'tools/train.py' in members
    assert not [m for m in members if '.mim' in m]


@pytest.fixture(scope='module')
def installed(h, wheel, tmp_path_factory):
    """The wheel installed apart: ``pip install --no-deps --target``."""
    if importlib.util.find_spec('mim') is None:
        pytest.skip("openmim is not installed (pip install 'mmdisalign[mim]')")
    target = tmp_path_factory.mktemp('site')
    proc = h.run([
        h.PYTHON, '-m', 'pip', 'install', '--no-deps', '--no-index',
        '--no-compile', '--target', target, wheel[0]
    ], h.tool_env(target), target)
    h.check_ok(proc)
    assert (target / 'mmdisalign/.mim/tools/train.py').is_file()
    return target


def mim_train(h, target, tmp_path, fmnist_lt, cls_stage1, *launch, batch=16):
    """``mim train mmdisalign <shipped stage-2 config>`` shrunk to 32 of the
    tiny Fashion-MNIST-LT images and one epoch."""
    run_dir = tmp_path / 'run'  # no config here: mim searches the package
    run_dir.mkdir()
    work_dir = tmp_path / 'work'
    data_root = f'{fmnist_lt}/'
    options = [
        f'load_from={cls_stage1}',
        f'train_dataloader.dataset.data_root={data_root}',
        f'train_dataloader.dataset.classes={data_root}classes.txt',
        'train_dataloader.dataset.indices=32',
        f'train_dataloader.batch_size={batch}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader=None',
        'val_cfg=None', 'val_evaluator=None',
        f'model.head.loss.class_freq={data_root}class_freq.json',
        'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1'
    ]
    env = h.tool_env(tmp_path)
    env['PYTHONPATH'] = f'{target}:{env["PYTHONPATH"]}'
    proc = h.run([
        h.PYTHON, '-m', 'mim', 'train', 'mmdisalign', h.STAGE2_CONFIG.name,
        *launch, '--work-dir', work_dir, '--cfg-options', *options
    ], env, run_dir)
    h.check_ok(proc)
    mim_dir = target / 'mmdisalign' / '.mim'
    assert (
        f'{mim_dir}/tools/train.py {mim_dir}/configs/'
        f'{h.STAGE2_CONFIG.relative_to(h.REPO / "configs")}') in proc.stdout
    assert f'mmdisalign 0.1.0 from {target}/mmdisalign' in proc.stdout
    assert 'Training finished successfully' in proc.stdout

    ckpt = h.load(work_dir / 'epoch_1.pth')
    assert ckpt['meta']['iter'] == 2  # 32 images, total batch 16
    stage1 = h.load(cls_stage1)['state_dict']
    for key, value in h.frozen(ckpt['state_dict']).items():
        assert torch.equal(value, stage1[key]), key
    beta = ckpt['state_dict']['head.calibration.beta']
    assert beta.abs().max() > 1e-4  # trained from its init, 0
    return proc.stdout


def test_mim_train_from_wheel(h, tmp_path, installed, fmnist_lt, cls_stage1):
    """mim's default launcher: one process (on the CPU here)."""
    mim_train(h, installed, tmp_path, fmnist_lt, cls_stage1)


def test_mim_train_pytorch_launcher(h, tmp_path, installed, fmnist_lt,
                                    cls_stage1):
    """``--launcher pytorch --gpus 2``: mim runs the deprecated
    ``torch.distributed.launch``, which passes ``--local-rank=N`` to
    train.py; on the CPU the two processes use gloo."""
    out = mim_train(
        h,
        installed,
        tmp_path,
        fmnist_lt,
        cls_stage1,
        '--launcher',
        'pytorch',
        '--gpus',
        '2',
        '--port',
        str(h.free_port()),
        batch=8)
    assert '-m torch.distributed.launch --nproc_per_node=2' in out
    assert 'Distributed training: True' in out
    assert 'rebuilt the MMDistributedDataParallel wrapper' in out
