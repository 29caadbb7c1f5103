"""Helpers of ``benchmarks/gpu_check.sh`` (standard library only).

Sub-commands::

    stub-mmcv SRC OUT          copy mmcv's Python package SRC (the sdist's
                               ``mmcv/`` folder) to OUT/mmcv with a stand-in
                               ``mmcv._ext`` whose every op raises
    prune-mmcv ROOT OPS        keep only the CUDA kernels of OPS (e.g.
                               ``nms,roi_align``) in the unpacked sdist ROOT
    check-mmcv-ops             compare mmcv's CUDA nms and roi_align with
                               torchvision's on random data (needs CUDA)
    preflight FILE...          the named files exist, every config
                               parses, the benchmarks import what they use
    requires SITE              check that every requirement of the
                               distributions installed in SITE is
                               importable here (exit 1 if one is missing)
    bench-notes JSON           key numbers of a benchmark's ``--json``
    sync-notes JSON            key numbers of ``sync_check.py --json``
    table ROWS                 print the summary table of the rows file

The stand-in ``_ext`` lets mmdet / mmseg / mmpretrain import while mmcv's
compiled ops build: the classification and segmentation models call no
mmcv op, and any call raises a ``RuntimeError`` naming the op, so nothing
can silently run without them.

``prune-mmcv`` shortens the CUDA build from every kernel of mmcv (58 ``.cu``
files) to the ones named: the other ``.cu`` files are deleted, their
sections of ``pytorch/cuda/cudabind.cpp`` (the ``REGISTER_DEVICE_IMPL`` of
their CUDA implementations) removed, and the three op wrappers that call
their CUDA code directly are compiled as in a CPU build. Every op keeps its
CPU implementation and its Python binding; calling a removed CUDA kernel
raises mmcv's own error ("implementation for device cuda not found", "not
compiled with GPU support").
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import sys

STUB = '''"""Stand-in for mmcv's compiled ops (benchmarks/gpu_check_tools.py).

