"""Stage-2 guards through tools/train.py on the tiny classification,
segmentation and detection stage-2 configs of conftest.py (upstream configs
plus the user configs of docs/launch.md): a frequency file in reversed
class order, a derived config without DisAlignFreezeHook, divergence."""
import uuid

import pytest
import torch

from mmdisalign.utils.class_freq import save_class_freq

# The tiny data's classes (conftest.CLASSES).
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
#: Where each task's config holds its GRW loss.
LOSS = {
    'mmpretrain':
    'model = dict(head=dict(loss=dict(class_freq={path!r})))',
    'mmseg':
    'model = dict(decode_head=dict(loss_decode=dict('
    'class_freq={path!r})))',
    'mmdet':
    'model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict('
    'class_freq={path!r}))))',
}
LOSS_MODULE = {
    'mmpretrain': 'head.loss_module',
    'mmseg': 'decode_head.loss_decode',
    'mmdet': 'roi_head.bbox_head.loss_cls',
}


def layer(h, task, text):
    """A config on top of the task's tiny stage-2 config."""
    return h.write(task['folder'] / f'guard_{uuid.uuid4().hex[:8]}.py',
                   "_base_ = './tiny_stage2.py'\n" + text)


def test_reversed_class_order_stops(h, task, tmp_path):
    path = str(tmp_path / 'reversed_class_freq.json')
    save_class_freq(path, list(range(10, 0, -1)), classes=CLASSES[::-1])
    cfg = layer(h, task, LOSS[task['name']].format(path=path))
    with pytest.raises(ValueError) as info:
        h.run_tool('train', cfg, '--work-dir', tmp_path / 'work')
    message = str(info.value)
    assert message.startswith("class 0 is 'T-shirt/top' in the train "
                              'dataset ')
    assert (f"but 'Ankle boot' in the class-frequency file {path!r} (used "
            f'by {LOSS_MODULE[task["name"]]})') in message
    assert not list((tmp_path / 'work').rglob('*.pth'))


def test_derived_config_without_freeze_hook_stops(h, task, tmp_path):
    cfg = layer(h, task, 'custom_hooks = []\n')
    with pytest.raises(ValueError) as info:
        h.run_tool('train', cfg, '--work-dir', tmp_path / 'work')
    message = str(info.value)
    assert 'Calibration: the model was loaded from a checkpoint' in message
    assert 'no DisAlignFreezeHook froze it' in message
    assert "custom_hooks = [dict(type='DisAlignFreezeHook')]" in message
    assert 'joint_training=True' in message
    assert not list((tmp_path / 'work').rglob('*.pth'))


@pytest.mark.parametrize('task', ['mmpretrain'], indirect=True)
def test_lr_1e12_stops_at_the_first_non_finite_loss(h, task, tmp_path):
    cfg = layer(
        h, task, 'optim_wrapper = dict(optimizer=dict(lr=1e12))\n'
        'train_cfg = dict(max_epochs=20)\n'
        'param_scheduler = []\n'
        'default_hooks = dict(checkpoint=dict(interval=1, '
        'max_keep_ckpts=100))\n')
    work_dir = tmp_path / 'work'
    with pytest.raises(FloatingPointError) as info:
        h.run_tool('train', cfg, '--work-dir', work_dir)
    message = str(info.value)
    assert message.startswith('DisAlignFreezeHook: stage 2 diverged: the '
                              'loss is ')
    assert 'head.calibration.' in message
    # 2 iterations per epoch (32 images, batch 16)
    iteration = int(message.split(' at iteration ')[1].split(' ')[0])
    epoch = int(message.split(' (epoch ')[1].split(')')[0])
    assert epoch == (iteration + 1) // 2
    # The checkpoints written before are finite; none after.
    ckpts = sorted(work_dir.glob('epoch_*.pth'))
    assert len(ckpts) == epoch - 1
    for ckpt in ckpts:
        for key, value in h.calibration(h.load(ckpt)['state_dict']).items():
            assert torch.isfinite(value).all(), (ckpt, key)
