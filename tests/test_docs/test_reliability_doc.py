"""docs/reliability.md: enough rows, every named test exists."""
import os.path as osp
import re

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

MIN_ROWS = 70
ROW = re.compile(r'^\|(?P<cells>.*)\|\s*$')
TEST = re.compile(r'`(tests/[\w/]+\.py)::(\w+)`')


def _rows():
    with open(osp.join(REPO, 'docs', 'reliability.md')) as f:
        lines = f.read().splitlines()
    rows = []
    for line in lines:
        match = ROW.match(line)
        if match is None:
            continue
        cells = [c.strip() for c in match.group('cells').split('|')]
        if cells[0] in ('area', '') or set(cells[0]) <= set('-'):
            continue
        rows.append(cells)
    return rows


def test_enough_rows_each_with_an_existing_test():
    rows = _rows()
    assert len(rows) >= MIN_ROWS, (
        f'docs/reliability.md has {len(rows)} rows, fewer than {MIN_ROWS}')
    missing = []
    for cells in rows:
        assert len(cells) == 4, f'a row needs 4 cells: {cells}'
        tests = TEST.findall(cells[3])
        assert tests, f'row without a test: {cells}'
        for path, name in tests:
            full = osp.join(REPO, path)
            if not osp.isfile(full):
                missing.append(f'{path} (file)')
                continue
            with open(full) as f:
                if not re.search(rf'^\s*def {name}\(', f.read(), re.M):
                    missing.append(f'{path}::{name}')
    assert not missing, f'tests named in docs/reliability.md: {missing}'


def test_no_silent_or_raw_outcome():
    for cells in _rows():
        outcome = cells[2].lower()
        assert not re.search(r'\b(silent(ly)?|raw traceback)\b', outcome), (
            f'a row whose outcome is silent or raw: {cells}')
