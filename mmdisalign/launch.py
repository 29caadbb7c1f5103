"""Process-group start-up shared by ``tools/train.py``, ``tools/test.py`` and
the launch scripts ``tools/dist_*.sh`` / ``tools/slurm_*.sh``.

mmengine 0.10.7 starts a multi-process run in ``Runner.setup_env`` with
``init_dist(launcher)``, which calls ``torch.cuda.set_device`` before it
creates the process group, for every launcher. On a machine without an
accelerator that raises, so a CPU run (gloo) needs its process group created
before the ``Runner`` is built; ``setup_env`` then skips ``init_dist``
because ``torch.distributed`` is already initialised. The ``Runner`` also
wraps the model as ``DistributedDataParallel(device_ids=[LOCAL_RANK])``,
which DDP rejects for a module on the CPU: CPU runs need ``device_ids=None``.

:func:`setup_distributed` does both and checks the launch environment first,
so that a bad launch stops with a message instead of hanging:

- ``--launcher pytorch`` without the variables that torchrun sets,
- ``--launcher none`` inside a torchrun job (each process would train
  alone),
- the master port already taken (SLURM and MPI launches, checked by rank 0;
  ``tools/dist_train.sh`` checks it before torchrun with
  ``python -m mmdisalign.launch check-port``),
- fewer data samples than processes (:class:`DataSizeCheckHook`, which
  :func:`build_runner` registers in the runner of both tools).

With a GPU, the process group is left to mmengine as usual; the SLURM
variables are still translated first (``MASTER_ADDR`` without ``scontrol``
when it is missing).

Command line, for the shell scripts. Importing this module needs only the
standard library (torch and mmengine are imported when used), so the
launchers run the file directly, without importing the package (which
imports torch)::

    python path/to/mmdisalign/launch.py check-port 29500
    python path/to/mmdisalign/launch.py first-host 'node[03-05],gpu7'

``python -m mmdisalign.launch ...`` works too, more slowly.
"""
import argparse
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
from typing import Any, Dict, List, Mapping, Optional

# DataSizeCheckHook is defined on first access (module __getattr__ below).
__all__ = [  # noqa: F822
    'DEFAULT_PORT', 'LAUNCHERS', 'LaunchError', 'add_launcher_args',
    'set_local_rank_env', 'parse_first_host', 'first_host', 'port_in_use',
    'check_port_free', 'find_free_port', 'slurm_env', 'mpi_env',
    'cpu_only', 'cpu_model_wrapper_cfg', 'setup_distributed',
    'check_num_samples', 'DataSizeCheckHook', 'build_runner',
    'teardown_distributed'
]

#: torch.distributed's default master port, also upstream's ``PORT``.
DEFAULT_PORT = 29500
#: The values of ``--launcher`` (as in the upstream tools).
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: What torchrun (``torch.distributed.run``) exports to every worker.
_TORCHRUN_VARS = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


class LaunchError(RuntimeError):
    """The launch environment cannot start the requested run."""


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--launcher`` and ``--local-rank`` / ``--local_rank``.

    ``torch.distributed.launch`` passes ``--local-rank=N`` (torch >= 2.0) or
    ``--local_rank=N`` (older torch); torchrun passes nothing and exports
    ``LOCAL_RANK``. Both spellings are accepted.

    Args:
        parser (argparse.ArgumentParser): The parser to extend.
    """
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher: none (one process), pytorch (torchrun, '
        'tools/dist_train.sh), slurm (srun, tools/slurm_train.sh) or mpi')
    parser.add_argument(
        '--local-rank',
        '--local_rank',
        dest='local_rank',
        type=int,
        default=0,
        help='local rank, passed by torch.distributed.launch; sets '
        'LOCAL_RANK unless that is already set')


def set_local_rank_env(local_rank: int) -> str:
    """Export ``LOCAL_RANK`` from ``--local-rank`` unless already set.

    Args:
        local_rank (int): The value of ``--local-rank``.

    Returns:
        str: The value of ``LOCAL_RANK`` afterwards.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
    return os.environ['LOCAL_RANK']


