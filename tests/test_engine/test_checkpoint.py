"""mmengine checkpoints load on torch >= 2.6 through mmdisalign.compat.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True`` and mmengine
0.10.7 does not pass ``weights_only``; a checkpoint saved by the Runner
(``message_hub`` holds ``HistoryBuffer`` objects with numpy arrays) then
fails to load. These tests use a real Runner checkpoint, with the escape
hatch environment variables unset.
"""
import importlib
import logging
import os
import pickle
import struct
import uuid
import zipfile

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
from torch.utils.data import Dataset

import mmdisalign
from mmdisalign import compat

ENV_VARS = ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD',
            'TORCH_FORCE_WEIGHTS_ONLY_LOAD')


class TinyNet(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.bn(self.fc(inputs))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(out, data_samples))
        return out


class TinySet(Dataset):

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 4, generator=gen)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


class StartProbe(Hook):

    def before_train(self, runner):
        self.start_iter = runner.iter
        self.start_state = {
            k: v.clone()
            for k, v in runner.model.state_dict().items()
        }


def make_runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=TinyNet(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=TinySet(),
            # InfiniteSampler: the default one makes the iteration loop
            # sleep 2 s at every dataloader restart.
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=3,
                            by_epoch=False)),
        randomness=dict(seed=0),
        experiment_name=f'tiny_{uuid.uuid4().hex}',
        **kwargs)


@pytest.fixture(autouse=True)
def _no_env_escape_hatch(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield
    MMLogger._instance_dict.clear()
    logging.shutdown()


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """An mmengine checkpoint written by the Runner after 3 iterations."""
    work_dir = tmp_path_factory.mktemp('ckpt')
    runner = make_runner(work_dir, 3)
    runner.train()
    MMLogger._instance_dict.clear()
    state = {k: v.clone() for k, v in runner.model.state_dict().items()}
    return str(work_dir / 'iter_3.pth'), state


def test_torch_defaults_to_weights_only():
    assert tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 6)
    for var in ENV_VARS:
        assert var not in os.environ


def test_without_fix_the_checkpoint_does_not_load(runner_checkpoint):
    """Plain torch.load and mmengine's own local loader both fail."""
    path, _ = runner_checkpoint
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        mm_checkpoint.load_from_local(path, map_location='cpu')


def test_local_scheme_uses_compat_loader(runner_checkpoint):
    path, state = runner_checkpoint
    assert CheckpointLoader._get_checkpoint_loader(path) is \
        compat.load_from_local
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert set(ckpt) >= {'meta', 'state_dict', 'message_hub', 'optimizer'}
    assert ckpt['meta']['iter'] == 3
    # The objects that weights_only=True rejects.
    buffers = ckpt['message_hub']['log_scalars']
    assert isinstance(buffers['train/loss'], HistoryBuffer)
    assert len(buffers['train/loss'].data[0]) == 3
    for key, value in state.items():
        assert torch.equal(ckpt['state_dict'][key], value), key


def test_map_location_semantics(runner_checkpoint):
    path, state = runner_checkpoint
    ckpt = compat.load_from_local(path, map_location='meta')
    assert ckpt['state_dict']['fc.weight'].device.type == 'meta'
    seen = []

    def to_cpu(storage, location):
        seen.append(location)
        return storage

    ckpt = compat.load_from_local(path, map_location=to_cpu)
    assert seen and set(seen) == {'cpu'}
    assert torch.equal(ckpt['state_dict']['fc.weight'], state['fc.weight'])


def test_home_expansion(runner_checkpoint, tmp_path, monkeypatch):
    path, state = runner_checkpoint
    monkeypatch.setenv('HOME', str(tmp_path))
    os.symlink(path, tmp_path / 'stage1.pth')
    ckpt = _load_checkpoint('~/stage1.pth', map_location='cpu')
    assert torch.equal(ckpt['state_dict']['bn.running_var'],
                       state['bn.running_var'])