mmcv's ops are being compiled; until then every op raises.
"""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)

    def missing(*args, **kwargs):
        raise RuntimeError(
            f'mmcv op {name!r} called, but this mmcv has no compiled ops '
            '(stand-in _ext of benchmarks/gpu_check.sh)')

    return missing
'''

#: The CUDA source file of each op that ``prune-mmcv`` can keep, and the
#: ``*_impl`` functions its section of cudabind.cpp registers.
CUDA_OPS = {
    'nms': (['nms_cuda.cu'], ['nms_impl']),
    'roi_align': (['roi_align_cuda.cu'],
                  ['roi_align_forward_impl', 'roi_align_backward_impl']),
}

#: Op wrappers (``pytorch/*.cpp``) that call CUDA code of their op directly,
#: not through cudabind.cpp's registry, under ``#ifdef MMCV_WITH_CUDA``
#: (found with ``ldd -r`` on a pruned build). Without their kernels they are
#: compiled as in a CPU build: on a CUDA tensor they raise mmcv's "not
#: compiled with GPU support".
DIRECT_CUDA_CALLERS = ('nms_rotated.cpp', 'nms_quadri.cpp', 'spconv_ops.cpp')
UNDEF = '#undef MMCV_WITH_CUDA  // benchmarks/gpu_check_tools.py prune-mmcv\n'

REGISTER = re.compile(r'^REGISTER_DEVICE_IMPL\(\s*(\w+)\s*,')


def stub_mmcv(src: str, out: str) -> None:
    dst = osp.join(out, 'mmcv')
    if osp.isdir(dst):
        shutil.rmtree(dst)
    shutil.copytree(
        src, dst, ignore=shutil.ignore_patterns('csrc', '*.so', '__pycache__'))
    with open(osp.join(dst, '_ext.py'), 'w') as f:
        f.write(STUB)
    print(f'mmcv Python package with a stand-in _ext in {dst}')


def split_sections(lines):
    """Split cudabind.cpp into its header and per-op sections.

    A section ends with its last ``REGISTER_DEVICE_IMPL(...);`` statement
    (statements may span lines); the header is everything before the
    first declaration (the includes).
    """
    header, sections, current = [], [], []
    i = 0
    while i < len(lines) and (lines[i].startswith('#')
                              or not lines[i].strip()):
        header.append(lines[i])
        i += 1
    in_register = False
    registered = []
    while i < len(lines):
        line = lines[i]
        match = REGISTER.match(line)
        if match:
            registered.append(match.group(1))
            in_register = True
        elif in_register and line.strip() and not line.startswith(' ') and \
                not REGISTER.match(line):
            # first line after a group of registrations: new section
            sections.append((current, registered))
            current, registered = [], []
            in_register = False
        current.append(line)
        i += 1
    if current:
        sections.append((current, registered))
    return header, sections


def prune_mmcv(root: str, ops: str) -> None:
    keep = [o for o in ops.split(',') if o]
    unknown = set(keep) - set(CUDA_OPS)
    if unknown:
        sys.exit(f'prune-mmcv: no rule for {sorted(unknown)}; known: '
                 f'{sorted(CUDA_OPS)}')
    cuda_dir = osp.join(root, 'mmcv', 'ops', 'csrc', 'pytorch', 'cuda')
    files = {f for op in keep for f in CUDA_OPS[op][0]}
    impls = {i for op in keep for i in CUDA_OPS[op][1]}
    present = {n for n in os.listdir(cuda_dir) if n.endswith('.cu')}
    if present == files:
        print(f'prune-mmcv: already pruned to {sorted(files)}')
        return
    pytorch_dir = osp.dirname(cuda_dir)
    for name in DIRECT_CUDA_CALLERS:
        path = osp.join(pytorch_dir, name)
        with open(path) as f:
            text = f.read()
        if 'MMCV_WITH_CUDA' not in text:
            sys.exit(f'prune-mmcv: {path} has no MMCV_WITH_CUDA any more')
        with open(path, 'w') as f:
            f.write(UNDEF + text)
    removed = 0
    for name in sorted(os.listdir(cuda_dir)):
        if name.endswith('.cu') and name not in files:
            os.remove(osp.join(cuda_dir, name))
            removed += 1
    missing = [f for f in files if not osp.isfile(osp.join(cuda_dir, f))]
    if missing:
        sys.exit(f'prune-mmcv: {missing} not in {cuda_dir}')
    path = osp.join(cuda_dir, 'cudabind.cpp')
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)
    header, sections = split_sections(lines)
    kept, found = [], set()
    for text, registered in sections:
        if set(registered) & impls:
            if not set(registered) <= impls:
                sys.exit(f'prune-mmcv: a section registers {registered}, '
                         f'more than {sorted(impls)}')
            kept.append(''.join(text))
            found |= set(registered)
    if found != impls:
        sys.exit(f'prune-mmcv: sections of {sorted(impls - found)} not found '
                 'in cudabind.cpp')
    with open(path, 'w') as f:
        f.write(''.join(header) + '\n' + '\n'.join(kept))
    print(f'prune-mmcv: kept {sorted(files)} and {len(kept)} cudabind '
          f'section(s) ({sorted(found)}); removed {removed} .cu file(s) and '
          f'{len(sections) - len(kept)} section(s); CPU-only: '
          f'{", ".join(DIRECT_CUDA_CALLERS)}')


def check_mmcv_ops(device: str = 'cuda') -> None:
    """mmcv's nms / roi_align against torchvision's (on the GPU: CUDA)."""
    import torch
    import torchvision
    from mmcv.ops import nms, roi_align
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2000, 2, generator=g) * 800
    wh = torch.rand(2000, 2, generator=g) * 200 + 1
    boxes = torch.cat([xy, xy + wh], 1).to(device)
    scores = torch.rand(2000, generator=g).to(device)
    _, keep = nms(boxes, scores, 0.5)
    ref = torchvision.ops.nms(boxes, scores, 0.5)
    # the same algorithm; IoUs within rounding of 0.5 may decide otherwise
    differ = len(set(keep.tolist()) ^ set(ref.tolist()))
    assert differ <= max(2, len(ref) // 100), \
        f'nms keeps {len(keep)} boxes, torchvision {len(ref)}, {differ} differ'
    feats = torch.randn(2, 16, 64, 64, generator=g).to(device)
    feats.requires_grad_()
    index = torch.randint(0, 2, (100, 1), generator=g).float()
    rois = torch.cat([index, boxes[:100].cpu() / 16], 1).to(device)
    out = roi_align(feats, rois, (7, 7), 1 / 8, 0, 'avg', True)
    ref = torchvision.ops.roi_align(feats, rois, (7, 7), 1 / 8, 0, True)
    diff = (out - ref).abs().max().item()
    assert diff < 1e-4, f'roi_align differs by {diff}'
    out.sum().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()
    print(
        f'mmcv {device} ops ok: nms keeps {len(keep)} boxes ({differ} differ '
        f'from torchvision), roi_align max difference {diff:.2e}, '
        'backward ok')


def preflight(paths) -> int:
    """Static checks before spending device time (seconds, on a CPU)."""
    import importlib
    problems = []
    for path in paths:
        if not osp.isfile(path):
            problems.append(f'missing file {path}')
    here = osp.dirname(osp.abspath(__file__))
    sys.path.insert(0, here)
    sys.path.insert(0, osp.dirname(here))
    from mmengine.config import Config
    configs = [p for p in paths if p.startswith('configs') or '/configs/' in p]
    for name in ('seg_deeplabv3plus', 'det_mask_rcnn'):
        module = importlib.import_module(name)
        for attr in ('STAGE2_CONFIG', 'CONFIGS'):
            value = getattr(module, attr, None)
            if isinstance(value, str):
                configs.append(value)
            elif isinstance(value, dict):
                configs.extend(value.values())
    for path in configs:
        if not osp.isfile(path):
            problems.append(f'missing config {path}')
            continue
        try:
            Config.fromfile(path)
        except Exception as exc:  # noqa: BLE001 - report every config
            problems.append(f'{path}: {type(exc).__name__}: {exc}')
    for module, names in (
        ('mmdisalign.engine.hooks.freeze_hook', ['DisAlignFreezeHook']),
        ('mmdisalign.engine.hooks', ['enable_stage2_fastpath']),
        ('mmdisalign.models.calibration', ['is_calibration']),
        ('cls_resnet50', ['SPEC']),
        ('sync_check', ['main']),
    ):
        try:
            mod = importlib.import_module(module)
            for name in names:
                getattr(mod, name)
        except (ImportError, AttributeError) as exc:
            problems.append(f'{module}: {exc}')
    for line in problems:
        print(f'PREFLIGHT  {line}')
    print(f'preflight: {len(paths)} files, {len(configs)} configs, '
          f'{len(problems)} problem(s)')
    return 1 if problems else 0


#: Requirements met by another distribution of the same modules.
ALIASES = {
    'opencv-python': 'opencv-python-headless',
    'modelindex': 'model-index',
}


def requires(site: str) -> int:
    """Requirements of the distributions in ``site`` against this Python."""
    from importlib import metadata

    from packaging.requirements import Requirement
    missing, conflicts, count = [], [], 0
    for dist in metadata.distributions(path=[site]):
        count += 1
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate({'extra': ''}):
                continue
            version = None
            for name in (req.name, ALIASES.get(req.name.lower())):
                if not name:
                    continue
                try:
                    version = metadata.version(name)
                    break
                except metadata.PackageNotFoundError:
                    pass
            who = f'{dist.metadata["Name"]} {dist.version}'
            if version is None:
                missing.append(f'{who} needs {text}')
            elif req.specifier and not req.specifier.contains(
                    version, prereleases=True):
                conflicts.append(f'{who} needs {text}, found {version}')
    for line in missing:
        print(f'MISSING   {line}')
    for line in conflicts:
        print(f'CONFLICT  {line} (warning)')
    print(f'requires: {count} distributions in {site}, {len(missing)} '
          f'missing, {len(conflicts)} version conflict(s)')
    return 1 if missing else 0


def _fmt_ratio(value):
    return '-' if value is None else f'{value:.2f}x'


def bench_notes(path: str) -> str:
    """One line of key numbers from a benchmark's JSON."""
    with open(path) as f:
        res = json.load(f)
    ratios = res.get('ratios', {})
    notes = []
    for mode in ('stage2', 'stage2-fast'):
        r = ratios.get(mode, {})
        if 'time_over_forward' in r:
            notes.append(f'{mode}/fwd {_fmt_ratio(r["time_over_forward"])}')
    for mode in ('stage2', 'stage2-fast'):
        r = ratios.get(mode, {})
        if 'time' in r:
            notes.append(f'{mode}/s1 {_fmt_ratio(r["time"])}')
    step = res.get('step', {})
    if 'forward' in step and 'stage2' in step:
        notes.append(f'step s2 {step["stage2"]["median"] * 1e3:.1f} ms, '
                     f'fwd {step["forward"]["median"] * 1e3:.1f} ms')
    inf = res.get('inference', {})
    if 'calibration_share' in inf:
        notes.append(f'calib {inf["calibration_share"] * 100:.2f} % of infer')
    mem = res.get('memory', {})
    peaks = []
    for mode in ('stage1', 'stage2', 'forward'):
        m = mem.get(mode, {})
        total = m.get('total_peak_bytes') or m.get('peak_bytes')
        if total:
            peaks.append(f'{mode} {total / 2**30:.2f}')
    if peaks:
        notes.append('peak GiB ' + ' / '.join(peaks))
    return '; '.join(notes) or 'no numbers'


