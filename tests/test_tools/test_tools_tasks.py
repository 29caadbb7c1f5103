"""mmdisalign's tools/train.py and tools/test.py (``--out``,
``--show-dir``, ``--interval``) on the tiny classification, segmentation
and detection stage-2 configs of conftest.py (upstream configs plus the
user configs of docs/launch.md), in this process."""
import json
import pickle

import pytest


def test_our_tools_on_the_same_config(h, task, tmp_path):
    """tools/train.py, then tools/test.py with --out and --show-dir."""
    work_dir = tmp_path / 'work'
    h.run_tool('train', task['config'], '--work-dir', work_dir)
    ckpt = work_dir / h.FINAL_CKPT[task['name']]
    h.assert_disalign_checkpoint(ckpt, task['stage1'])

    out = tmp_path / ('maps' if task['name'] == 'mmseg' else 'preds.pkl')
    # mmdet: a folder under <work-dir>/<timestamp>/; the others: as given
    show = 'show' if task['name'] == 'mmdet' else tmp_path / 'show'
    metrics = h.run_tool('test', task['config'], ckpt, '--work-dir', work_dir,
                         '--out', out, '--show-dir', show, '--interval', 1)
    assert metrics
    root = task['folder'] / 'data'
    if task['name'] == 'mmseg':
        num_val = len(list((root / 'images/validation').glob('*.jpg')))
        assert num_val == 6
        maps = sorted(out.glob('*.png'))
        assert len(maps) == num_val
        assert 'mIoU' in metrics
        painted = list((tmp_path / 'show').rglob('*.png'))
    elif task['name'] == 'mmpretrain':
        num_val = 10  # one test image per class
        with open(out, 'rb') as f:
            results = pickle.load(f)
        assert len(results) == num_val
        correct = sum(
            int(r['pred_label'].item() == r['gt_label'].item())
            for r in results)
        assert metrics['accuracy/top1'] == pytest.approx(10 * correct)
        painted = list((tmp_path / 'show').glob('*.png'))
    else:
        with open(root / 'annotations/lvis_fmnist_val.json') as f:
            num_val = len(json.load(f)['images'])
        with open(out, 'rb') as f:
            results = pickle.load(f)
        assert len(results) == num_val
        assert all('pred_instances' in r for r in results)
        painted = list(work_dir.rglob('show/*.png'))
    assert len(painted) == num_val