def test_missing_file_error(tmp_path):
    missing = str(tmp_path / 'no_such.pth')
    with pytest.raises(FileNotFoundError) as info:
        _load_checkpoint(missing)
    assert str(info.value) == (
        f'Checkpoint file {missing!r} does not exist. Check the path given '
        'to `load_from`, `resume` or `init_cfg.checkpoint`.')
    with pytest.raises(FileNotFoundError, match='is a directory'):
        _load_checkpoint(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"resolved to '/"):
        _load_checkpoint('no_such_relative.pth')


def test_runner_load_from_missing_file(tmp_path):
    missing = str(tmp_path / 'stage1' / 'epoch_90.pth')
    runner = make_runner(tmp_path, 3, load_from=missing)
    with pytest.raises(FileNotFoundError, match='load_from'):
        runner.train()


def test_runner_load_from(runner_checkpoint, tmp_path):
    path, state = runner_checkpoint
    runner = make_runner(tmp_path, 3, load_from=path)
    # What Runner.train() does before the first iteration.
    runner.load_or_resume()
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_runner_resume(runner_checkpoint, tmp_path):
    path, state = runner_checkpoint
    probe = StartProbe()
    runner = make_runner(
        tmp_path, 6, load_from=path, resume=True, custom_hooks=[probe])
    runner.train()
    assert probe.start_iter == 3  # resumed after iteration 3
    assert runner.iter == 6
    # The message hub was resumed too: 3 + 3 losses logged.
    loss = runner.message_hub.get_scalar('train/loss')
    assert len(loss.data[0]) == 6
    assert (tmp_path / 'iter_6.pth').is_file()
    # Training went on from the checkpoint's weights.
    for key, value in state.items():
        assert torch.equal(probe.start_state[key], value), key


def test_install_is_idempotent(runner_checkpoint):
    path, _ = runner_checkpoint
    before = dict(CheckpointLoader._schemes)
    compat.install_local_checkpoint_loader()
    compat.install_local_checkpoint_loader()
    assert CheckpointLoader._schemes == before
    reloaded = importlib.reload(compat)
    assert list(CheckpointLoader._schemes) == list(before)
    assert CheckpointLoader._schemes[''] is reloaded.load_from_local
    assert _load_checkpoint(path)['meta']['iter'] == 3
    assert mmdisalign.compat is reloaded


# --- Safe loading: the allow-list, refusals, the opt-in, broken files. ---


class Payload:
    """A pickle payload: unpickling it runs ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class GetattrPayload:
    """Unpickles as ``getattr(HistoryBuffer, '__init__')`` (only the
    statistics methods are allowed)."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def _with(path, out, where, value):
    ckpt = torch.load(path, weights_only=False)
    if where == 'meta':
        ckpt['meta']['note'] = value
    else:
        ckpt['state_dict']['fc.extra'] = value
    torch.save(ckpt, str(out))
    return str(out)


def test_allow_list_is_scoped(runner_checkpoint):
    """The allow-list is added for each load only; what the user allowed
    before stays allowed."""
    path, _ = runner_checkpoint
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals([HistoryBuffer])
    try:
        assert _load_checkpoint(path)['meta']['iter'] == 3
        assert torch.serialization.get_safe_globals() == [HistoryBuffer]
    finally:
        torch.serialization.clear_safe_globals()
    assert _load_checkpoint(path)['meta']['iter'] == 3
    assert torch.serialization.get_safe_globals() == []
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        torch.load(path)  # plain torch.load is left as it was


