"""custom_imports: upstream configs switched to DisAlign stage 2 by the short
user configs of docs/launch.md, trained with the upstream library's own
train script from its wheel (``site-packages/<pkg>/.mim/tools/train.py``),
in a fresh process (so ``custom_imports`` alone registers mmdisalign).

The set-up (fixture ``task`` in conftest.py) reads the user configs from
the documentation and adds a test-only layer with a tiny model and tiny
data. Checks: the upstream script finishes; the checkpoint's frozen part is
exactly the stage-1 weights (nothing re-initialised, nothing trained); the
calibration was trained; the log shows mmdisalign's freeze hook at work.
"""
import importlib
import os.path as osp


def test_upstream_train_script(h, task):
    """``python site-packages/<pkg>/.mim/tools/train.py tiny_stage2.py``."""
    package = importlib.import_module(task['name'])
    script = osp.join(
        osp.dirname(package.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(script), script
    work_dir = task['folder'] / 'upstream'
    proc = h.run([h.PYTHON, script, task['config'], '--work-dir', work_dir],
                 h.tool_env(task['folder']), task['folder'])
    h.check_ok(proc)
    assert 'DisAlignFreezeHook: ' in proc.stdout
    assert 'trainable tensors' in proc.stdout
    h.assert_disalign_checkpoint(work_dir / h.FINAL_CKPT[task['name']],
                                 task['stage1'])
