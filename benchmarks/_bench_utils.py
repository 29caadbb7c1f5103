"""Shared measuring helpers of the benchmark scripts.

Nothing here knows about a task. The scripts ``cls_resnet50.py``,
``seg_deeplabv3plus.py`` and ``det_mask_rcnn.py`` describe their models
with a :class:`TaskSpec` and call :func:`main`, which prints, in one run:

- inference latency of the DisAlign model vs the same model with the
  upstream head (same weights, the calibration at its initialisation),
  timed in alternation (A, B, A, B, ...) so that load changes of a shared
  machine hit both alike; plus the share of the DisAlign model's time spent
  inside its calibration modules (forward hooks, a low-noise estimate of
  the same overhead);
- time of one training step (``model.train_step`` with an mmengine
  ``OptimWrapper``: data preprocessor, forward, loss, backward, SGD step)
  for stage 1 (the upstream model, everything trainable) and stage 2 (the
  DisAlign model frozen by :class:`DisAlignFreezeHook` itself, frozen norm
  layers in eval mode), optionally also stage 2 with the fast path of
  :mod:`mmdisalign.engine.hooks.stage2_fastpath_hook`, timed in alternation;
- the physical limit of a stage-2 step: a no-grad forward of the same
  stage-2 model on the same batch, computing what the step computes before
  its backward pass (``model.data_preprocessor(batch, True)`` then
  ``model(..., mode='loss')`` under ``torch.no_grad()``, the frozen norm
  layers in eval mode as in the step, no fast path), timed in the same
  alternation; each stage-2 mode is reported as a ratio of it (target: at
  most 1.1x; the fast path, which skips work whose result cannot change
  the update, can go below 1);
- peak memory of one training step of each mode (and of the no-grad
  forward), each in a fresh subprocess (see :func:`measure_step_memory`).

On CUDA every timed call is preceded and followed by
``torch.cuda.synchronize()`` and nothing else synchronises inside the
timed calls; peak memory is ``torch.cuda.max_memory_allocated``.
``--amp fp16|bf16`` (CUDA only) trains with mmengine's ``AmpOptimWrapper``
and runs the forward reference and the inference under the same autocast.

Times are medians with the 25th-75th percentile and min-max spread.
"""
import argparse
import copy
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # running from a source checkout
    sys.path.insert(0, _ROOT)

#: Training-step modes, in the order they are reported: the stage-1 model;
#: the stage-2 model frozen by the freeze hook; the same with the default
#: stage-2 fast path; the same with the fast path that also skips the loss
#: of a frozen mmdet RPN (``skip_rpn_loss=True``).
MODES = ('stage1', 'stage2', 'stage2-fast', 'stage2-fast-rpn')
#: The no-grad forward of the stage-2 model: the physical limit of a stage-2
#: step (timed and measured like a mode, reported as the reference).
FORWARD = 'forward'
#: Target of the stage-2 step over the no-grad forward.
FORWARD_TARGET = 1.1


# ---------------------------------------------------------------------------
# statistics and timing
# ---------------------------------------------------------------------------
def summarize(values: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles, min and max of ``values``.

    Args:
        values (Sequence[float]): At least one value.

    Returns:
        dict: ``median``, ``p25``, ``p75``, ``min``, ``max`` and ``n``.
    """
    values = list(values)
    if not values:
        raise ValueError('summarize() needs at least one value')
    if len(values) > 1:
        q = statistics.quantiles(values, n=4, method='inclusive')
    else:
        q = values * 3
    return dict(
        median=statistics.median(values),
        p25=q[0],
        p75=q[2],
        min=min(values),
        max=max(values),
        n=len(values))


def format_ms(stats: Dict[str, float]) -> str:
    """``'123.4 ms (p25-p75 120.0-130.1, min-max 118.2-140.9, n=8)'``."""
    return (f'{stats["median"] * 1e3:.1f} ms (p25-p75 '
            f'{stats["p25"] * 1e3:.1f}-{stats["p75"] * 1e3:.1f}, min-max '
            f'{stats["min"] * 1e3:.1f}-{stats["max"] * 1e3:.1f}, '
            f'n={stats["n"]})')


def sync(device: str) -> None:
    """Wait for the device (CUDA) to finish its queued work."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def amp_context(args):
    """``torch.autocast`` of ``--amp`` (a no-op context without it)."""
    import contextlib
    if not getattr(args, 'amp', None):
        return contextlib.nullcontext()
    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16)[args.amp]
    return torch.autocast(torch.device(args.device).type, dtype=dtype)


