"""The toy LVIS-format set of Fashion-MNIST scenes, LVIS evaluation, and
DisAlign end to end: stage 1 -> statistics tool -> stage 2 -> LVIS test,
through the real mmengine Runner with the shipped toy configs."""
import json
import os.path as osp

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from disalign_demo.fmnist_lvis import (FMNIST_LVIS_TRAIN, FMNIST_LVIS_VAL,
                                       build_fmnist_lvis,
                                       long_tail_instance_counts)
from mmdet.datasets import LVISV1Dataset
from mmdet.evaluation import LVISMetric
from mmdet.structures.mask import BitmapMasks  # noqa: F401
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmengine.visualization import Visualizer
from PIL import Image

from mmdisalign.det.lvis_stats import category_stats

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FMNIST = '/usr/share/datasets/fashion-mnist'
TOY = osp.join(REPO, 'configs', 'det', 'fmnist')
STAGE1 = osp.join(TOY, 'mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis.py')
STAGE2 = osp.join(TOY,
                  'mask-rcnn_r18-w16_fpn_1xb2-500_fmnist-lvis_disalign.py')
THRESHOLD = 40

pytestmark = pytest.mark.skipif(
    not osp.isfile(osp.join(FMNIST, 't10k-images-idx3-ubyte.gz')),
    reason='Fashion-MNIST (Debian package dataset-fashion-mnist) missing')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('fmnist_lvis'))
    result = build_fmnist_lvis(root, val_per_class=3, seed=0)
    result['root'] = root
    return result


def load_json(path):
    with open(path) as file:
        return json.load(file)


def test_long_tail_profile():
    assert long_tail_instance_counts(
        200, 10, 50.) == [200, 129, 84, 54, 35, 23, 15, 10, 6, 4]
    assert long_tail_instance_counts(9, 3, 9.) == [9, 3, 1]
    assert long_tail_instance_counts(5, 3, 1000.) == [5, 1, 1]  # >= 1
    with pytest.raises(ValueError, match='imbalance_ratio >= 1'):
        long_tail_instance_counts(5, 3, 0.5)


def test_annotations_are_exact(toy):
    """Union of the masks == pixels >= threshold, masks disjoint, boxes
    tight, areas exact; LVIS fields consistent with the annotations."""
    train = load_json(toy['train'])
    val = load_json(toy['val'])
    per_image = {}
    for ann in train['annotations'] + val['annotations']:
        per_image.setdefault(
            (ann['image_id'], ann['id'] <= len(train['annotations'])),
            []).append(ann)
    for split, data in (('train', train), ('val', val)):
        for image in data['images']:
            assert image['coco_url'] == image['file_name'].replace(
                '\\', '/') and image['file_name'].startswith(split + '/')
            pixels = np.asarray(
                Image.open(osp.join(toy['root'], image['file_name'])))
            assert pixels.shape == (128, 128, 3)
            gray = pixels[..., 0]
            union = np.zeros((128, 128), dtype=np.int64)
            anns = per_image.get((image['id'], split == 'train'), [])
            for ann in anns:
                mask = mask_utils.decode(ann['segmentation']).astype(bool)
                union += mask
                rows = np.flatnonzero(mask.any(1))
                cols = np.flatnonzero(mask.any(0))
                assert ann['bbox'] == [
                    cols[0], rows[0], cols[-1] - cols[0] + 1,
                    rows[-1] - rows[0] + 1
                ]
                assert ann['area'] == int(mask.sum()) > 0
            assert union.max() <= 1  # no overlap
            np.testing.assert_array_equal(
                union.astype(bool), gray >= THRESHOLD)
            present = {a['category_id'] for a in anns}
            assert set(image['neg_category_ids']) == set(range(1, 11)) - \
                present
            assert image['not_exhaustive_category_ids'] == []
    # Long-tailed training instances, balanced validation instances.
    stats = category_stats(train)
    assert stats['instance_count'] == long_tail_instance_counts(200, 10, 50.)
    assert category_stats(val)['instance_count'] == [3] * 10
    assert stats['image_count'] == toy['stats']['image_count']
    assert train['categories'] == val['categories']
    for cat, n_img, n_inst in zip(train['categories'], stats['image_count'],
                                  stats['instance_count']):
        assert cat['image_count'] == n_img
        assert cat['instance_count'] == n_inst
        assert cat['frequency'] == ('r' if n_img <= 10 else
                                    'c' if n_img <= 100 else 'f')
    assert [c['frequency'] for c in train['categories']].count('f') >= 1
    assert [c['frequency'] for c in train['categories']].count('r') >= 1


