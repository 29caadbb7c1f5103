"""tools/analysis_tools/class_freq_cls.py: list file and config sources."""
import os.path as osp
import re
import sys

import numpy as np
import pytest
from PIL import Image

from mmdisalign.utils.class_freq import load_class_freq, load_class_freq_meta

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def run(monkeypatch, load_tool):
    """Run the tool with these command-line arguments."""

    def run_tool(*args):
        monkeypatch.setattr(sys, 'argv', ['class_freq_cls.py', *args])
        load_tool('analysis_tools/class_freq_cls').main()

    return run_tool


@pytest.fixture
def data(tmp_path):
    # class 0: 3 images, class 1: 1, class 2: 2
    labels = [0, 2, 0, 1, 0, 2]
    lines = []
    for i, y in enumerate(labels):
        rel = f'img/{i}.png'
        (tmp_path / 'img').mkdir(exist_ok=True)
        Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / rel)
        lines.append(f'{rel} {y}\n')
    (tmp_path / 'train.txt').write_text(''.join(lines))
    (tmp_path / 'classes.txt').write_text('ant\nbee\ncow\n')
    return tmp_path


def test_from_list_file(run, data):
    out = data / 'freq.json'
    run('--ann-file', str(data / 'train.txt'), '--classes',
        str(data / 'classes.txt'), '--out', str(out))
    meta = load_class_freq_meta(str(out))
    assert meta['counts'] == [3, 1, 2]
    assert meta['classes'] == ['ant', 'bee', 'cow']
    assert meta['count_type'] == 'images'
    assert meta['source'].endswith('train.txt')
    # A class without image is an error naming it, unless allowed.
    with pytest.raises(ValueError, match=r"zero training images: 3"):
        run('--ann-file', str(data / 'train.txt'), '--num-classes', '4',
            '--out', str(out))
    run('--ann-file', str(data / 'train.txt'), '--num-classes', '4',
        '--allow-empty', '--out', str(out))
    assert load_class_freq(str(out), allow_zero=True).tolist() == [3, 1, 2, 0]


def test_from_config_counts_what_the_dataset_yields(run, data):
    cfg = data / 'cfg.py'
    cfg.write_text(
        "custom_imports = dict(imports=['mmdisalign.cls'], "
        'allow_failed_imports=False)\n'
        "default_scope = 'mmpretrain'\n"
        'train_dataloader = dict(dataset=dict(\n'
        f"    type='LongTailListDataset', data_root={str(data)!r},\n"
        "    ann_file='train.txt', classes=['ant', 'bee', 'cow'],\n"
        "    pipeline=[dict(type='LoadImageFromFile')]))\n")
    out = data / 'freq_cfg.json'
    run('--config', str(cfg), '--out', str(out))
    assert load_class_freq(str(out)).tolist() == [3, 1, 2]
    assert re.search(r'cfg\.py:train_dataloader$',
                     load_class_freq_meta(str(out))['source'])
    # A subset is counted as sampled (first 4 samples: 0, 2, 0, 1).
    run('--config', str(cfg), '--out', str(out), '--cfg-options',
        'train_dataloader.dataset.indices=4')
    assert load_class_freq(str(out)).tolist() == [2, 1, 1]