def time_interleaved(fns: Dict[str, Callable[[], Any]],
                     repeats: int,
                     warmup: int = 1,
                     device: str = 'cpu') -> Dict[str, List[float]]:
    """Wall times of several callables, run in alternation.

    Every round calls each function once, in the given order (rotated by
    one every round, so no function always follows the same other one).
    ``warmup`` rounds come first and are not recorded.

    Args:
        fns (dict[str, Callable]): Name -> function without arguments.
        repeats (int): Recorded rounds.
        warmup (int): Unrecorded rounds before. Defaults to 1.
        device (str): Synchronised after each call. Defaults to 'cpu'.

    Returns:
        dict[str, list[float]]: Seconds per call, per name.
    """
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sync(device)
            start = time.perf_counter()
            fns[name]()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


class ModuleTimer:
    """Accumulate the wall time spent inside some modules' forward.

    Uses forward pre-hooks and hooks, so it measures exactly the calls that
    happen inside the timed model call (on CUDA it synchronises around
    each one, which slows the model a little; use it on the CPU or accept
    that).

    Args:
        modules (Sequence[nn.Module]): Modules to time (not nested in each
            other).
        device (str): Synchronised around each call. Defaults to 'cpu'.
    """

    def __init__(self, modules: Sequence[nn.Module], device: str = 'cpu'):
        self.total = 0.0
        self.calls = 0
        self._device = device
        self._start: List[float] = []
        self._handles = []
        for module in modules:
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))

    def _pre(self, module, args) -> None:
        sync(self._device)
        self._start.append(time.perf_counter())

    def _post(self, module, args, output) -> None:
        sync(self._device)
        self.total += time.perf_counter() - self._start.pop()
        self.calls += 1

    def reset(self) -> None:
        """Forget what was accumulated."""
        self.total, self.calls = 0.0, 0

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


# ---------------------------------------------------------------------------
# peak memory
# ---------------------------------------------------------------------------
def rss_kib(field: str = 'VmRSS') -> int:
    """``VmRSS`` / ``VmHWM`` of this process in KiB (Linux)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS; False where unsupported."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        rss_kib('VmHWM')
        return True
    except (OSError, KeyError):
        return False


def maxrss_kib() -> int:
    """Peak RSS of this process in KiB (``getrusage``)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc)."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


#: Environment of the memory subprocesses: glibc serves every block from
#: 64 KiB up with its own mmap and unmaps it on free, so the resident set
#: follows the live tensors instead of keeping freed blocks in the heap.
MEMORY_ENV = dict(MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')


class PeakMemory:
    """Peak memory of a block of code above the memory held before it.

    CUDA: ``torch.cuda.max_memory_allocated()`` during the block minus
    ``torch.cuda.memory_allocated()`` before it (exact tensor bytes; the
    caching allocator's reserve is not counted).

    CPU (Linux): the resident-set high-water mark ``VmHWM``, reset to the
    current resident set before the block by writing ``5`` to
    ``/proc/self/clear_refs``, minus ``VmRSS`` before the block. Page
    granular and it includes non-tensor memory; run it in a process
    started with :data:`MEMORY_ENV` so that freed tensors leave the
    resident set. Without ``clear_refs`` it falls back to the
    ``ru_maxrss`` delta, which reads 0 when an earlier peak was higher.

    Args:
        device (str): 'cpu' or 'cuda[:i]'.
    """

    def __init__(self, device: str = 'cpu') -> None:
        self.device = str(device)
        self.peak_bytes = 0
        #: CUDA: ``max_memory_allocated`` (everything the process held at
        #: the peak, model included); CPU: 0.
        self.total_peak_bytes = 0
        self.method = ''

    def __enter__(self) -> 'PeakMemory':
        sync(self.device)
        release_free_memory()
        if self.device.startswith('cuda'):
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            self.method = 'cuda.max_memory_allocated - memory_allocated'
        else:
            self._reset = reset_peak_rss()
            self._base = rss_kib('VmRSS') if self._reset else maxrss_kib()
            self.method = ('VmHWM (reset by clear_refs) - VmRSS'
                           if self._reset else 'ru_maxrss delta')
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        if self.device.startswith('cuda'):
            self.total_peak_bytes = torch.cuda.max_memory_allocated()
            self.peak_bytes = self.total_peak_bytes - self._base
        else:
            peak = rss_kib('VmHWM') if self._reset else maxrss_kib()
            self.peak_bytes = (peak - self._base) * 1024


def run_json_subprocess(argv: List[str],
                        env: Optional[Dict[str, str]] = None) -> dict:
    """Run ``python argv`` and parse the JSON of its last stdout line."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = subprocess.run(
        [sys.executable] + argv, capture_output=True, text=True, env=full_env)
    if out.returncode != 0:
        raise RuntimeError(f'subprocess {argv} failed with exit code '
                           f'{out.returncode}:\n{out.stderr[-4000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# stage 2 as the Runner does it
# ---------------------------------------------------------------------------
def quiet_logs() -> None:
    """Make mmengine's current logger print warnings and errors only."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmdisalign_bench', log_level='WARNING')


