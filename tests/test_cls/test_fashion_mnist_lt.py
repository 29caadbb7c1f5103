"""The Fashion-MNIST-LT builder: profile, seeded sampling, written files."""
import gzip
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from disalign_demo import fashion_mnist_lt as fm
from PIL import Image

from mmdisalign.cls.datasets import read_list_file
from mmdisalign.utils.class_freq import load_class_freq

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REAL_LABELS = osp.join(fm.DEFAULT_FASHION_MNIST_DIR,
                       fm.IDX_FILES['train_labels'])


def test_profile_ratio_100_and_10():
    assert fm.long_tail_counts(6000, 10, 100) == [
        6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60
    ]
    assert fm.long_tail_counts(6000, 10, 10) == [
        6000, 4645, 3596, 2784, 2156, 1669, 1292, 1000, 774, 600
    ]
    assert fm.long_tail_counts(6000, 10, 1) == [6000] * 10
    with pytest.raises(ValueError, match='ratio must be >= 1'):
        fm.long_tail_counts(6000, 10, 0.5)


@pytest.mark.skipif(
    not osp.isfile(REAL_LABELS), reason='dataset-fashion-mnist missing')
def test_seeded_sampling_on_the_real_labels():
    labels = fm.read_idx(REAL_LABELS)
    assert labels.shape == (60000, )
    counts = fm.long_tail_counts(6000, 10, 100)
    a = fm.sample_long_tail(labels, counts, seed=0)
    b = fm.sample_long_tail(labels, counts, seed=0)
    c = fm.sample_long_tail(labels, counts, seed=1)
    assert np.bincount(labels[a['train']]).tolist() == counts
    assert np.array_equal(a['train'], b['train'])
    assert not np.array_equal(a['train'], c['train'])
    # ratio 10, same seed: per class a superset of the ratio-100 images.
    counts10 = fm.long_tail_counts(6000, 10, 10)
    d = fm.sample_long_tail(labels, counts10, seed=0)
    assert np.bincount(labels[d['train']]).tolist() == counts10
    assert set(a['train']) <= set(d['train'])
    with pytest.raises(ValueError, match='class 0 has 6000 source images'):
        fm.sample_long_tail(labels, counts, seed=0, val_per_class=1)