def parse_first_host(nodelist: str) -> str:
    """Return the first host of a SLURM node list without ``scontrol``.

    Handles the usual compressed forms: ``'node7'``, ``'a,b'``,
    ``'cn[003-005,009],gpu1'`` (first: ``cn003``; zero padding kept) and
    ``'rack[1-2]-n[4-5]'`` (first: ``rack1-n4``).

    Args:
        nodelist (str): A SLURM node list (``SLURM_JOB_NODELIST``).

    Returns:
        str: The first host name.

    Raises:
        ValueError: If ``nodelist`` is empty or its brackets do not match.
    """
    text = nodelist.strip() if isinstance(nodelist, str) else ''
    if not text:
        raise ValueError(f'Empty SLURM node list: {nodelist!r}')
    host = []
    i = 0
    while i < len(text) and text[i] != ',':
        if text[i] == '[':
            end = text.find(']', i)
            if end < 0:
                raise ValueError(
                    f'Unbalanced "[" in SLURM node list {nodelist!r}')
            first = re.split(r'[,-]', text[i + 1:end], maxsplit=1)[0]
            if not first:
                raise ValueError(
                    f'Empty range in SLURM node list {nodelist!r}')
            host.append(first)
            i = end + 1
        elif text[i] == ']':
            raise ValueError(f'Unbalanced "]" in SLURM node list {nodelist!r}')
        else:
            host.append(text[i])
            i += 1
    if not host:
        raise ValueError(f'No host in SLURM node list {nodelist!r}')
    return ''.join(host)


def first_host(nodelist: str) -> str:
    """Return the first host of a SLURM node list.

    Uses ``scontrol show hostnames`` when ``scontrol`` is on ``PATH`` (as
    upstream does), else :func:`parse_first_host`.

    Args:
        nodelist (str): A SLURM node list.

    Returns:
        str: The first host name.
    """
    if shutil.which('scontrol'):
        out = subprocess.run(['scontrol', 'show', 'hostnames', nodelist],
                             capture_output=True,
                             text=True)
        hosts = out.stdout.split()
        if out.returncode == 0 and hosts:
            return hosts[0]
    return parse_first_host(nodelist)


def _check_port_number(port: Any) -> int:
    """Return ``port`` as an int in 1..65535, else raise ValueError."""
    try:
        value = int(str(port))
    except ValueError:
        raise ValueError(f'Invalid port {port!r}: not an integer') from None
    if not 0 < value < 65536:
        raise ValueError(f'Invalid port {port!r}: must be in 1..65535')
    return value


