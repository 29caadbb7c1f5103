"""Build step that puts ``configs/`` and ``tools/`` into the wheel.

All project metadata lives in ``pyproject.toml``; this file only adds one
step to ``build_py``: after the Python modules are copied, the folders
``configs/`` and ``tools/`` of the source tree are copied into the build as
``mmdisalign/.mim/configs`` and ``mmdisalign/.mim/tools``. That is where
``mim train mmdisalign CONFIG`` looks for the config and the train script
(openmim finds the config by its file name anywhere in the installed
package, and runs ``<package>/.mim/tools/train.py``), and where the
OpenMMLab libraries ship theirs.

Editable installs (``pip install -e .``) skip the copy: mim cannot use them
anyway (it looks in ``site-packages/mmdisalign``), so use a wheel install
for mim and ``python tools/train.py`` in a source checkout. ``MANIFEST.in``
puts both folders into the sdist, so a wheel built from the sdist
(``python -m build``) has them too.
"""
import os
import shutil
from setuptools import setup
from setuptools.command.build_py import build_py

#: Folders of the source tree copied into ``mmdisalign/.mim``.
MIM_FOLDERS = ('configs', 'tools')
#: Never copied.
IGNORED = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')
ROOT = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithMim(build_py):
    """``build_py`` that also fills ``mmdisalign/.mim``."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim_dir = os.path.join(self.build_lib, 'mmdisalign', '.mim')
        for name in MIM_FOLDERS:
            src = os.path.join(ROOT, name)
            if not os.path.isdir(src):
                raise FileNotFoundError(
                    f'{src} is missing: mmdisalign/.mim/{name} cannot be '
                    'built (an sdist made without MANIFEST.in?)')
            dst = os.path.join(mim_dir, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=IGNORED)


setup(cmdclass={'build_py': BuildPyWithMim})