def _write_idx(path, array):
    magic = bytes([0, 0, 0x08, array.ndim])
    dims = b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(magic + dims + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_idx(tmp_path):
    """Fake IDX files: 4 classes x 30 train images, 4 x 5 test images."""
    rng = np.random.default_rng(0)
    src = tmp_path / 'src'
    src.mkdir()
    train_labels = np.repeat(np.arange(4), 30)
    test_labels = np.repeat(np.arange(4), 5)
    train = rng.integers(0, 256, (120, 28, 28))
    test = rng.integers(0, 256, (20, 28, 28))
    for key, arr in (('train_images', train), ('train_labels', train_labels),
                     ('test_images', test), ('test_labels', test_labels)):
        _write_idx(src / fm.IDX_FILES[key], arr)
    return src, train.astype(np.uint8), test.astype(np.uint8)


def test_build_writes_lists_images_and_class_freq(tmp_path, fake_idx):
    src, train, test = fake_idx
    out = tmp_path / 'out'
    meta = fm.build_fashion_mnist_lt(
        str(out), ratio=8, seed=3, val_per_class=5, src_dir=str(src))
    # n_max = 30 - 5; 25 * 8 ** (-i / 3) = 25, 12.5, 6.25, 3.125
    assert meta['train_counts'] == [25, 12, 6, 3]
    paths, labels, _ = read_list_file(str(out / fm.LIST_NAMES['train']), 4)
    assert np.bincount(labels).tolist() == [25, 12, 6, 3]
    _, val_labels, _ = read_list_file(str(out / fm.LIST_NAMES['val']), 4)
    assert np.bincount(val_labels).tolist() == [5] * 4
    val_paths = read_list_file(str(out / fm.LIST_NAMES['val']))[0]
    assert not set(val_paths) & set(paths)
    test_paths, test_labels, _ = read_list_file(
        str(out / fm.LIST_NAMES['test']), 4)
    assert len(test_paths) == 20
    # The PNG holds the source image, and the path encodes the index.
    index = int(osp.splitext(paths[7])[0].rsplit('_', 1)[1])
    img = np.array(Image.open(out / 'images' / paths[7]))
    assert np.array_equal(img, train[index])
    assert labels[7] == index // 30
    img = np.array(Image.open(out / 'images' / test_paths[-1]))
    assert np.array_equal(img, test[19])
    assert load_class_freq(str(out /
                               'class_freq.json')).tolist() == [25, 12, 6, 3]
    assert (out /
            'classes.txt').read_text().split('\n')[:4] == ['0', '1', '2', '3']
    assert fm.is_built(
        str(out), ratio=8, seed=3, val_per_class=5, src_dir=str(src))
    assert not fm.is_built(
        str(out), ratio=8, seed=4, val_per_class=5, src_dir=str(src))
    with open(out / 'meta.json') as f:
        assert json.load(f)['num_test'] == 20

    # Same seed, same files; the test subset option is seeded as well.
    out2 = tmp_path / 'out2'
    fm.build_fashion_mnist_lt(
        str(out2),
        ratio=8,
        seed=3,
        val_per_class=5,
        test_per_class=2,
        src_dir=str(src))
    assert (out2 / fm.LIST_NAMES['train']).read_text() == (
        out / fm.LIST_NAMES['train']).read_text()
    _, small_test, _ = read_list_file(str(out2 / fm.LIST_NAMES['test']))
    assert np.bincount(small_test).tolist() == [2] * 4


def test_bad_idx_files(tmp_path, fake_idx):
    src, _, _ = fake_idx
    with pytest.raises(FileNotFoundError, match='IDX file not found'):
        fm.read_idx(str(tmp_path / 'nope.gz'))
    bad = tmp_path / 'bad.gz'
    with gzip.open(bad, 'wb') as f:
        f.write(b'\x00\x00\x08\x01' + (10).to_bytes(4, 'big') + b'\x00' * 3)
    with pytest.raises(ValueError, match=r'announces shape \(10,\)'):
        fm.read_idx(str(bad))
    with pytest.raises(ValueError, match='fewer than the 40 training'):
        fm.build_fashion_mnist_lt(
            str(tmp_path / 'o'), max_per_class=40, src_dir=str(src))


def test_ratio_clamped_to_one_is_refused(tmp_path, fake_idx):
    """--ratio 1000 --max-per-class 10 would clamp the tail counts to 1 (a
    real ratio of 10): the builder and the converter say so, write
    nothing."""
    src, _, _ = fake_idx
    out = tmp_path / 'o'
    with pytest.raises(
            ValueError, match=r'real ratio would be 10 \(10 / 1\)'
            r', not 1000'):
        fm.build_fashion_mnist_lt(
            str(out), ratio=1000, max_per_class=10, src_dir=str(src))
    assert not out.exists()
    proc = subprocess.run([
        sys.executable, 'tools/dataset_converters/fashion_mnist_lt.py',
        str(out), '--ratio', '1000', '--max-per-class', '10', '--src-dir',
        str(src)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert 'fashion_mnist_lt.py: error: ratio 1000 with 10 images' in (
        proc.stderr)
    assert '--max-per-class' in proc.stderr and not out.exists()
    # a ratio the counts can hold: the converter prints the real ratio
    proc = subprocess.run([
        sys.executable, 'tools/dataset_converters/fashion_mnist_lt.py',
        str(out), '--ratio', '10', '--max-per-class', '10', '--src-dir',
        str(src)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert '[10, 4, 2, 1] (total 17; real ratio 10)' in proc.stdout