def freeze_like_runner(model: nn.Module):
    """Freeze ``model`` with :class:`DisAlignFreezeHook` itself.

    Calls the hook's ``before_train`` with a minimal runner (no stage-1
    checkpoint check, nothing distributed), which runs ``plan_freeze``,
    sets ``requires_grad=False`` and puts the frozen norm layers in eval
    mode. Call ``hook.before_train_iter(runner, i)`` after every
    ``model.train()``, as the train loops do.

    Args:
        model (nn.Module): The stage-2 model.

    Returns:
        tuple: ``(hook, runner)``.
    """
    from mmengine.logging import MMLogger

    from mmdisalign.engine.hooks.freeze_hook import DisAlignFreezeHook
    hook = DisAlignFreezeHook(check_stage1=False)
    runner = SimpleNamespace(
        model=model,
        logger=MMLogger.get_instance('mmdisalign_bench', log_level='WARNING'),
        distributed=False,
        optim_wrapper=None)
    model.train()
    hook.before_train(runner)
    return hook, runner


def machine_line(device: str) -> str:
    """One line naming the device, torch version and threads."""
    if device.startswith('cuda'):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = (f'{platform.processor() or platform.machine()}, '
                f'{os.cpu_count()} CPUs, torch threads '
                f'{torch.get_num_threads()}')
        try:
            load = ', load avg %.1f %.1f %.1f' % os.getloadavg()
        except OSError:
            load = ''
        name += load
    return f'device: {device} ({name}); torch {torch.__version__}'


# ---------------------------------------------------------------------------
# the harness
# ---------------------------------------------------------------------------
@dataclass
class TaskSpec:
    """What a task script provides to :func:`main`.

    Attributes:
        name (str): Printed title.
        add_args (Callable): ``add_args(parser)`` adds task options.
        build (Callable): ``build(args, kind) -> nn.Module`` for ``kind``
            ``'upstream'`` (the stage-1 model) or ``'disalign'`` (the
            stage-2 model). Both must be built from the same seed and
            have the same parameters except the calibration.
        make_batch (Callable): ``make_batch(args, train) -> dict`` as a
            dataloader would yield it (``inputs`` / ``data_samples``).
        optim_cfg (Callable): ``optim_cfg(args) -> dict``, an mmengine
            ``optim_wrapper`` config.
        describe (Callable): ``describe(args) -> str``, the sizes.
    """
    name: str
    add_args: Callable
    build: Callable
    make_batch: Callable
    optim_cfg: Callable
    describe: Callable


