"""The experiment tools and their data sets: used as they are, built only
into new directories, never modified; many / medium / few thresholds."""
import gzip
import json
import os
import os.path as osp

import numpy as np
import pytest
from disalign_demo import experiments as exp
from disalign_demo import fashion_mnist_lt as fm
from disalign_demo.list_data import (InvalidDataset, check_list_dataset,
                                     derive_thresholds, group_sizes,
                                     resolve_thresholds)
from mmengine.logging import MMLogger


def _write_idx(path, array):
    magic = bytes([0, 0, 0x08, array.ndim])
    dims = b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(magic + dims + array.astype(np.uint8).tobytes())


@pytest.fixture
def src(tmp_path):
    """Fake IDX files: 4 classes x 30 train images, 4 x 5 test images."""
    rng = np.random.default_rng(0)
    src = tmp_path / 'src'
    src.mkdir()
    for key, arr in (('train_images', rng.integers(0, 256, (120, 28, 28))),
                     ('train_labels', np.repeat(np.arange(4), 30)),
                     ('test_images', rng.integers(0, 256, (20, 28, 28))),
                     ('test_labels', np.repeat(np.arange(4), 5))):
        _write_idx(src / fm.IDX_FILES[key], arr)
    return str(src)


def _snapshot(root):
    """Every file under ``root`` with its size and modification time."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            stat = os.stat(path)
            out[osp.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
    return out


def _main(load_tool, tool, argv):
    """``tools/<tool>.py`` main(argv); the working dir and loggers are
    restored (the tools chdir to the repository)."""
    cwd = os.getcwd()
    try:
        return load_tool(tool).main(argv)
    finally:
        os.chdir(cwd)
        MMLogger._instance_dict.clear()


def test_derived_thresholds_of_fashion_mnist_lt():
    counts = fm.long_tail_counts(6000, 10, 100)
    assert derive_thresholds(counts) == (1000.0, 200.0)
    assert group_sizes(counts, 1000, 200) == [4, 3, 3]
    assert derive_thresholds([25, 12, 6, 3]) == (8.0, 4.0)
    # 11 classes: 4 / 4 / 3; 20 would not separate 23 | 21
    counts = [100, 90, 80, 23, 21, 18, 15, 12, 5, 4, 3]
    many, few = derive_thresholds(counts)
    assert group_sizes(counts, many, few) == [4, 4, 3]
    assert (many, few) == (pytest.approx((23 * 21)**0.5), 8.0)
    with pytest.raises(ValueError, match='cannot split 2 class'):
        derive_thresholds([5, 1])
    with pytest.raises(ValueError, match='no threshold separates'):
        derive_thresholds([9, 5, 5, 1])


def test_thresholds_options_meta_preset_and_errors():
    counts = [25, 12, 6, 3]
    assert resolve_thresholds(counts, 10, 5) == (10, 5, '--many-threshold / '
                                                 '--few-threshold')
    assert resolve_thresholds(
        counts, meta=dict(many_thr=7, few_thr=4))[:2] == (7, 4)
    assert resolve_thresholds(counts, few_thr=5, preset=(20, 8))[:2] == (20, 5)
    assert resolve_thresholds(counts)[2] == 'derived from the training counts'
    with pytest.raises(ValueError, match=r"leave the 'few' group empty"):
        resolve_thresholds(counts, 10, 2)
    with pytest.raises(ValueError, match='few threshold 9 .* exceeds'):
        resolve_thresholds(counts, 8, 9)


def test_builder_refuses_other_data(tmp_path, src):
    out = tmp_path / 'out'
    fm.build_fashion_mnist_lt(str(out), ratio=8, seed=3, src_dir=src)
    before = _snapshot(out)
    # other options: refused, nothing touched
    with pytest.raises(
            FileExistsError,
            match=r'other options \(ratio: 8.0 there, 4.0 asked'):
        fm.build_fashion_mnist_lt(str(out), ratio=4, seed=3, src_dir=src)
    assert _snapshot(out) == before
    # the same options: the build is there, nothing rewritten
    meta = fm.build_fashion_mnist_lt(str(out), ratio=8, seed=3, src_dir=src)
    assert meta['train_counts'] == [30, 15, 7, 3]
    assert _snapshot(out) == before
    # a folder with files of someone else
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    with pytest.raises(
            FileExistsError, match=r"not empty .* e\.g\. 'notes\.txt'"):
        fm.build_fashion_mnist_lt(str(other), ratio=8, src_dir=src)
    assert os.listdir(other) == ['notes.txt']
    # an unfinished build of the same options is completed, of others not
    part = tmp_path / 'part'
    part.mkdir()
    (part / fm.BUILDING_NAME).write_text(
        json.dumps(
            fm._build_args(8, 3, None, 0, None, fm._sources(src, None))))
    fm.build_fashion_mnist_lt(str(part), ratio=8, seed=3, src_dir=src)
    assert fm.is_built(str(part), ratio=8, seed=3, src_dir=src)
    assert not (part / fm.BUILDING_NAME).exists()
    (part / fm.BUILDING_NAME).write_text('{}')
    assert not fm.is_built(str(part), ratio=8, seed=3, src_dir=src)


def test_build_data_uses_a_valid_data_set_as_it_is(tmp_path, src):
    data_root = tmp_path / 'user'
    fm.build_fashion_mnist_lt(str(data_root), ratio=8, seed=3, src_dir=src)
    before = _snapshot(data_root)
    data = exp.build_data(str(data_root), quick=False)
    assert _snapshot(data_root) == before  # not rebuilt as ratio 100
    assert data['name'] == 'Fashion-MNIST-LT (ratio 8)'
    assert data['train_counts'] == [30, 15, 7, 3] and not data['built']
    assert data['classes'] == ['0', '1', '2', '3'] and data['num_test'] == 20
    assert exp.data_thresholds(data) == (10.0, 5.0)
    # a data set without class_freq.json: the counts go to the work dir
    os.remove(data_root / 'class_freq.json')
    data = exp.build_data(str(data_root), quick=False)
    path = exp.class_freq_file(data, str(tmp_path / 'work'))
    assert path == str(tmp_path / 'work' / 'class_freq.json')
    assert json.loads(open(path).read())['counts'] == [30, 15, 7, 3]
    assert not (data_root / 'class_freq.json').exists()


def _user_set(tmp_path, src):
    root = tmp_path / 'user'
    fm.build_fashion_mnist_lt(str(root), ratio=8, seed=3, src_dir=src)
    return root


@pytest.mark.parametrize('fault, match', [
    ('classes', 'no classes.txt'),
    ('list', r'the test list fashion_mnist_lt_test\.txt is missing'),
    ('image', r"fashion_mnist_lt_train\.txt, line 1: image 'train/0/"),
    ('label', r'line 1: label 7 is out of range \[0, 4\)'),
    ('empty_class', r"zero training images: 3 \('3'\)"),
    ('class_freq', r'class_freq\.json holds the counts \[1, 2, 3, 4\]'),
    ('meta', r'meta\.json says \[1, 1, 1, 1\] training images'),
])
def test_invalid_data_set_is_refused_not_rebuilt(tmp_path, src, fault, match):
    root = _user_set(tmp_path, src)
    train = root / 'fashion_mnist_lt_train.txt'
    if fault == 'classes':
        os.remove(root / 'classes.txt')
    elif fault == 'list':
        os.remove(root / 'fashion_mnist_lt_test.txt')
    elif fault == 'image':
        first = train.read_text().split()[0]
        os.remove(root / 'images' / first)
    elif fault == 'label':
        lines = train.read_text().splitlines()
        train.write_text('\n'.join([lines[0].split()[0] + ' 7'] + lines[1:]))
    elif fault == 'empty_class':
        train.write_text(''.join(line + '\n'
                                 for line in train.read_text().splitlines()
                                 if not line.endswith(' 3')))
    elif fault == 'class_freq':
        freq = json.loads((root / 'class_freq.json').read_text())
        freq['counts'] = [1, 2, 3, 4]
        (root / 'class_freq.json').write_text(json.dumps(freq))
    else:
        meta = json.loads((root / 'meta.json').read_text())
        meta['train_counts'] = [1, 1, 1, 1]
        (root / 'meta.json').write_text(json.dumps(meta))
    before = _snapshot(root)
    with pytest.raises(InvalidDataset, match=match) as info:
        exp.build_data(str(root), quick=False)
    assert 'never modifies' in str(info.value) or 'never modif' in str(
        info.value)
    assert _snapshot(root) == before


def test_foreign_folder_is_refused(tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    with pytest.raises(InvalidDataset, match='no classes.txt'):
        exp.build_data(str(other), quick=False)
    assert os.listdir(other) == ['notes.txt']
    with pytest.raises(InvalidDataset, match='names 1 class'):
        (other / 'classes.txt').write_text('a\n')
        check_list_dataset(str(other))


def test_main_job_on_a_user_data_set(tmp_path, src, load_tool, capsys):
    """--quick on a 4-class list data set without class_freq.json and
    meta.json: the thresholds are derived (10 / 5) and printed, the model
    has 4 classes, the data set is not modified."""
    root = _user_set(tmp_path, src)
    os.remove(root / 'class_freq.json')
    os.remove(root / 'meta.json')
    os.rename(root / 'fashion_mnist_lt_train.txt', root / 'train.txt')
    before = _snapshot(root)
    results = _main(load_tool, 'run_main_job', [
        '--quick', '--data-root',
        str(root), '--train-list', 'train.txt', '--work-dir',
        str(tmp_path / 'job')
    ])
    assert _snapshot(root) == before
    assert results['train_counts'] == [30, 15, 7, 3]
    assert (results['many_thr'], results['few_thr']) == (10.0, 5.0)
    out = capsys.readouterr().out
    assert ('groups: many > 10, medium 5..10, few < 5 training images '
            '(2 / 1 / 1 classes; thresholds: derived from the training '
            'counts)') in out
    assert 'user, test set, top-1 (%); many > 10, few < 5' in out
    rows = json.loads((tmp_path / 'job' / 'disalign' / 'eval' /
                       'per_class_accuracy.json').read_text())['classes']
    assert [r['group'] for r in rows] == ['many', 'many', 'medium', 'few']
    assert [r['train_count'] for r in rows] == [30, 15, 7, 3]
    for key in ('top1', 'many', 'medium', 'few'):
        assert 0 <= results['disalign'][f'lt/{key}'] <= 100


def test_compare_baselines_on_a_user_data_set(tmp_path, src, load_tool):
    root = _user_set(tmp_path, src)
    before = _snapshot(root)
    results = _main(load_tool, 'compare_baselines', [
        '--quick', '--seeds', '0', '--methods', 'stage1,logit-adjust',
        '--data-root',
        str(root), '--many-threshold', '20', '--few-threshold', '5',
        '--work-dir',
        str(tmp_path / 'cmp')
    ])
    assert _snapshot(root) == before
    assert (results['many_thr'], results['few_thr']) == (20.0, 5.0)
    rows = json.loads((tmp_path / 'cmp' / 'seed0' / 'logit-adjust' / 'eval' /
                       'per_class_accuracy.json').read_text())['classes']
    assert [r['group'] for r in rows] == ['many', 'medium', 'medium', 'few']
    # the same work dir with other thresholds: refused, results kept
    saved = (tmp_path / 'cmp' / 'seed0' / 'stage1' / 'result.json').read_text()
    with pytest.raises(
            ValueError,
            match=r'result of another run \(few_thr: 5\.0 '
            r'there, 4\.0 now\): use another --work-dir'):
        _main(load_tool, 'compare_baselines', [
            '--quick', '--seeds', '0', '--methods', 'stage1', '--data-root',
            str(root), '--many-threshold', '20', '--few-threshold', '4',
            '--work-dir',
            str(tmp_path / 'cmp')
        ])
    assert (tmp_path / 'cmp' / 'seed0' / 'stage1' /
            'result.json').read_text() == saved
    with pytest.raises(ValueError, match="leave the 'many' group empty"):
        _main(load_tool, 'compare_baselines', [
            '--quick', '--seeds', '0', '--data-root',
            str(root), '--many-threshold', '40', '--work-dir',
            str(tmp_path / 'cmp2')
        ])


def test_validation_list_is_checked(tmp_path, src):
    """``--tune``'s validation list: built when asked, counted, and refused
    when missing or when it shares images with the training / test list."""
    root = tmp_path / 'val'
    fm.build_fashion_mnist_lt(
        str(root), ratio=8, seed=3, val_per_class=2, src_dir=src)
    data = exp.build_data(
        str(root), quick=False, val_list='fashion_mnist_lt_val.txt')
    # 2 of every class held out of the training pool (28 left in class 0)
    assert data['num_val'] == 8 and data['train_counts'] == [28, 14, 7, 3]
    val = root / 'fashion_mnist_lt_val.txt'
    lines = val.read_text().splitlines()
    before = _snapshot(root)
    with pytest.raises(
            InvalidDataset,
            match=r'validation list missing\.txt '
            r'is missing \(name another list with --val-list'):
        exp.build_data(str(root), quick=False, val_list='missing.txt')
    for split, name in (('training', 'fashion_mnist_lt_train.txt'),
                        ('test', 'fashion_mnist_lt_test.txt')):
        leaked = (root / name).read_text().splitlines()[0]
        val.write_text('\n'.join(lines + [leaked]) + '\n')
        with pytest.raises(
                InvalidDataset,
                match=rf'1 image\(s\) of the validation list '
                rf'fashion_mnist_lt_val\.txt are also in the {split} list'):
            exp.build_data(
                str(root), quick=False, val_list='fashion_mnist_lt_val.txt')
    val.write_text('\n'.join(lines) + '\n')
    assert _snapshot(root).keys() == before.keys()
