"""Import isolation, the counterpart of the extras ``[cls]``, ``[seg]`` and
``[det]`` of pyproject.toml.

``import mmdisalign`` loads none of mmpretrain, mmseg and mmdet. Each task
adapter works with only its own library installed and then loads only that
one. With all three installed, the upstream libraries import each other
(optional imports of their own), so there an adapter must load nothing
beyond what its upstream library loads by itself. Every check runs in a
fresh interpreter; an import finder that refuses the other libraries
stands for "not installed".
"""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK_LIBRARIES = ('mmpretrain', 'mmseg', 'mmdet')
#: Each adapter and the one task library it may import.
ADAPTERS = dict(
    cls=('mmdisalign.cls', 'mmpretrain'),
    seg=('mmdisalign.seg', 'mmseg'),
    det=('mmdisalign.det', 'mmdet'))

PROBE = '''
import importlib, json, sys

class NotInstalled:
    """Import finder: the blocked top-level packages do not exist."""

    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)

modules, BLOCKED, libraries = (json.loads(arg) for arg in sys.argv[1:])
sys.meta_path.insert(0, NotInstalled())
loaded = []
for module in modules:
    importlib.import_module(module)
    tops = {name.partition('.')[0] for name in sys.modules}
    loaded.append(sorted(tops & set(libraries)))
print(json.dumps(loaded))
'''


def loaded_task_libraries(modules, blocked=()):
    """Import ``modules`` one after the other in a fresh interpreter where
    the ``blocked`` packages cannot be imported; the task libraries in
    ``sys.modules`` after each import."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    args = [json.dumps(list(a)) for a in (modules, blocked, TASK_LIBRARIES)]
    result = subprocess.run(
        [sys.executable, '-c', PROBE] + args,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_imports_no_task_library():
    assert loaded_task_libraries(['mmdisalign']) == [[]]


@pytest.mark.parametrize('task', sorted(ADAPTERS))
def test_adapter_works_with_its_extra_only(task):
    """With the other task libraries absent (only ``mmdisalign[task]``
    installed), the adapter imports and loads only its own library."""
    module, library = ADAPTERS[task]
    others = [lib for lib in TASK_LIBRARIES if lib != library]
    assert loaded_task_libraries([module], others) == [[library]]


@pytest.mark.parametrize('task', sorted(ADAPTERS))
def test_adapter_adds_no_task_library_to_its_upstream(task):
    """With every library installed, the adapter loads no task library
    beyond those its upstream library loads by itself: mmseg 1.2.2 imports
    mmdet and mmpretrain, mmdet 3.3.0 mmpretrain and mmpretrain 1.2.0 mmdet
    when they are installed (optional imports of their own)."""
    module, library = ADAPTERS[task]
    upstream, adapter = loaded_task_libraries([f'{library}.models', module])
    assert library in upstream
    assert adapter == upstream