def common_parser(spec: TaskSpec, defaults: dict) -> argparse.ArgumentParser:
    """Options every task script takes (plus the task's own)."""
    parser = argparse.ArgumentParser(description=spec.name)
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument(
        '--threads',
        type=int,
        default=2,
        help='torch CPU threads (0: leave torch\'s default)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=defaults.get('repeats', 5),
        help='recorded rounds of the training-step timing')
    parser.add_argument(
        '--infer-repeats',
        type=int,
        default=defaults.get('infer_repeats', 8),
        help='recorded rounds of the inference timing')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--parts',
        default='infer,step,memory',
        help='comma-separated subset of infer,step,memory')
    parser.add_argument(
        '--modes',
        default=defaults.get('modes', ','.join(MODES[:3])),
        help=f'training-step modes, a subset of {",".join(MODES)}')
    parser.add_argument(
        '--memory-jobs',
        type=int,
        default=2,
        help='memory subprocesses run at once (after the timing)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--no-control',
        dest='control',
        action='store_false',
        help='skip the A/A control model in the inference timing')
    parser.add_argument(
        '--no-forward',
        dest='forward',
        action='store_false',
        help='skip the no-grad forward reference of the stage-2 step')
    parser.add_argument(
        '--amp',
        choices=('fp16', 'bf16'),
        help='mixed precision (CUDA only): AmpOptimWrapper for the steps, '
        'autocast for the forward reference and the inference')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument(
        '--memory-only', choices=MODES + (FORWARD, ), help=argparse.SUPPRESS)
    spec.add_args(parser)
    return parser


def build_mode(spec: TaskSpec, args, mode: str) -> SimpleNamespace:
    """Model, training step and no-grad forward of a training-step mode.

    Returns:
        SimpleNamespace: ``model``; ``step()``, one training step as the
        train loops run it; ``forward()``, a no-grad forward of the same
        model on the same batch in the same state (train mode, then the
        freeze hook's ``before_train_iter``: frozen norm layers in eval
        mode), through the data preprocessor and ``mode='loss'``: the
        step without its backward pass and parameter update.
    """
    from mmengine.optim import build_optim_wrapper
    torch.manual_seed(args.seed)
    kind = 'upstream' if mode == 'stage1' else 'disalign'
    model = spec.build(args, kind).to(args.device)
    hook = runner = None
    if mode != 'stage1':
        hook, runner = freeze_like_runner(model)
        if mode.startswith('stage2-fast'):
            from mmdisalign.engine.hooks import enable_stage2_fastpath
            report = enable_stage2_fastpath(
                model, skip_rpn_loss=mode == 'stage2-fast-rpn')
            if not args.memory_only:
                print(f'  [{mode}] fast path {report.summary()}')
    optim_cfg = spec.optim_cfg(args)
    if args.amp:
        optim_cfg = dict(
            optim_cfg,
            type='AmpOptimWrapper',
            dtype=dict(fp16='float16', bf16='bfloat16')[args.amp])
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    model.train()
    batch = spec.make_batch(args, True)

    def as_in_training():
        # as the train loops do: train mode, then the hooks
        model.train()
        if hook is not None:
            hook.before_train_iter(runner, 0)

    def step():
        as_in_training()
        optim_wrapper.zero_grad(set_to_none=True)
        return model.train_step(copy.deepcopy(batch), optim_wrapper)

    def forward():
        as_in_training()
        with torch.no_grad(), amp_context(args):
            data = model.data_preprocessor(copy.deepcopy(batch), True)
            return model(**data, mode='loss')

    return SimpleNamespace(model=model, step=step, forward=forward)


def _overheads(base: List[float], other: List[float]) -> dict:
    """Relative differences of ``other`` over ``base`` (paired lists)."""
    paired = [o / b for b, o in zip(base, other)]
    return dict(
        of_medians=statistics.median(other) / statistics.median(base) - 1,
        paired=statistics.median(paired) - 1,
        of_mins=min(other) / min(base) - 1)


