"""The scene builders write only into a new or empty folder, or over their
own build with the same arguments; other data is refused, never touched."""
import os
import os.path as osp

import pytest

FMNIST = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'
pytestmark = pytest.mark.skipif(
    not osp.isfile(FMNIST), reason='needs dataset-fashion-mnist')


def _snapshot(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            stat = os.stat(osp.join(folder, name))
            out[osp.relpath(osp.join(folder, name),
                            root)] = (stat.st_size, stat.st_mtime_ns)
    return out


def test_segmentation_scenes_refuse_other_data(tmp_path, load_tool):
    build = load_tool(
        'dataset_converters/fmnist_ade_scenes').build_fmnist_scenes
    kwargs = dict(num_train=8, num_val=6, imbalance=10.0)
    out = tmp_path / 'scenes'
    first = build(str(out), seed=2, **kwargs)
    assert build(str(out), seed=2, **kwargs) == first  # same options
    before = _snapshot(out)
    with pytest.raises(
            FileExistsError,
            match=r'build of fmnist_ade_scenes with other '
            r'options \(seed: 2 there, 3 asked\)'):
        build(str(out), seed=3, **kwargs)
    assert _snapshot(out) == before
    other = tmp_path / 'mine'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match=r"e\.g\. 'notes\.txt'"):
        build(str(other), seed=2, **kwargs)
    assert os.listdir(other) == ['notes.txt']


def test_lvis_scenes_refuse_other_data(tmp_path):
    pytest.importorskip('pycocotools')
    from disalign_demo.fmnist_lvis import build_fmnist_lvis
    kwargs = dict(n_max=6, imbalance_ratio=3, val_per_class=1)
    out = tmp_path / 'lvis'
    build_fmnist_lvis(str(out), seed=0, **kwargs)
    before = _snapshot(out)
    with pytest.raises(
            FileExistsError,
            match=r'build of fmnist_lvis with other options '
            r'\(n_max: 6 there, 7 asked, seed: 0 there, 1 asked'):
        build_fmnist_lvis(str(out), **dict(kwargs, n_max=7, seed=1))
    assert _snapshot(out) == before
