"""Small helpers shared by the task adapters (no downstream import)."""
import json
import os
import os.path as osp
from typing import Any, List, Optional, Sequence, Union

__all__ = ['class_name', 'listed', 'read_json_file', 'unwrap_datasets']


def class_name(index: int, classes: Optional[Sequence[str]]) -> str:
    """``"3 ('bag')"``, or ``"3"`` without a name, for messages."""
    if classes is not None and index < len(classes):
        return f'{index} ({classes[index]!r})'
    return str(index)


def listed(items: Sequence[Any], limit: int = 10, sep: str = ', ') -> str:
    """At most ``limit`` items for a message: ``'a, b, ... (3 more)'``."""
    more = len(items) - limit
    return sep.join(str(i) for i in items[:limit]) + (f'{sep}... ({more} more)'
                                                      if more > 0 else '')


def unwrap_datasets(dataset: Any) -> List[Any]:
    """The innermost datasets of dataset wrappers: every member of a
    ``ConcatDataset``-like wrapper (``datasets``), the inner dataset of a
    repeat or class-balanced one (``dataset``) once."""
    datasets = getattr(dataset, 'datasets', None)
    if isinstance(datasets, (list, tuple)):
        return [inner for d in datasets for inner in unwrap_datasets(d)]
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        return unwrap_datasets(inner)
    return [dataset]


def read_json_file(path: Union[str, 'os.PathLike[str]'],
                   what: str,
                   hint: str = '') -> Any:
    """Load a JSON file; every failure names the file.

    Args:
        path (str | PathLike): The file.
        what (str): What the file is, for messages (e.g.
            'class-frequency file').
        hint (str): Appended to the "not found" message (how to make the
            file). Defaults to ''.

    Returns:
        Any: The parsed JSON value.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path!r}{hint}')
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f'{path} is not valid JSON: {error.msg} at line '
                         f'{error.lineno} column {error.colno}') from error
    except (OSError, UnicodeDecodeError) as error:
        raise OSError(f'cannot read {what} {path}: {error}') from error