@pytest.mark.parametrize('where', ['meta', 'state_dict'])
def test_reduce_payload_refused(runner_checkpoint, tmp_path, where):
    path, _ = runner_checkpoint
    marker = tmp_path / 'marker'
    evil = _with(path, tmp_path / 'evil.pth', where, Payload(marker))
    with pytest.raises(compat.UnsafeCheckpointError) as info:
        _load_checkpoint(evil)
    assert not marker.exists()
    message = str(info.value)
    assert f"Refusing to load checkpoint '{evil}'" in message
    assert f'it needs {os.system.__module__}.system,' in message
    assert '`trust_checkpoint = True` in the config' in message
    assert '`--trust-checkpoint` on tools/train.py / tools/test.py' in message
    # The opt-in: the file is trusted, so it loads (and runs its payload).
    with compat.trusted_checkpoints():
        ckpt = _load_checkpoint(evil)
    assert marker.exists()
    assert ckpt['meta']['iter'] == 3
    # Leaving the block restores the safe loading.
    marker.unlink()
    with pytest.raises(compat.UnsafeCheckpointError):
        _load_checkpoint(evil)
    assert not marker.exists()


def test_legacy_format_payload_refused(runner_checkpoint, tmp_path):
    """torch's pre-1.6 format: loads when safe, refused with a payload."""
    path, state = runner_checkpoint
    ckpt = torch.load(path, weights_only=False)
    legacy = tmp_path / 'legacy.pth'
    torch.save(ckpt, str(legacy), _use_new_zipfile_serialization=False)
    loaded = _load_checkpoint(str(legacy))
    assert torch.equal(loaded['state_dict']['fc.weight'], state['fc.weight'])
    marker = tmp_path / 'marker'
    ckpt['meta']['note'] = Payload(marker)
    torch.save(ckpt, str(legacy), _use_new_zipfile_serialization=False)
    with pytest.raises(compat.UnsafeCheckpointError, match='needs posix'):
        _load_checkpoint(str(legacy))
    assert not marker.exists()


def test_getattr_restricted_to_history_buffer(runner_checkpoint, tmp_path):
    path, _ = runner_checkpoint
    evil = _with(path, tmp_path / 'evil.pth', 'meta', GetattrPayload())
    with pytest.raises(compat.UnsafeCheckpointError) as info:
        _load_checkpoint(evil)
    assert "needs getattr(<class 'mmengine.logging.history_buffer." \
        "HistoryBuffer'>, '__init__')" in str(info.value)


def test_numpy_and_upstream_meta_load(tmp_path):
    """numpy scalars and arrays of numeric dtypes (metric values, logs) and
    the meta of an mmcv 1.x model-zoo checkpoint (strings, tuples) load;
    an object array does not."""
    import numpy as np
    meta = dict(
        config="model = dict(type='ResNet')",
        env_info='sys.platform: linux',
        mmcv_version='1.7.0',
        CLASSES=('a', 'b'),
        PALETTE=[(0, 0, 0), (1, 2, 3)],
        best_score=np.float32(0.5),
        counts=np.arange(3, dtype=np.int32),
        mask=np.array([True, False]),
        half=np.float16(1.5),
        big=np.uint64(7))
    path = tmp_path / 'zoo.pth'
    torch.save(dict(meta=meta, state_dict={'w': torch.ones(2)}), str(path))
    loaded = _load_checkpoint(str(path))['meta']
    assert loaded['CLASSES'] == ('a', 'b')
    assert loaded['best_score'] == np.float32(0.5)
    assert loaded['counts'].tolist() == [0, 1, 2]
    assert loaded['big'] == 7 and loaded['half'] == 1.5
    meta['objects'] = np.array([{'a': 1}], dtype=object)
    torch.save(dict(meta=meta), str(path))
    with pytest.raises(compat.UnsafeCheckpointError, match='ObjectDType'):
        _load_checkpoint(str(path))


def test_trust_must_be_a_bool():
    with pytest.raises(TypeError, match="`trust_checkpoint` must be True"):
        with compat.trusted_checkpoints('False'):
            pass


def _flipped(path, out, offset, count=64):
    data = bytearray(open(path, 'rb').read())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    out.write_bytes(bytes(data))
    return str(out)