def test_seeded(tmp_path):
    kwargs = dict(n_max=4, imbalance_ratio=4., val_per_class=1, seed=3)
    a = build_fmnist_lvis(str(tmp_path / 'a'), **kwargs)
    b = build_fmnist_lvis(str(tmp_path / 'b'), **kwargs)
    assert load_json(a['train']) == load_json(b['train'])
    assert load_json(a['val']) == load_json(b['val'])
    c = build_fmnist_lvis(str(tmp_path / 'c'), **dict(kwargs, seed=4))
    assert load_json(c['train']) != load_json(a['train'])


def test_lvis_metric_of_the_ground_truth_is_one(toy):
    """Predicting the ground truth gives AP = APr = APc = APf = 1 for boxes
    and masks through mmdet's LVISMetric and the lvis API."""
    dataset = LVISV1Dataset(
        data_root=toy['root'],
        ann_file=FMNIST_LVIS_VAL,
        data_prefix=dict(img=''),
        metainfo=dict(classes=tuple(str(i) for i in range(10))),
        test_mode=True,
        pipeline=[])
    metric = LVISMetric(
        ann_file=osp.join(toy['root'], FMNIST_LVIS_VAL),
        metric=['bbox', 'segm'])
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        instances = info['instances']
        masks = np.stack([
            mask_utils.decode(inst['mask']).astype(bool) for inst in instances
        ])
        samples.append(
            dict(
                img_id=info['img_id'],
                ori_shape=(info['height'], info['width']),
                pred_instances=dict(
                    bboxes=torch.tensor([inst['bbox'] for inst in instances],
                                        dtype=torch.float32),
                    scores=torch.ones(len(instances)),
                    labels=torch.tensor(
                        [inst['bbox_label'] for inst in instances]),
                    masks=torch.from_numpy(masks))))
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    for kind in ('bbox', 'segm'):
        for key in ('AP', 'APr', 'APc', 'APf'):
            assert results[f'lvis/{kind}_{key}'] == 1.0, (kind, key)


def toy_overrides(root, work_dir, iters):
    return {
        'work_dir':
        work_dir,
        'data_root':
        root + '/',
        'train_dataloader.dataset.data_root':
        root + '/',
        'val_dataloader.dataset.data_root':
        root + '/',
        'test_dataloader.dataset.data_root':
        root + '/',
        'val_evaluator.ann_file':
        osp.join(root, FMNIST_LVIS_VAL),
        'test_evaluator.ann_file':
        osp.join(root, FMNIST_LVIS_VAL),
        'train_cfg.max_iters':
        iters,
        'train_cfg.val_interval':
        10**6,  # evaluated by runner.test()
        'default_hooks.checkpoint.interval':
        iters,
        'default_hooks.logger.interval':
        1,
        'param_scheduler': [
            dict(
                type='LinearLR',
                start_factor=0.1,
                by_epoch=False,
                begin=0,
                end=2),
            dict(
                type='MultiStepLR',
                begin=0,
                end=iters,
                by_epoch=False,
                milestones=[iters - 1],
                gamma=0.1)
        ],
        'randomness':
        dict(seed=0),
        'model.test_cfg.rcnn.max_per_img':
        100,
    }


def make_runner(path, overrides, name):
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(overrides)
    cfg.visualizer.name = name
    cfg.experiment_name = name
    return Runner.from_cfg(cfg)


@pytest.fixture(autouse=True)
def clean_instances():
    yield
    MMLogger._instance_dict.clear()
    Visualizer._instance_dict.clear()


