"""Host-device synchronisations of a stage-2 training step, per task.

For each task, the stage-2 model of its benchmark script (``cls``:
mmpretrain ResNet-50 + ``DisAlignLinearClsHead`` + GRW loss; ``seg``:
DeepLabV3+ R-50 + ``DisAlignDepthwiseSeparableASPPHead``; ``det``: Mask
R-CNN R-50-FPN + ``DisAlignShared2FCBBoxHead``), frozen by
``DisAlignFreezeHook`` itself (and optionally with the stage-2 fast path),
runs ``--warmup`` training steps as the train loops run them (train mode,
the hook's ``before_train_iter``, ``train_step`` with an mmengine optim
wrapper), then ``--steps`` more under
``torch.cuda.set_sync_debug_mode('warn')``. In that mode every CUDA
operation that makes the host wait for the device (``.item()``, ``.cpu()``,
a blocking copy, ``nonzero``, a boolean mask index, ...) raises a warning;
the script records the Python stack of each one and attributes it to the
innermost frame outside torch itself: ``mmdisalign`` when code of this
package called the synchronising operation, otherwise ``mmengine``,
``mmdet``, ``mmseg``, ``mmpretrain``, ``benchmark`` (this harness) or
``other``. Synchronisations that only pass through mmdisalign code further
up the stack (e.g. a DisAlign head calling mmdet's loss) are listed
separately and not counted against it.

Exit status 1 when any synchronisation comes from mmdisalign code (CUDA).
On a machine without CUDA there is no sync debug mode: the script runs the
same steps on the CPU (so the code path is checked), says so, and exits 0.

Usage::

    python benchmarks/sync_check.py --device cuda
    python benchmarks/sync_check.py --device cuda --tasks det \\
        --modes stage2,stage2-fast --amp none,bf16 --json sync.json
    python benchmarks/sync_check.py  # CPU: runs the steps, counts nothing
"""
import argparse
import collections
import json
import os
import os.path as osp
import sys
import time
import traceback
import warnings

import torch

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)
import _bench_utils as bu