def test_broken_files(runner_checkpoint, tmp_path):
    path, _ = runner_checkpoint
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(compat.CheckpointReadError) as info:
        _load_checkpoint(str(empty))
    assert str(
        info.value).startswith(f"Checkpoint file '{empty}' is empty (0 bytes)")
    for name, text in (('notes.pth', 'stage 1 ran fine\n'), ('class_freq.json',
                                                             '[5, 3, 1]')):
        other = tmp_path / name
        other.write_text(text)
        with pytest.raises(compat.CheckpointReadError) as info:
            _load_checkpoint(str(other))
        assert str(info.value).startswith(
            f"'{other}' is not a PyTorch checkpoint: it is neither a zip "
            "archive written by torch.save nor torch's legacy format (it "
            f'starts with {text.encode()[:16]!r})')
    archive = tmp_path / 'data.zip'
    with zipfile.ZipFile(archive, 'w') as out:
        out.writestr('images/0.png', b'png')
    with pytest.raises(compat.CheckpointReadError, match='no data.pkl'):
        _load_checkpoint(str(archive))


def _data_offset(path, info):
    """Where the bytes of a zip member start (after its local header)."""
    with open(path, 'rb') as file:
        file.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack('<HH', file.read(4))
    return info.header_offset + 30 + name_len + extra_len


def test_flipped_bytes(runner_checkpoint, tmp_path):
    """torch itself does not check the CRC-32 of the zip members: 64 flipped
    bytes in a tensor load as wrong weights. The loader checks them."""
    path, _ = runner_checkpoint
    ckpt = torch.load(path, weights_only=False)
    ckpt['state_dict']['big'] = torch.arange(1000.)
    path = str(tmp_path / 'ckpt.pth')
    torch.save(ckpt, path)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    pkl = next(i for i in infos if i.filename.endswith('/data.pkl'))
    tensor = max((i for i in infos if '/data/' in i.filename),
                 key=lambda i: i.file_size)
    assert tensor.file_size == 4000
    size = os.path.getsize(path)
    for where, offset, reason in (
        ('tensor', _data_offset(path, tensor) + 100,
         f"Bad CRC-32 for file '{tensor.filename}'"),
        ('pickle', _data_offset(path, pkl) + 100,
         f"Bad CRC-32 for file '{pkl.filename}'"),
        ('directory', size - 80, None),
    ):
        broken = _flipped(path, tmp_path / f'{where}.pth', offset)
        if where == 'tensor':  # what torch alone does: wrong weights
            wrong = torch.load(broken, weights_only=False)['state_dict']
            assert not torch.equal(wrong['big'], torch.arange(1000.))
        with pytest.raises(compat.CheckpointReadError) as info:
            _load_checkpoint(broken)
        message = str(info.value)
        assert message.startswith(f"Checkpoint file '{broken}' is corrupt")
        assert 'Copy or write it again' in message
        if reason:
            assert reason in message


def test_no_crc_checkpoint_loads(tmp_path):
    """torch.save with CRC-32 turned off writes 0: nothing to check."""
    path = tmp_path / 'nocrc.pth'
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(dict(state_dict={'w': torch.arange(4.)}), str(path))
    finally:
        torch.serialization.set_crc32_options(True)
    assert _load_checkpoint(
        str(path))['state_dict']['w'].tolist() == [0, 1, 2, 3]


def test_pretrained_init_loads_runner_checkpoint(runner_checkpoint):
    """An upstream-style ``init_cfg=dict(type='Pretrained')`` of a Runner
    checkpoint goes through the same safe loader."""
    from mmengine.model import BaseModule
    path, state = runner_checkpoint

    class Net(BaseModule):

        def __init__(self):
            super().__init__(init_cfg=dict(type='Pretrained', checkpoint=path))
            self.fc = nn.Linear(4, 2)

    net = Net()
    net.init_weights()
    assert torch.equal(net.fc.weight, state['fc.weight'])