def bench_inference(spec: TaskSpec, args) -> dict:
    """Latency of ``test_step`` of the upstream and the DisAlign model.

    Three models with the same weights run in alternation: the upstream
    model, a second copy of it (the A/A control: its difference to the
    first is the noise floor of this machine) and the DisAlign model (the
    calibration at its initialisation).
    """
    from mmdisalign.models.calibration import is_calibration
    torch.manual_seed(args.seed)
    upstream = spec.build(args, 'upstream').to(args.device).eval()
    state = upstream.state_dict()
    models = dict(upstream=upstream)
    if args.control:
        torch.manual_seed(args.seed)
        models['control'] = spec.build(args, 'upstream').to(args.device).eval()
        models['control'].load_state_dict(state)
    torch.manual_seed(args.seed)
    disalign = spec.build(args, 'disalign').to(args.device).eval()
    missing, unexpected = disalign.load_state_dict(state, strict=False)
    if unexpected or any('calibration' not in k for k in missing):
        raise RuntimeError('the upstream weights do not fit the DisAlign '
                           f'model: missing {missing}, unexpected '
                           f'{unexpected}')
    models['disalign'] = disalign
    calibrations = [m for m in disalign.modules() if is_calibration(m)]
    data = spec.make_batch(args, False)

    def runner(model):

        def run():
            with torch.no_grad(), amp_context(args):
                model.test_step(copy.deepcopy(data))

        return run

    times = time_interleaved({
        k: runner(m)
        for k, m in models.items()
    }, args.infer_repeats, args.warmup, args.device)
    timer = ModuleTimer(calibrations, args.device)
    for _ in range(3):
        runner(disalign)()
    calib_per_call = timer.total / 3
    calls = timer.calls // 3
    timer.remove()
    res = {k: summarize(v) for k, v in times.items()}
    res['overhead'] = _overheads(times['upstream'], times['disalign'])
    if args.control:
        res['control_difference'] = _overheads(times['upstream'],
                                               times['control'])
    res.update(
        calibration_s=calib_per_call,
        calibration_share=calib_per_call / res['disalign']['median'],
        calibration_calls=calls)
    return res


def wants_forward(args, modes: Sequence[str]) -> bool:
    """Whether the no-grad forward reference is timed and measured."""
    return args.forward and any(m != 'stage1' for m in modes)


def bench_steps(spec: TaskSpec, args, modes: Sequence[str]) -> dict:
    """Training-step times of ``modes`` and of the no-grad forward of the
    stage-2 model (key ``'forward'``), timed in alternation."""
    fns = {}
    stage2 = None
    for mode in modes:
        built = build_mode(spec, args, mode)
        fns[mode] = built.step
        if mode == 'stage2':
            stage2 = built
    if wants_forward(args, modes):
        if stage2 is None:
            stage2 = build_mode(spec, args, 'stage2')
        fns[FORWARD] = stage2.forward
    times = time_interleaved(fns, args.repeats, args.warmup, args.device)
    return {name: summarize(t) for name, t in times.items()}


def measure_step_memory(spec: TaskSpec, args, mode: str) -> dict:
    """Peak memory of one training step of ``mode`` (run in this process).

    Builds the mode, runs ``max(1, warmup)`` steps (lazy allocations:
    momentum buffers, backend workspaces), releases freed memory, and
    measures one more step with :class:`PeakMemory`: the peak above what
    the process holds between steps (model, optimizer state, batch).
    ``mode='forward'`` measures the no-grad forward of the stage-2 model
    the same way.
    """
    built = build_mode(spec, args, 'stage2' if mode == FORWARD else mode)
    call = built.forward if mode == FORWARD else built.step
    for _ in range(max(1, args.warmup)):
        call()
    with PeakMemory(args.device) as meter:
        call()
    return dict(
        peak_bytes=meter.peak_bytes,
        total_peak_bytes=meter.total_peak_bytes,
        method=meter.method)