def port_in_use(port: int, host: str = '') -> bool:
    """Whether a TCP server could not listen on ``host:port`` now.

    It binds a socket with ``SO_REUSEADDR``, as torch's TCPStore does, so a
    port that only lingers in ``TIME_WAIT`` after an earlier run counts as
    free.

    Args:
        port (int): The port.
        host (str): The address to bind; ``''`` means all interfaces.
            Defaults to ''.

    Returns:
        bool: True if binding failed with "address already in use".
    """
    port = _check_port_number(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def find_free_port(host: str = '') -> int:
    """Return a port that is free now (chosen by the operating system).

    Args:
        host (str): The address to bind. Defaults to '' (all interfaces).

    Returns:
        int: A free port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(port: int, host: str = '', variable: str = 'PORT') -> None:
    """Raise :class:`LaunchError` if ``port`` is taken on this machine.

    Call it on the machine of rank 0 (the master) before starting the
    processes: torchrun would fail later with a long traceback, and in a
    SLURM or MPI job the other ranks would connect to whatever holds the
    port and wait until the timeout.

    Args:
        port (int): The master port.
        host (str): The address to bind. Defaults to '' (all interfaces).
        variable (str): Name of the setting that chose the port, for the
            message. Defaults to 'PORT'.

    Raises:
        LaunchError: If the port is in use.
        ValueError: If ``port`` is not a valid port number.
    """
    port = _check_port_number(port)
    if port_in_use(port, host):
        raise LaunchError(
            f'Master port {port} is already in use on {socket.gethostname()} '
            '(another training job, or an earlier one still running?). '
            f'Choose a free port with {variable}=<port>, e.g. {variable}='
            f'{find_free_port(host)}.')


def _int_env(env: Mapping[str, str], name: str, launcher: str) -> int:
    """Read a non-negative integer variable, or raise LaunchError."""
    value = env.get(name)
    if value is None:
        raise LaunchError(
            f'--launcher {launcher} needs the environment variable {name}, '
            'which is not set; start the run with the matching tool '
            '(tools/slurm_train.sh for slurm, mpirun for mpi).')
    try:
        number = int(value)
    except ValueError:
        raise LaunchError(
            f'{name}={value!r} is not an integer (--launcher {launcher})'
        ) from None
    if number < 0:
        raise LaunchError(f'{name}={value!r} is negative')
    return number


def slurm_env(env: Optional[Mapping[str, str]] = None,
              port: Optional[int] = None) -> Dict[str, str]:
    """Translate the variables of an ``srun`` task for torch.distributed.

    ``RANK`` = ``SLURM_PROCID``, ``WORLD_SIZE`` = ``SLURM_NTASKS``,
    ``LOCAL_RANK`` = ``SLURM_LOCALID``; ``MASTER_ADDR`` (unless set) is the
    first host of ``SLURM_STEP_NODELIST`` (else ``SLURM_NODELIST``, else
    ``SLURM_JOB_NODELIST``), where ``srun`` starts task 0; ``MASTER_PORT``
    is ``port`` if given, else ``MASTER_PORT``, else 29500, as in mmengine.

    Args:
        env (Mapping[str, str], optional): The environment. Defaults to
            None (``os.environ``).
        port (int, optional): The master port (``env_cfg.dist_cfg.port``).
            Defaults to None.

    Returns:
        dict[str, str]: The variables to export.

    Raises:
        LaunchError: If a SLURM variable is missing or inconsistent.
    """
    env = os.environ if env is None else env
    rank = _int_env(env, 'SLURM_PROCID', 'slurm')
    world_size = _int_env(env, 'SLURM_NTASKS', 'slurm')
    local_rank = _int_env(env, 'SLURM_LOCALID', 'slurm')
    if rank >= world_size:
        raise LaunchError(f'SLURM_PROCID={rank} is not below '
                          f'SLURM_NTASKS={world_size}')
    out = dict(
        RANK=str(rank), WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(local_rank))
    if port is not None:
        out['MASTER_PORT'] = str(_check_port_number(port))
    else:
        out['MASTER_PORT'] = str(
            _check_port_number(env.get('MASTER_PORT', DEFAULT_PORT)))
    if env.get('MASTER_ADDR'):
        out['MASTER_ADDR'] = env['MASTER_ADDR']
    else:
        for name in ('SLURM_STEP_NODELIST', 'SLURM_NODELIST',
                     'SLURM_JOB_NODELIST'):
            if env.get(name):
                out['MASTER_ADDR'] = first_host(env[name])
                break
        else:
            raise LaunchError(
                '--launcher slurm needs MASTER_ADDR or a SLURM node list '
                '(SLURM_STEP_NODELIST, SLURM_NODELIST, SLURM_JOB_NODELIST); '
                'none is set.')
    return out


def mpi_env(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Translate Open MPI's variables for torch.distributed.

    Args:
        env (Mapping[str, str], optional): The environment. Defaults to
            None (``os.environ``).

    Returns:
        dict[str, str]: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
        ``MASTER_PORT`` (default 29500) and ``MASTER_ADDR``.

    Raises:
        LaunchError: If a variable is missing (``MASTER_ADDR`` must be set
            by the user, as for mmengine).
    """
    env = os.environ if env is None else env
    out = dict(
        RANK=str(_int_env(env, 'OMPI_COMM_WORLD_RANK', 'mpi')),
        WORLD_SIZE=str(_int_env(env, 'OMPI_COMM_WORLD_SIZE', 'mpi')),
        LOCAL_RANK=str(_int_env(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 'mpi')),
        MASTER_PORT=str(
            _check_port_number(env.get('MASTER_PORT', DEFAULT_PORT))))
    if not env.get('MASTER_ADDR'):
        raise LaunchError('--launcher mpi needs MASTER_ADDR (the host of '
                          'rank 0) in the environment.')
    out['MASTER_ADDR'] = env['MASTER_ADDR']
    return out


def cpu_only() -> bool:
    """Whether mmengine sees no accelerator it can launch a run on.

    True without a CUDA, NPU, MLU or MUSA device (CPU, or Apple MPS): then
    mmengine's ``init_dist`` would fail in ``torch.cuda.set_device``, the
    process group must be created here (gloo), and mmengine's AMP is not
    available.

    Returns:
        bool: True for a CPU run.
    """
    from mmengine.device import get_device
    return get_device() in ('cpu', 'mps')


def cpu_model_wrapper_cfg(cfg: Any) -> Dict[str, Any]:
    """Make the Runner build its DDP wrapper with ``device_ids=None``.

    Without ``model_wrapper_cfg`` the Runner builds
    ``MMDistributedDataParallel(device_ids=[LOCAL_RANK],
    broadcast_buffers=False, find_unused_parameters=...)``; this sets the
    same config explicitly, with ``device_ids=None``. A given
    ``model_wrapper_cfg`` of a DDP subclass gets ``device_ids=None`` unless
    it sets ``device_ids`` itself; other wrappers are left alone.

    Args:
        cfg (Config): The config; changed in place.

    Returns:
        dict: The resulting ``model_wrapper_cfg``.
    """
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return cfg.model_wrapper_cfg
    wrapper_type = wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    if isinstance(wrapper_type, type) and issubclass(
            wrapper_type, DistributedDataParallel):
        wrapper_cfg.setdefault('device_ids', None)
    return wrapper_cfg


def _dist_cfg(cfg: Any) -> Dict[str, Any]:
    """``cfg.env_cfg.dist_cfg`` as a plain dict (empty if unset)."""
    env_cfg = cfg.get('env_cfg') or {}
    return dict(env_cfg.get('dist_cfg') or {})


def _check_torchrun_env(env: Mapping[str, str]) -> None:
    """Raise unless the variables torchrun exports are all set."""
    missing = [name for name in _TORCHRUN_VARS if not env.get(name)]
    if missing:
        raise LaunchError(
            f'--launcher pytorch expects the variables torchrun exports to '
            f'every process, but {", ".join(missing)} '
            f'{"is" if len(missing) == 1 else "are"} not set. Start the run '
            'with tools/dist_train.sh (or torchrun --nproc_per_node=N '
            'tools/train.py CONFIG --launcher pytorch); for one process, '
            'use --launcher none.')


def setup_distributed(cfg: Any, launcher: str) -> bool:
    """Check the launch and, on a CPU, start the process group (gloo).

    Call it after the config is complete and before the ``Runner`` is
    built. For ``'slurm'`` and ``'mpi'`` it exports ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
    rank 0 checks that the master port is free. Without an accelerator it
    then creates the gloo process group (with ``env_cfg.dist_cfg.timeout``
    if set) and makes the DDP wrapper use ``device_ids=None``
    (:func:`cpu_model_wrapper_cfg`); with one, mmengine starts the process
    group as usual.

    Args:
        cfg (Config): The complete config; changed in place on a CPU.
        launcher (str): One of :data:`LAUNCHERS`.

    Returns:
        bool: True if this call created the process group.

    Raises:
        ValueError: If ``launcher`` is unknown.
        LaunchError: If the environment does not fit the launcher or the
            master port is taken.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'Unknown launcher {launcher!r}; expected one of '
                         f'{LAUNCHERS}')
    env = os.environ
    if launcher == 'none':
        world_size = env.get('WORLD_SIZE', '1')
        if world_size.isdigit() and int(world_size) > 1:
            raise LaunchError(
                f'This process belongs to a job of WORLD_SIZE={world_size} '
                'processes (torchrun?), but --launcher is none: every '
                'process would train its own copy. Pass --launcher pytorch.')
        return False
    dist_cfg = _dist_cfg(cfg)
    if launcher == 'slurm':
        env.update(slurm_env(env, port=dist_cfg.get('port')))
    elif launcher == 'mpi':
        env.update(mpi_env(env))
    else:
        _check_torchrun_env(env)
        set_local_rank_env(0)
    if launcher in ('slurm', 'mpi') and env['RANK'] == '0':
        check_port_free(
            int(env['MASTER_PORT']),
            variable='MASTER_PORT' if launcher == 'mpi' else 'PORT')
    if not cpu_only():
        return False

    import torch.distributed as dist
    cpu_model_wrapper_cfg(cfg)
    if dist.is_initialized():
        return False
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    dist.init_process_group(
        backend='gloo',
        init_method='env://',
        rank=int(env['RANK']),
        world_size=int(env['WORLD_SIZE']),
        **kwargs)
    return True


def check_num_samples(num_samples: int, world_size: int, name: str) -> None:
    """Raise if a dataset cannot give every process at least one sample.

    mmengine's ``DefaultSampler`` pads the index list by repeating samples
    until every process has the same number, so a data set smaller than the
    number of processes would silently train (or evaluate) on copies.

    Args:
        num_samples (int): Length of the data set.
        world_size (int): Number of processes.
        name (str): Which data set (e.g. ``'train_dataloader'``).

    Raises:
        ValueError: If the data set is empty or smaller than
            ``world_size``.
    """
    if num_samples == 0:
        raise ValueError(f'{name}.dataset is empty: check its data_root, '
                         'ann_file and filters.')
    if num_samples < world_size:
        raise ValueError(
            f'{name}.dataset has {num_samples} sample(s) but the run has '
            f'{world_size} processes: each process needs at least one '
            'sample (the sampler would fill the others with copies). Use '
            f'at most {num_samples} processes or a larger data set.')


def _make_data_size_check_hook() -> type:
    """Define :class:`DataSizeCheckHook` (needs mmengine, hence lazily)."""
    from mmengine.hooks import Hook

    class DataSizeCheckHook(Hook):
        """Stop when a data set is smaller than the number of processes.

        Runs in ``before_run``, when ``Runner.train()`` / ``val()`` /
        ``test()`` has built its loops (and data loaders) and before any
        weight is loaded or any batch is drawn, on every rank (all ranks see
        the same lengths, so all of them stop together instead of one
        hanging). ``tools/train.py`` and ``tools/test.py`` register it.
        """

        priority = 'VERY_HIGH'

        def before_run(self, runner) -> None:
            """Check the built train, val and test data sets.

            Args:
                runner (Runner): The runner.
            """
            for name in ('train', 'val', 'test'):
                loop = getattr(runner, f'_{name}_loop', None)
                dataloader = getattr(loop, 'dataloader', None)
                dataset = getattr(dataloader, 'dataset', None)
                if dataset is None:
                    continue
                try:
                    num_samples = len(dataset)
                except TypeError:  # an iterable data set without a length
                    continue
                check_num_samples(num_samples, runner.world_size,
                                  f'{name}_dataloader')

    DataSizeCheckHook.__module__ = __name__
    return DataSizeCheckHook


def _data_size_check_hook() -> type:
    """:class:`DataSizeCheckHook`, defined on the first call."""
    hook = globals().get('DataSizeCheckHook')
    if hook is None:
        hook = _make_data_size_check_hook()
        globals()['DataSizeCheckHook'] = hook
    return hook


def build_runner(cfg: Any) -> Any:
    """Build the ``Runner`` of ``tools/train.py`` and ``tools/test.py``.

    The runner type of the config (``runner_type``, else mmengine's
    ``Runner``), with :class:`DataSizeCheckHook` registered; the log names
    the version and folder of the mmdisalign in use. Call it after
    :func:`setup_distributed`.

    Args:
        cfg (Config): The complete config.

    Returns:
        Runner: The runner, ready for ``train()`` or ``test()``.
    """
    import mmdisalign
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.register_hook(_data_size_check_hook()())
    package_dir = os.path.dirname(os.path.abspath(mmdisalign.__file__))
    runner.logger.info(
        f'mmdisalign {mmdisalign.__version__} from {package_dir}')
    return runner


def teardown_distributed(own_group: bool) -> None:
    """Destroy the process group if :func:`setup_distributed` created it.

    Args:
        own_group (bool): What :func:`setup_distributed` returned.
    """
    if own_group:
        import torch.distributed as dist
        dist.destroy_process_group()


def __getattr__(name: str) -> Any:
    """Build :class:`DataSizeCheckHook` on first access (PEP 562).

    This keeps ``import mmdisalign.launch`` free of torch and mmengine, so
    that the shell launchers can run this file as a script in a fraction of
    a second.
    """
    if name == 'DataSizeCheckHook':
        return _data_size_check_hook()
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _main(argv: Optional[List[str]] = None) -> int:
    """Command line for the shell launchers; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog='python -m mmdisalign.launch',
        description='Checks used by tools/dist_train.sh and friends')
    sub = parser.add_subparsers(dest='command', required=True)
    port = sub.add_parser('check-port', help='fail if a port is in use')
    port.add_argument('port', help='the master port')
    port.add_argument('--host', default='', help='address to bind')
    port.add_argument(
        '--variable', default='PORT', help='setting named in the message')
    host = sub.add_parser(
        'first-host', help='print the first host of a SLURM node list')
    host.add_argument('nodelist')
    args = parser.parse_args(argv)
    try:
        if args.command == 'check-port':
            check_port_free(args.port, args.host, args.variable)
        else:
            print(first_host(args.nodelist))
    except (LaunchError, ValueError) as e:
        print(f'Error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(_main())
