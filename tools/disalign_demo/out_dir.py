"""Output folders of the toy data builders: never someone else's data.

:func:`claim_out_dir` lets a builder write only into a new or empty folder,
or into a folder holding its own build with the same arguments (a finished
one, rebuilt with identical, seeded content, or an interrupted one). A
folder with other data, or with a build of other arguments, is refused
before anything is written; nothing is deleted.
"""
import json
import os
import os.path as osp

__all__ = ['BUILT_NAME', 'claim_out_dir', 'describe_differences']

#: The builder and its arguments (written before the first file).
BUILT_NAME = '.built.json'


def describe_differences(there: dict, here: dict, word: str = 'asked') -> str:
    """``"key: <value there> there, <value here> asked, ..."`` for every
    key whose value differs between a recorded run or build (``there``)
    and the one asked for (``here``), keys sorted."""
    return ', '.join(f'{k}: {there.get(k)!r} there, {here.get(k)!r} {word}'
                     for k in sorted(set(there) | set(here))
                     if there.get(k) != here.get(k))


def _read(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def claim_out_dir(out_dir: str, builder: str, args: dict) -> None:
    """Check that ``builder`` may write into ``out_dir``; mark it as its.

    Args:
        out_dir (str): The output folder.
        builder (str): The builder's name (recorded with the arguments).
        args (dict): The build arguments (JSON-serialisable).

    Raises:
        FileExistsError: ``out_dir`` holds files of another tool or a
            build of other arguments (the message names the differences).
    """
    record = json.loads(json.dumps(dict(builder=builder, args=args)))
    marker = osp.join(out_dir, BUILT_NAME)
    hint = ('nothing was written; build into a new (or empty) directory, '
            'or remove this one yourself if it is no longer needed')
    entries = sorted(os.listdir(out_dir)) if osp.isdir(out_dir) else []
    if [e for e in entries if e != BUILT_NAME]:
        found = _read(marker)
        if found is None:
            raise FileExistsError(
                f'{out_dir} is not empty and holds no build of {builder} '
                f'({len(entries)} entries, e.g. {entries[0]!r}); {hint}')
        if found != record:
            old = found.get('args', {}) if isinstance(found, dict) else {}
            changes = describe_differences(old, record['args'])
            raise FileExistsError(
                f'{out_dir} holds a build of '
                f'{found.get("builder") if isinstance(found, dict) else "?"}'
                f' with other options ({changes}); {hint}')
    os.makedirs(out_dir, exist_ok=True)
    with open(marker, 'w') as f:
        # the same record: an interrupted build is completed by a rerun
        json.dump(record, f)
