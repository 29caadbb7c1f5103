"""Suite-wide fixtures.

mmengine keeps the default scope in a process-wide registry of
``DefaultScope`` instances: a Runner (or ``init_default_scope``) in one test
would otherwise decide where the next test's ``MODELS.build`` looks modules
up (an mmpretrain scope left behind makes mmdet modules "not registered").
Every test therefore starts and ends with no default scope; tests that need
one set it themselves.

``tools/`` is appended to ``sys.path``, so that tests import the demo
helpers of ``tools/disalign_demo`` as the tools scripts do
(``from disalign_demo import experiments``); appended, not prepended, so that
``tools/test.py`` and friends shadow nothing.
"""
import importlib.util
import os.path as osp
import re
import sys

import pytest
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')
if TOOLS not in sys.path:
    sys.path.append(TOOLS)


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    DefaultScope._instance_dict.clear()
    yield
    DefaultScope._instance_dict.clear()


_TOOL_MODULES = {}


def _import_tool(name: str):
    """Import ``tools/<name>.py`` (``name`` may hold a folder, e.g.
    ``'analysis_tools/lvis_class_freq'``) as a module, once."""
    if name not in _TOOL_MODULES:
        spec = importlib.util.spec_from_file_location(
            'mmdisalign_tools_' + name.replace('/', '_'),
            osp.join(REPO, 'tools', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOL_MODULES[name] = module
    return _TOOL_MODULES[name]


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('run_main_job')``: a script of ``tools/`` as a module."""
    return _import_tool


_DOC_SNIPPETS = {}


def read_doc_snippet(doc: str, name: str) -> str:
    """The fenced ``python`` block after ``<!-- snippet: NAME -->`` in
    ``docs/<doc>``."""
    with open(osp.join(REPO, 'docs', doc)) as f:
        text = f.read()
    match = re.search(
        rf'<!-- snippet: {re.escape(name)} -->\s*```python\n(.*?)```', text,
        re.S)
    if match is None:
        raise LookupError(f'docs/{doc} has no snippet {name!r}')
    return match.group(1)


@pytest.fixture(scope='session')
def exec_doc_snippet():
    """``exec_doc_snippet('custom_heads.md', 'cls-stacked')``: run a docs
    snippet once per session (it registers classes) and return its
    namespace."""

    def run(doc: str, name: str) -> dict:
        key = (doc, name)
        if key not in _DOC_SNIPPETS:
            namespace = {'__name__': f'docs_snippet_{name}'}
            code = compile(
                read_doc_snippet(doc, name), f'docs/{doc}#{name}', 'exec')
            exec(code, namespace)
            _DOC_SNIPPETS[key] = namespace
        return _DOC_SNIPPETS[key]

    return run