#: task -> (benchmark module, small sizes: the code path is what matters).
TASKS = {
    'cls': ('cls_resnet50', ['--batch-size', '8', '--image-size', '64']),
    'seg': ('seg_deeplabv3plus', ['--batch-size', '2', '--crop', '128']),
    'det':
    ('det_mask_rcnn', ['--batch-size', '2', '--size', '256', '--num-gts',
                       '4']),
}
#: Package folder names recognised in a frame's file name, innermost first.
ORIGINS = ('mmdisalign', 'mmengine', 'mmdet', 'mmseg', 'mmpretrain', 'mmcv')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Count host-device synchronisations of a stage-2 step')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--tasks', default='cls,seg,det')
    parser.add_argument(
        '--modes',
        default='stage2,stage2-fast',
        help='stage-2 modes of the benchmarks (stage2, stage2-fast, '
        'stage2-fast-rpn)')
    parser.add_argument(
        '--amp',
        default=None,
        help='comma-separated precisions among none, fp16, bf16 (default: '
        'none,bf16 on CUDA, none on the CPU)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    cuda = args.device.startswith('cuda')
    if args.amp is None:
        args.amp = 'none,bf16' if cuda else 'none'
    args.amp = [a for a in args.amp.split(',') if a]
    if not cuda and set(args.amp) - {'none'}:
        parser.error('--amp fp16/bf16 needs CUDA (AmpOptimWrapper)')
    return args


class SyncRecorder:
    """Record the Python stack of every sync-debug warning.

    Use as a context manager around the code to check; it sets
    ``torch.cuda.set_sync_debug_mode('warn')`` on entry (CUDA) and restores
    the previous mode and warning filters on exit.

    Args:
        cuda (bool): Whether to switch the sync debug mode on.
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.stacks = []
        self._torch_dir = osp.dirname(torch.__file__) + os.sep

    def _hook(self, message, category, filename, lineno, file=None, line=None):
        if 'synchroniz' in str(message):
            self.stacks.append(traceback.extract_stack()[:-1])
        else:
            self._show(message, category, filename, lineno, file, line)

    def __enter__(self) -> 'SyncRecorder':
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter('always')
        self._show = warnings.showwarning
        warnings.showwarning = self._hook
        if self.cuda:
            self._mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode('warn')
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode(self._mode)
            torch.cuda.synchronize()
        self._catch.__exit__(*exc)

    def origin(self, frame) -> str:
        """The package a frame belongs to (see :data:`ORIGINS`)."""
        path = frame.filename.replace('\\', '/')
        for name in ORIGINS:
            if f'/{name}/' in path:
                return name
        if path.startswith(HERE.replace('\\', '/') + '/'):
            return 'benchmark'
        return 'other'

    def caller(self, stack):
        """Innermost frame outside torch and the warnings machinery."""
        for frame in reversed(stack):
            name = frame.filename
            if name.startswith(self._torch_dir) or name == __file__ or \
                    name.endswith(f'{os.sep}warnings.py'):
                continue
            return frame
        return stack[-1]

    def report(self) -> dict:
        """Counts by origin, sites and the ones passing through us."""
        by_origin = collections.Counter()
        sites = collections.Counter()
        through = collections.Counter()
        for stack in self.stacks:
            frame = self.caller(stack)
            origin = self.origin(frame)
            by_origin[origin] += 1
            site = (f'{origin}: {_short(frame.filename)}:{frame.lineno} '
                    f'{frame.name}')
            sites[site] += 1
            if origin != 'mmdisalign':
                ours = [f for f in stack if self.origin(f) == 'mmdisalign']
                if ours:
                    f = ours[-1]
                    through[f'{_short(f.filename)}:{f.lineno} {f.name} -> '
                            f'{site}'] += 1
        return dict(
            total=len(self.stacks),
            by_origin=dict(by_origin),
            sites=dict(sites.most_common()),
            through_mmdisalign=dict(through.most_common()))


def _short(path: str) -> str:
    """A file name from its package folder on."""
    path = path.replace('\\', '/')
    for name in ORIGINS + ('torch', 'benchmarks'):
        key = f'/{name}/'
        if key in path:
            return name + '/' + path.split(key, 1)[1]
    return osp.basename(path)


def check_one(task: str, mode: str, amp: str, args) -> dict:
    """Warm-up steps, then ``args.steps`` recorded steps; the report."""
    import importlib
    module_name, sizes = TASKS[task]
    module = importlib.import_module(module_name)
    argv = sizes + ['--device', args.device, '--warmup', str(args.warmup)]
    if amp != 'none':
        argv += ['--amp', amp]
    bargs = bu.common_parser(module.SPEC, {}).parse_args(argv)
    bargs.memory_only = None
    built = bu.build_mode(module.SPEC, bargs, mode)
    for _ in range(args.warmup):
        built.step()
    bu.sync(args.device)
    cuda = args.device.startswith('cuda')
    start = time.perf_counter()
    with SyncRecorder(cuda) as recorder:
        for _ in range(args.steps):
            built.step()
    bu.sync(args.device)
    result = recorder.report()
    result.update(
        task=task,
        mode=mode,
        amp=amp,
        steps=args.steps,
        step_s=(time.perf_counter() - start) / args.steps,
        counted=cuda)
    del built
    if cuda:
        torch.cuda.empty_cache()
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    bu.quiet_logs()
    cuda = args.device.startswith('cuda')
    print(bu.machine_line(args.device))
    if not cuda:
        print('torch.cuda.set_sync_debug_mode needs CUDA: the steps run on '
              'the CPU to check the code path; no synchronisation is '
              'counted.')
    results = []
    for task in [t for t in args.tasks.split(',') if t]:
        for mode in [m for m in args.modes.split(',') if m]:
            for amp in args.amp:
                res = check_one(task, mode, amp, args)
                results.append(res)
                ours = res['by_origin'].get('mmdisalign', 0)
                head = (f'{task} {mode} {amp}: {res["step_s"] * 1e3:.1f} ms '
                        'per step')
                if not cuda:
                    print(f'{head}; not counted (CPU)')
                    continue
                print(f'{head}; {res["total"]} synchronisation(s) in '
                      f'{res["steps"]} steps, {ours} from mmdisalign; by '
                      f'origin: {res["by_origin"]}')
                for site, n in res['sites'].items():
                    print(f'    {n:4d}  {site}')
                for site, n in res['through_mmdisalign'].items():
                    print(f'    {n:4d}  (through mmdisalign) {site}')
    ours = sum(r['by_origin'].get('mmdisalign', 0) for r in results)
    summary = dict(
        device=args.device,
        counted=cuda,
        runs=len(results),
        total=sum(r['total'] for r in results),
        mmdisalign=ours,
        results=results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
    if not cuda:
        print(f'sync check: {len(results)} run(s) on the CPU, nothing '
              'counted (sync debug mode needs CUDA)')
        return 0
    print(f'sync check: {summary["total"]} synchronisation(s) in '
          f'{len(results)} run(s) of {args.steps} steps, {ours} from '
          'mmdisalign code (required: 0)')
    return 1 if ours else 0


if __name__ == '__main__':
    sys.exit(main())
