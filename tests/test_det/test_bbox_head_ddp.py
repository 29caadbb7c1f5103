"""The fc_cls hook of DisAlignConvFCBBoxHeadMixin under
DistributedDataParallel: 2 CPU processes (gloo), a stage-2 step of a
DisAlignShared4Conv1FCBBoxHead (all but the calibration frozen) on
different RoIs per rank. DDP averages exactly the single-process gradients
of the calibration, and the frozen tensors stay bit-identical."""
import datetime
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

C = 3
CFG = dict(
    type='DisAlignShared4Conv1FCBBoxHead',
    in_channels=4,
    roi_feat_size=2,
    conv_out_channels=8,
    fc_out_channels=8,
    num_classes=C,
    norm_cfg=dict(type='GN', num_groups=2, requires_grad=True),
    loss_cls=dict(
        type='GRWCrossEntropyLoss',
        class_freq=[40, 8, 2],
        rho=0.8,
        num_classes=C,
        with_background=True))


def build_head():
    """The same head in every process: a fixed seed, an off-identity
    calibration (so that every calibration tensor gets a gradient)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmdisalign.det  # noqa: F401
    init_default_scope('mmdet')
    torch.manual_seed(0)
    head = MODELS.build(CFG)
    head.init_weights()
    with torch.no_grad():
        head.calibration.alpha.uniform_(-0.5, 0.5)
        head.calibration.beta.uniform_(-0.5, 0.5)
        head.calibration.confidence_layer.weight.uniform_(-0.5, 0.5)
    for name, param in head.named_parameters():
        param.requires_grad_(name.startswith('calibration.'))
    return head


def batch(rank):
    gen = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(6, 4, 2, 2, generator=gen)
    labels = torch.randint(0, C + 1, (6, ), generator=gen)
    return x, labels


def loss_of(head, x, labels, model=None):
    """The GRW loss of ``model(x)`` (the head, or its DDP wrapper)."""
    cls_score, _ = (model or head)(x)
    return head.loss_cls(cls_score, labels, torch.ones(len(labels)))


def _worker(rank, world_size, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60))
    from torch.nn.parallel import DistributedDataParallel
    head = build_head()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    ddp = DistributedDataParallel(head, device_ids=None)
    optimizer = torch.optim.SGD(
        [p for p in head.parameters() if p.requires_grad], lr=0.1)
    loss = loss_of(head, *batch(rank), model=ddp)
    loss.backward()
    grads = {
        n: p.grad.clone()
        for n, p in head.named_parameters() if p.requires_grad
    }
    optimizer.step()
    torch.save(
        dict(
            grads=grads,
            before=before,
            after={
                k: v.clone()
                for k, v in head.state_dict().items()
            }), os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip the slow interpreter exit; the results are saved


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_averages_the_calibration_gradients(tmp_path):
    mp.spawn(
        _worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]

    # Single process: the mean of the two ranks' gradients.
    expected = {}
    for rank in range(2):
        head = build_head()
        loss_of(head, *batch(rank)).backward()
        for n, p in head.named_parameters():
            if p.requires_grad:
                expected[n] = expected.get(n, 0) + p.grad / 2
    assert sorted(expected) == [
        'calibration.alpha', 'calibration.beta', 'calibration.confidence.bias',
        'calibration.confidence.weight'
    ]
    for res in results:
        assert sorted(res['grads']) == sorted(expected)
        for n, grad in expected.items():
            assert grad.abs().sum() > 0, n
            torch.testing.assert_close(
                res['grads'][n], grad, rtol=1e-5, atol=1e-7)
        changed = {
            k
            for k in res['after']
            if not torch.equal(res['after'][k], res['before'][k])
        }
        assert changed == set(expected)
    for k in results[0]['after']:
        assert torch.equal(results[0]['after'][k], results[1]['after'][k])
