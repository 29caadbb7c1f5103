"""Time and memory of one stage-1 vs one stage-2 training step (toy CNN).

The model is a small CNN (a stem conv and ``--depth`` conv3x3 + BN + ReLU
blocks of ``--width`` channels, global average pooling), a linear classifier
and a :class:`~mmdisalign.models.calibration.DisAlignCalibration` on top.
Both modes run the same forward graph on the same batch:

- ``stage1``: every parameter trainable, BN layers in train mode;
- ``stage2``: frozen as ``DisAlignFreezeHook`` freezes (its own
  ``plan_freeze``): only the calibration is trainable, the BN layers of the
  frozen part are in eval mode.

One step is ``zero_grad`` + forward + cross-entropy + backward + SGD step
(momentum 0.9, weight decay 5e-4 over all parameters, as mmengine's default
optimizer constructor builds it).

Time: median and spread (25th-75th percentile, min, max) of ``--repeats``
steps after ``--warmup`` steps, in this process; on CUDA every step is
followed by ``torch.cuda.synchronize()``.

Peak memory: measured in a fresh subprocess per mode, so that neither mode
inherits the other's allocator state. The subprocess builds the model, runs
one ``no_grad`` forward on the batch, and takes a baseline there; it then
runs ``--memory-steps`` training steps and reports the peak above that
baseline:

- CPU (Linux): the resident-set high-water mark ``VmHWM`` of
  ``/proc/self/status``, reset to the current resident set at the baseline
  by writing ``5`` to ``/proc/self/clear_refs``; the result is ``VmHWM``
  after the steps minus ``VmRSS`` at the baseline. The baseline holds the
  model, the batch and whatever the allocator kept from the inference
  forward, so the delta is what training adds: activations saved for
  backward, gradients, optimizer state (momentum), allocator slack. It is
  page-granular and includes non-tensor memory, so use a batch large enough
  for activations to dominate. Where ``clear_refs`` cannot be written, the
  fallback is the ``ru_maxrss`` delta (``getrusage``), which reads 0 when an
  earlier peak (e.g. during imports) was higher than the training one.
- CUDA: ``torch.cuda.max_memory_allocated()`` during the steps (peak stats
  reset at the baseline) minus ``torch.cuda.memory_allocated()`` at the
  baseline: exact tensor bytes, excluding the caching allocator's reserve.

Usage::

    python benchmarks/toy_stage_step.py --device cpu --width 64 --depth 6 \
        --image-size 64 --batch-size 32 --repeats 20
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# _bench_utils also puts the repository root on sys.path
from _bench_utils import maxrss_kib, reset_peak_rss, rss_kib, summarize, sync

from mmdisalign.engine.hooks.freeze_hook import plan_freeze
from mmdisalign.models.calibration import DisAlignCalibration


class ToyCNN(nn.Module):
    """Conv + BN + ReLU blocks, a linear classifier and a calibration."""

    def __init__(self, width: int, depth: int, num_classes: int) -> None:
        super().__init__()
        layers = [
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True)
        ]
        for i in range(depth):
            stride = 2 if i % 2 == 1 else 1
            layers += [
                nn.Conv2d(width, width, 3, stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True)
            ]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.backbone = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)
        self.calibration = DisAlignCalibration(num_classes, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        return self.calibration(self.fc(feats), feats)


def build(args, mode: str):
    """Model, optimizer and batch for ``mode`` ('stage1' or 'stage2')."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = ToyCNN(args.width, args.depth, args.num_classes).to(device)
    model.train()
    if mode == 'stage2':
        plan = plan_freeze(model)
        params = dict(model.named_parameters())
        for name in plan.frozen:
            params[name].requires_grad_(False)
        for module in plan.frozen_norms.values():
            module.eval()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(
        args.batch_size, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, args.num_classes, (args.batch_size, ), device=device)
    return model, optimizer, x, y


def step(model, optimizer, x, y) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()


def time_mode(args, mode: str) -> dict:
    """Per-step wall times (seconds) of ``mode`` in this process."""
    model, optimizer, x, y = build(args, mode)
    for _ in range(args.warmup):
        step(model, optimizer, x, y)
    sync(args.device)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step(model, optimizer, x, y)
        sync(args.device)
        times.append(time.perf_counter() - start)
    return summarize(times)


def memory_mode(args, mode: str) -> dict:
    """Peak memory of training steps above an inference baseline (bytes)."""
    model, optimizer, x, y = build(args, mode)
    with torch.no_grad():
        model(x)
    sync(args.device)
    if args.device.startswith('cuda'):
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.memory_steps):
            step(model, optimizer, x, y)
        sync(args.device)
        peak = torch.cuda.max_memory_allocated() - base
        method = 'cuda.max_memory_allocated'
    else:
        reset = reset_peak_rss()
        base = rss_kib('VmRSS') if reset else maxrss_kib()
        for _ in range(args.memory_steps):
            step(model, optimizer, x, y)
        peak_kib = rss_kib('VmHWM') if reset else maxrss_kib()
        peak = (peak_kib - base) * 1024
        method = ('VmHWM (reset by clear_refs) - VmRSS'
                  if reset else 'ru_maxrss delta')
    return dict(peak_bytes=peak, method=method)


def memory_in_subprocess(args, mode: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), '--memory-only', mode]
    for key in ('device', 'width', 'depth', 'num_classes', 'image_size',
                'batch_size', 'threads', 'memory_steps'):
        cmd += [f'--{key.replace("_", "-")}', str(getattr(args, key))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--depth', type=int, default=6)
    parser.add_argument('--num-classes', type=int, default=100)
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--memory-steps', type=int, default=2)
    parser.add_argument(
        '--threads',
        type=int,
        default=0,
        help='torch CPU threads (0: leave the default)')
    parser.add_argument(
        '--memory-only', choices=['stage1', 'stage2'], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.memory_only:
        print(json.dumps(memory_mode(args, args.memory_only)))
        return
    if args.device.startswith('cuda'):
        name = torch.cuda.get_device_name(torch.device(args.device))
    else:
        name = f'CPU, {torch.get_num_threads()} threads'
    print(f'device: {args.device} ({name}); torch {torch.__version__}')
    print(f'model: width {args.width}, depth {args.depth}, '
          f'{args.num_classes} classes; batch {args.batch_size} x 3 x '
          f'{args.image_size} x {args.image_size}; {args.repeats} repeats '
          f'after {args.warmup} warm-up steps')
    results = {}
    for mode in ('stage1', 'stage2'):
        t = time_mode(args, mode)
        m = memory_in_subprocess(args, mode)
        results[mode] = (t, m)
        print(f'{mode}: step {t["median"] * 1e3:.2f} ms median '
              f'(p25 {t["p25"] * 1e3:.2f}, p75 {t["p75"] * 1e3:.2f}, '
              f'min {t["min"] * 1e3:.2f}, max {t["max"] * 1e3:.2f}); '
              f'peak memory above inference {m["peak_bytes"] / 2**20:.1f} '
              f'MiB ({m["method"]})')
    (t1, m1), (t2, m2) = results['stage1'], results['stage2']
    mem_ratio = (
        m2['peak_bytes'] /
        m1['peak_bytes'] if m1['peak_bytes'] > 0 else float('nan'))
    print(f'stage2/stage1: time {t2["median"] / t1["median"]:.3f}, '
          f'peak memory {mem_ratio:.3f}')


if __name__ == '__main__':
    main()
