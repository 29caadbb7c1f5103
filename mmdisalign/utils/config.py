"""Command-line helpers of the tools: configs and ``--cfg-options``.

mmengine parses a config with ``ast.parse`` and no file name, so a syntax
error reads ``File "<unknown>"``, and its ``DictAction`` unpacks
``key=value`` without a check, so ``--cfg-options key`` ends in a
``ValueError`` of the unpacking. These two helpers name the file, line and
argument instead.
"""
import ast
import os.path as osp

from mmengine.config import Config, DictAction

__all__ = ['load_config', 'CfgOptionsAction']


def _syntax_error_text(path: str, err: SyntaxError) -> str:
    where = f'{path}, line {err.lineno}'
    text = (err.text or '').rstrip('\n')
    pointer = ''
    if text and err.offset:
        pointer = '\n    ' + ' ' * (err.offset - 1) + '^'
    code = f'\n    {text}{pointer}' if text else ''
    return f'syntax error in config {where}: {err.msg}{code}'


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``; a missing file or a syntax error ends the
    tool with a message naming the file and the line.

    Args:
        path (str): The config file.

    Returns:
        Config: The config.

    Raises:
        SystemExit: The file is missing or has a syntax error (in itself or
            in a ``_base_`` file: the message names the file at fault).
    """
    if not osp.isfile(path):
        raise SystemExit(f'config file {path} not found')
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        found = _find_syntax_error(path, set())
        if found is not None:
            raise SystemExit(_syntax_error_text(*found)) from None
        raise SystemExit(f'syntax error in config {path} or a config it '
                         f'builds on: {e}') from None


def _find_syntax_error(path: str, seen: set):
    """``(file, SyntaxError)`` of the first file with a syntax error among
    ``path`` and its local ``_base_`` files, or None."""
    path = osp.abspath(path)
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        return path, err
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == '_base_'):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else bases:
                if isinstance(base, str) and '::' not in base:
                    found = _find_syntax_error(
                        osp.join(osp.dirname(path), base), seen)
                    if found is not None:
                        return found
    return None


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options KEY=VALUE ...``; an
    item without ``=`` is a usage error that names it."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or ():
            if '=' not in item:
                parser.error(f'{option_string} {item!r}: expected KEY=VALUE '
                             f'(e.g. {option_string} '
                             'train_cfg.max_epochs=1)')
        super().__call__(parser, namespace, values, option_string)