def memory_in_subprocesses(script: str, argv: List[str], modes: Sequence[str],
                           jobs: int) -> dict:
    """:func:`measure_step_memory` of each mode, each in a fresh process
    (``jobs`` of them at once: they do not time anything)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(mode):
        return run_json_subprocess(
            [script] + list(argv) + ['--memory-only', mode], env=MEMORY_ENV)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(one, modes))
    return dict(zip(modes, results))


def _print_ratio_table(step_stats: dict, mem: dict) -> dict:
    ratios = {}
    base_t = step_stats.get('stage1', {}).get('median')
    base_m = mem.get('stage1', {}).get('peak_bytes')
    fwd_t = step_stats.get(FORWARD, {}).get('median')
    fwd_m = mem.get(FORWARD, {}).get('peak_bytes')
    for mode in MODES[1:]:
        r = {}
        if base_t and mode in step_stats:
            r['time'] = step_stats[mode]['median'] / base_t
        if base_m and mode in mem:
            r['memory'] = mem[mode]['peak_bytes'] / base_m
        if fwd_t and mode in step_stats:
            r['time_over_forward'] = step_stats[mode]['median'] / fwd_t
        if fwd_m and mode in mem:
            r['memory_over_forward'] = mem[mode]['peak_bytes'] / fwd_m
        if r:
            ratios[mode] = r
            parts = [
                f'{k} {v:.3f}x' for k, v in r.items() if 'forward' not in k
            ]
            if parts:
                print(f'  {mode} / stage1: ' + ', '.join(parts))
            parts = [
                f'{k.split("_")[0]} {v:.3f}x' for k, v in r.items()
                if 'forward' in k
            ]
            if parts:
                verdict = ('met' if r.get('time_over_forward', 0)
                           <= FORWARD_TARGET else 'NOT met')
                if 'time_over_forward' not in r:
                    verdict = 'time not measured'
                print(f'  {mode} / no-grad forward: ' + ', '.join(parts) +
                      f' (target time <= {FORWARD_TARGET}x: {verdict})')
    return ratios


def main(spec: TaskSpec,
         script: str,
         argv: Optional[List[str]] = None,
         defaults: Optional[dict] = None) -> dict:
    """Parse options and run the requested parts; print and return."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common_parser(spec, defaults or {})
    args = parser.parse_args(argv)
    if args.amp and not args.device.startswith('cuda'):
        parser.error('--amp needs --device cuda: mmengine\'s AmpOptimWrapper '
                     'does not train on the CPU')
    quiet_logs()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.memory_only:
        print(json.dumps(measure_step_memory(spec, args, args.memory_only)))
        return {}
    parts = set(args.parts.split(','))
    modes = [m for m in MODES if m in args.modes.split(',')]
    print(f'== {spec.name}')
    print(machine_line(args.device))
    print(
        spec.describe(args) + '; ' +
        (f'AMP {args.amp}' if args.amp else 'float32'))
    result = dict(
        task=spec.name,
        machine=machine_line(args.device),
        sizes=spec.describe(args),
        args=vars(args))
    start = time.perf_counter()
    if 'infer' in parts:
        res = bench_inference(spec, args)
        result['inference'] = res
        print(f'inference (test_step, {args.infer_repeats} alternating '
              'rounds):')
        print(f'  upstream head:      {format_ms(res["upstream"])}')
        if 'control' in res:
            print(f'  upstream, 2nd copy: {format_ms(res["control"])}')
        print(f'  DisAlign head:      {format_ms(res["disalign"])}')

        def pct(o):
            return (f'{o["of_medians"] * 100:+.2f} % of medians, '
                    f'{o["paired"] * 100:+.2f} % paired, '
                    f'{o["of_mins"] * 100:+.2f} % of minima')

        print(f'  DisAlign overhead (target <= 2 %): {pct(res["overhead"])}')
        if 'control_difference' in res:
            print('  A/A control (noise floor):         '
                  f'{pct(res["control_difference"])}')
        print('  time inside the calibration module(s): '
              f'{res["calibration_s"] * 1e3:.3f} ms per batch = '
              f'{res["calibration_share"] * 100:.3f} % of the DisAlign '
              f'model ({res["calibration_calls"]} call(s) per batch)')
    step_stats, mem = {}, {}
    if 'step' in parts:
        step_stats = bench_steps(spec, args, modes)
        result['step'] = step_stats
        print(f'training step (train_step, {args.repeats} alternating '
              'rounds; forward: no-grad forward of the stage-2 model, '
              'the physical limit of a stage-2 step):')
        for mode, stats in step_stats.items():
            print(f'  {mode:15s} {format_ms(stats)}')
    if 'memory' in parts:
        measured = list(modes)
        if wants_forward(args, modes):
            measured.append(FORWARD)
        mem = memory_in_subprocesses(script, argv, measured, args.memory_jobs)
        result['memory'] = mem
        print('peak memory of one training step above the memory held '
              'between steps (fresh process per mode):')
        for mode, m in mem.items():
            total = ''
            if m.get('total_peak_bytes'):
                total = (f', process peak {m["total_peak_bytes"] / 2**20:.1f}'
                         ' MiB')
            print(f'  {mode:15s} {m["peak_bytes"] / 2**20:9.1f} MiB '
                  f'({m["method"]}{total})')
    if step_stats or mem:
        print('ratios (targets: stage 2 / stage 1 time <= 0.45x, memory '
              f'<= 0.5x; stage 2 / no-grad forward time <= '
              f'{FORWARD_TARGET}x):')
        result['ratios'] = _print_ratio_table(step_stats, mem)
    result['wall_s'] = time.perf_counter() - start
    print(f'(benchmark wall time {result["wall_s"]:.0f} s)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result
