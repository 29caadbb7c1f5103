"""docs/reference.md: the required topics, six cells per row, every named
test exists, and the doc is linked from the README and the pages of the
switches."""
import os.path as osp
import re

from conftest import REPO

ROW = re.compile(r'^\|(?P<cells>.*)\|\s*$')
TEST = re.compile(r'`(tests/[\w/]+\.py)::(\w+)`')
#: Topics the table must cover (issue 14, item 4), as substrings of the
#: first cell, and the switch each names.
REQUIRED = {
    'Norm layers of the frozen stage 1': 'freeze_norm=False',
    'Weight decay on the magnitude (detection': "decay_mode='reference'",
    'Detection cosine classifier: scale': 'LearnableScaleNormedLinear',
    'LVIS class frequency': "key='instance_count'",
    'ADE20K head / body / tail groups': "'pixel_ratio'",
    'Classification composition and initialisation':
    "init_mode='reference_cls'",
}


def _read(*parts):
    with open(osp.join(REPO, *parts)) as f:
        return f.read()


def _rows():
    rows = []
    for line in _read('docs', 'reference.md').splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        cells = [c.strip() for c in match.group('cells').split('|')]
        if cells[0] in ('topic', '') or set(cells[0]) <= set('-'):
            continue
        rows.append(cells)
    return rows


def test_rows_name_their_switch_and_existing_tests():
    rows = _rows()
    missing = []
    for cells in rows:
        assert len(cells) == 6, f'a row needs 6 cells: {cells}'
        tests = TEST.findall(cells[5])
        assert tests, f'row without a test: {cells[0]}'
        for path, name in tests:
            full = osp.join(REPO, path)
            if not osp.isfile(full):
                missing.append(f'{path} (file)')
                continue
            if not re.search(rf'^\s*def {name}\(', _read(path), re.M):
                missing.append(f'{path}::{name}')
    assert not missing, f'tests named in docs/reference.md: {missing}'
    for topic, switch in REQUIRED.items():
        found = [c for c in rows if topic in c[0]]
        assert len(found) == 1, f'one row on {topic!r}, found {len(found)}'
        assert switch in found[0][4], (topic, found[0][4])


def test_linked():
    assert '(docs/reference.md)' in _read('README.md')
    for page in ('calibration.md', 'stage2.md', 'det.md'):
        assert '(reference.md)' in _read('docs', page), page