def test_stage1_stage2_lvis_end_to_end(toy, tmp_path, load_tool):
    root = toy['root']
    iters = 4
    # Stage 1: the toy variant of the shipped stage-1 config.
    runner1 = make_runner(STAGE1,
                          toy_overrides(root, str(tmp_path / 's1'), iters),
                          'disalign_det_s1')
    runner1.train()
    ckpt = str(tmp_path / 's1' / f'iter_{iters}.pth')
    assert osp.isfile(ckpt)
    stage1 = torch.load(
        ckpt, map_location='cpu', weights_only=False)['state_dict']

    # The frequency file, written by the statistics tool.
    tool = load_tool('analysis_tools/lvis_class_freq')
    assert tool.main([osp.join(root, FMNIST_LVIS_TRAIN)]) == 0
    freq = osp.join(root, 'annotations/lvis_fmnist_train_class_freq.json')
    assert load_json(freq)['counts'] == toy['stats']['image_count']

    # Stage 2: the toy variant of the shipped stage-2 config.
    overrides = toy_overrides(root, str(tmp_path / 's2'), iters)
    overrides.update({
        'load_from': ckpt,
        'model.roi_head.bbox_head.loss_cls.class_freq': freq
    })
    runner2 = make_runner(STAGE2, overrides, 'disalign_det_s2')
    runner2.train()
    model = runner2.model
    head = model.roi_head.bbox_head
    assert type(head).__name__ == 'DisAlignShared2FCBBoxHead'
    assert type(head.loss_cls).__name__ == 'GRWCrossEntropyLoss'
    # GRW weights from the image counts of the training file, rho 0.8.
    counts = np.array(toy['stats']['image_count'], dtype=np.float64)
    raw = (counts / counts.sum())**-0.8
    np.testing.assert_allclose(
        head.loss_cls.class_weight.numpy(),
        np.append(10 * raw / raw.sum(), 1.0),
        rtol=1e-6)
    # Only the calibration trained; every stage-1 tensor (backbone, RPN,
    # box FCs, classifier, regressor, mask head, norm statistics) is
    # bit-identical to the stage-1 checkpoint.
    trainable = sorted(n for n, p in model.named_parameters()
                       if p.requires_grad)
    assert trainable == [
        'roi_head.bbox_head.calibration.alpha',
        'roi_head.bbox_head.calibration.beta',
        'roi_head.bbox_head.calibration.confidence.bias',
        'roi_head.bbox_head.calibration.confidence.weight'
    ]
    state = model.state_dict()
    assert set(state) - set(stage1) == {
        'roi_head.bbox_head.calibration.' + n
        for n in ('alpha', 'beta', 'confidence.weight', 'confidence.bias')
    }
    for key, value in stage1.items():
        assert torch.equal(state[key], value), key
    assert head.calibration.alpha.abs().sum() > 0
    assert head.calibration.beta.abs().sum() > 0
    loss_cls = runner2.message_hub.get_scalar('train/loss_cls')
    assert np.isfinite(loss_cls.current())

    # LVIS evaluation of the calibrated model (real lvis API).
    metrics = runner2.test()
    for kind in ('bbox', 'segm'):
        for key in ('AP', 'APr', 'APc', 'APf'):
            value = metrics[f'lvis/{kind}_{key}']
            assert 0.0 <= value <= 1.0, (kind, key, value)


def test_stage1_checkpoint_of_another_architecture(toy, tmp_path):
    """A stage-1 checkpoint of another model stops stage 2 with an error
    naming the missing and mismatched tensors."""
    root = toy['root']
    runner1 = make_runner(
        STAGE1,
        dict(
            toy_overrides(root, str(tmp_path / 'other'), 1), **{
                'model.backbone.base_channels': 8,
                'model.neck.in_channels': [8, 16, 32, 64],
                'model.roi_head.mask_head.num_convs': 1
            }), 'disalign_det_other')
    runner1.train()
    overrides = toy_overrides(root, str(tmp_path / 's2_other'), 1)
    overrides.update({
        'load_from':
        str(tmp_path / 'other' / 'iter_1.pth'),
        'model.roi_head.bbox_head.loss_cls.class_freq':
        str(tmp_path / 'freq.json')
    })
    from mmdisalign.det.lvis_stats import write_class_freq
    write_class_freq(
        osp.join(root, FMNIST_LVIS_TRAIN), str(tmp_path / 'freq.json'))
    runner2 = make_runner(STAGE2, overrides, 'disalign_det_s2_other')
    with pytest.raises(
            ValueError,
            match=r'(?s)does not fit the frozen part.*'
            r'Missing: roi_head\.mask_head\.convs\.1.*Shape '
            r'mismatch: backbone\.conv1\.weight'):
        runner2.train()
