"""Reading a JSON input file with errors that name the file and the spot."""
import json
import os
import os.path as osp
from typing import Any, Union

__all__ = ['read_json_file']


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