def sync_notes(path: str) -> str:
    with open(path) as f:
        res = json.load(f)
    if not res.get('counted'):
        return f'{res["runs"]} runs on the CPU, not counted'
    per = []
    for r in res['results']:
        per.append(f'{r["task"]}/{r["mode"]}/{r["amp"]} '
                   f'{r["total"]}({r["by_origin"].get("mmdisalign", 0)})')
    return (f'mmdisalign {res["mmdisalign"]} of {res["total"]} syncs in '
            f'{res["runs"]} runs; total(ours) per run: ' + ', '.join(per))


def table(rows_path: str) -> None:
    rows = []
    with open(rows_path) as f:
        for line in f:
            parts = line.rstrip('\n').split('\t')
            if len(parts) == 4:
                rows.append(parts)
    head = ('part', 'status', 'time', 'key numbers')
    widths = [
        max(len(head[i]), *(len(r[i]) for r in rows)) if rows else len(head[i])
        for i in range(3)
    ]
    fmt = '| {:<%d} | {:<%d} | {:>%d} | {} |' % tuple(widths)
    print(fmt.format(*head))
    print('|' + '|'.join('-' * (w + 2) for w in widths) + '|---|')
    for r in rows:
        print(fmt.format(*r))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('stub-mmcv')
    p.add_argument('src')
    p.add_argument('out')
    p = sub.add_parser('prune-mmcv')
    p.add_argument('root')
    p.add_argument('ops')
    p = sub.add_parser('check-mmcv-ops')
    p.add_argument('--device', default='cuda')
    p = sub.add_parser('requires')
    p.add_argument('site')
    p = sub.add_parser('preflight')
    p.add_argument('files', nargs='+')
    p = sub.add_parser('bench-notes')
    p.add_argument('json')
    p = sub.add_parser('sync-notes')
    p.add_argument('json')
    p = sub.add_parser('table')
    p.add_argument('rows')
    args = parser.parse_args(argv)
    if args.cmd == 'stub-mmcv':
        stub_mmcv(args.src, args.out)
    elif args.cmd == 'prune-mmcv':
        prune_mmcv(args.root, args.ops)
    elif args.cmd == 'check-mmcv-ops':
        check_mmcv_ops(args.device)
    elif args.cmd == 'requires':
        return requires(args.site)
    elif args.cmd == 'preflight':
        return preflight(args.files)
    elif args.cmd == 'bench-notes':
        print(bench_notes(args.json))
    elif args.cmd == 'sync-notes':
        print(sync_notes(args.json))
    else:
        table(args.rows)
    return 0


if __name__ == '__main__':
    sys.exit(main())
