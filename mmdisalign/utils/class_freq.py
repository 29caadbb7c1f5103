"""Per-class training frequencies: the JSON file format (one object with
``format``, ``version``, ``num_classes``, ``count_type``, ``classes``,
``counts``, ``source`` and extra keys) and the GRW weights. See
docs/grw_loss.md."""
import json
import math
import numbers
import os
import os.path as osp
import tempfile
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from .misc import class_name, listed, read_json_file

__all__ = [
    'CLASS_FREQ_FORMAT', 'CLASS_FREQ_VERSION', 'save_class_freq',
    'load_class_freq', 'load_class_freq_meta', 'grw_weights', 'max_grw_rho',
    'check_class_order'
]

CLASS_FREQ_FORMAT = 'mmdisalign.class_freq'
CLASS_FREQ_VERSION = 1

_RESERVED_KEYS = ('format', 'version', 'num_classes', 'count_type', 'classes',
                  'counts', 'source')

PathType = Union[str, 'os.PathLike[str]']
ClassFreqType = Union[Sequence[float], np.ndarray, PathType, Dict[str, Any]]


def _where(source: Optional[str]) -> str:
    return f' in {source}' if source else ''


def _to_counts(values: Any,
               what: str = 'counts',
               source: Optional[str] = None) -> np.ndarray:
    """A 1-D list / tuple / array of real numbers as float64 (strings and
    bools, which numpy would convert silently, are rejected)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in 'iuf':
            raise TypeError(f'{what}{_where(source)} must hold real numbers, '
                            f'got an array of dtype {values.dtype}')
    elif isinstance(values, (list, tuple)):
        for index, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f'{what}{_where(source)} must hold real numbers, but '
                    f'entry {index} is {value!r} '
                    f'({type(value).__name__})')
    else:
        raise TypeError(f'{what}{_where(source)} must be a list, tuple or '
                        f'numpy array of numbers, got '
                        f'{type(values).__name__}')
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f'{what}{_where(source)} must be one-dimensional '
                         f'(one number per class), got shape {array.shape}')
    if array.size == 0:
        raise ValueError(f'{what}{_where(source)} is empty: need one number '
                         f'per class')
    return array


def _check_counts(counts: np.ndarray,
                  allow_zero: bool,
                  classes: Optional[Sequence[str]] = None,
                  what: str = 'counts',
                  source: Optional[str] = None) -> None:
    """Raise ValueError naming the classes whose count is not usable."""
    bad = np.flatnonzero(~np.isfinite(counts))
    if bad.size:
        raise ValueError(
            f'{what}{_where(source)} must be finite, but '
            f'class {listed([class_name(i, classes) for i in bad])} '
            f'{"has" if bad.size == 1 else "have"} '
            f'{listed([counts[i] for i in bad])}')
    bad = np.flatnonzero(counts < 0 if allow_zero else counts <= 0)
    if bad.size:
        details = [
            f'class {class_name(i, classes)} has {counts[i]:g} training '
            'samples' for i in bad
        ]
        need = ('non-negative counts'
                if allow_zero else 'every class to occur (count > 0)')
        raise ValueError(f'{what}{_where(source)}: '
                         f'{listed(details, sep="; ")}; GRW needs {need}')


def save_class_freq(path: PathType,
                    counts: Union[Sequence[float], np.ndarray],
                    classes: Optional[Sequence[str]] = None,
                    count_type: str = 'images',
                    source: Optional[str] = None,
                    extra: Optional[Dict[str, Any]] = None) -> dict:
    """Write per-class frequencies in the mmdisalign JSON format, one key
    per line, atomically. Zero counts are recorded (the loader rejects them
    unless ``allow_zero=True``).

    Args:
        path (str | PathLike): Output JSON file.
        counts (Sequence[float] | np.ndarray): One non-negative number per
            class, in the model's class order.
        classes (Sequence[str], optional): Class names. Defaults to None.
        count_type (str): What is counted: 'images', 'pixels',
            'instances', ... Defaults to 'images'.
        source (str, optional): The data the counts come from.
            Defaults to None.
        extra (dict, optional): Further JSON entries (numpy values are
            converted), e.g. ``{'instance_count': [...]}``; keys must not
            clash with the format's own. Defaults to None.

    Returns:
        dict: The JSON object written.
    """
    array = _to_counts(
        counts if isinstance(counts, np.ndarray) else list(counts))
    _check_counts(array, allow_zero=True, classes=classes)
    if classes is not None:
        classes = list(classes)
        if len(classes) != len(array):
            raise ValueError(f'classes has {len(classes)} names but counts '
                             f'has {len(array)} entries')
    data = dict(
        format=CLASS_FREQ_FORMAT,
        version=CLASS_FREQ_VERSION,
        num_classes=len(array),
        count_type=count_type,
        classes=classes,
        # integral values as JSON integers
        counts=[
            int(v) if v.is_integer() and abs(v) < 2**53 else float(v)
            for v in array
        ],
        source=source)
    for key, value in (extra or {}).items():
        if key in _RESERVED_KEYS:
            raise ValueError(f'extra key {key!r} clashes with a key of the '
                             f'format itself {_RESERVED_KEYS}')
        numpy = isinstance(value, (np.ndarray, np.generic))
        data[key] = value.tolist() if numpy else value
    lines = []
    for key, value in data.items():
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise TypeError(f'extra[{key!r}] is not JSON-serialisable: '
                            f'{error}') from error
        lines.append(f'  {json.dumps(str(key))}: {text}')

    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        prefix='.class_freq_', suffix='.json', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as file:
            file.write('{\n' + ',\n'.join(lines) + '\n}\n')
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return data


def load_class_freq_meta(path: PathType) -> dict:
    """Read a class-frequency JSON file, checking its format, version,
    ``num_classes`` and ``counts`` (extra lists are checked by
    :func:`load_class_freq`).

    Args:
        path (str | PathLike): The JSON file.

    Returns:
        dict: The JSON object; ``classes`` may be None.
    """
    path = os.fspath(path)
    data = read_json_file(
        path, 'class-frequency file',
        ' (write it with the statistics tools in tools/, see '
        'docs/grw_loss.md)')
    if not isinstance(data, dict) or data.get('format') != CLASS_FREQ_FORMAT:
        found = type(data).__name__
        if isinstance(data, dict):
            found = data.get('format')
        raise ValueError(f'{path} is not a class-frequency file: expected a '
                         f'JSON object with "format": '
                         f'"{CLASS_FREQ_FORMAT}", found {found!r}')
    version = data.get('version')
    if version != CLASS_FREQ_VERSION:
        raise ValueError(f'{path} has format version {version!r}; this '
                         f'mmdisalign reads version {CLASS_FREQ_VERSION}')
    missing = [k for k in ('num_classes', 'counts') if k not in data]
    if missing:
        raise ValueError(f'{path} lacks the key(s) {missing}; it has '
                         f'{sorted(data)}')
    num_classes = data['num_classes']
    counts = _to_counts(data['counts'], '"counts"', path)
    if len(counts) != num_classes:
        raise ValueError(f'{path}: "num_classes" is {num_classes} but '
                         f'"counts" has {len(counts)} entries')
    classes = data.setdefault('classes', None)
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f'{path}: "num_classes" is {num_classes} but '
                         f'"classes" has {len(classes)} names')
    _check_counts(counts, True, classes, '"counts"', path)
    return data


def load_class_freq(class_freq: ClassFreqType,
                    num_classes: Optional[int] = None,
                    key: str = 'counts',
                    allow_zero: bool = False) -> np.ndarray:
    """Load per-class frequencies as a float64 array.

    Args:
        class_freq (Sequence[float] | np.ndarray | str | PathLike | dict):
            The frequencies, a file written by :func:`save_class_freq`, or
            ``dict(file=path, key=name)`` for another list of that file.
        num_classes (int, optional): Expected number of classes.
            Defaults to None (no check).
        key (str): The list read from a file. Defaults to 'counts'.
        allow_zero (bool): Accept zero counts (GRW needs every class to
            occur). Defaults to False.

    Returns:
        np.ndarray: Frequencies of shape (K,), dtype float64.
    """
    source = classes = None
    if isinstance(class_freq, dict):
        if 'file' not in class_freq or set(class_freq) - {'file', 'key'}:
            raise ValueError(f'a class_freq dict must look like '
                             f'dict(file=path, key=name), got keys '
                             f'{sorted(class_freq)}')
        key = class_freq.get('key', key)
        class_freq = class_freq['file']
    if isinstance(class_freq, (str, os.PathLike)):
        source = os.fspath(class_freq)
        meta = load_class_freq_meta(source)
        classes = meta['classes']
        if key not in meta:
            lists = [
                k for k, v in meta.items() if isinstance(v, list)
                and len(v) == meta['num_classes'] and k != 'classes'
            ]
            raise ValueError(f'{source} has no key {key!r}; its per-class '
                             f'lists are {lists} (all keys: {sorted(meta)})')
        counts = _to_counts(meta[key], f'"{key}"', source)
        if len(counts) != meta['num_classes']:
            raise ValueError(f'{source}: "{key}" has {len(counts)} entries '
                             f'but "num_classes" is {meta["num_classes"]}')
    else:
        counts = _to_counts(class_freq, 'class_freq')
    if num_classes is not None and len(counts) != num_classes:
        origin = f' (from {source})' if source else ''
        raise ValueError(
            f'the class frequencies{origin} have {len(counts)} entries but '
            f'num_classes={num_classes}; use the frequency file of the '
            f'dataset the model is trained on')
    _check_counts(counts, allow_zero, classes,
                  f'"{key}"' if source else 'class_freq', source)
    return counts


def grw_weights(counts: Union[Sequence[float], np.ndarray],
                rho: float,
                normalize_to: Optional[float] = None) -> np.ndarray:
    """Class weights of the generalized re-weight (GRW) loss.

    :math:`w_c = T (1 / r_c)^{\\rho} / \\sum_k (1 / r_k)^{\\rho}` with
    :math:`r_c = n_c / \\sum_k n_k`, in float64; ``rho=0`` gives all ones,
    ``rho=1`` class-balanced weights. See docs/grw_loss.md.

    Args:
        counts (Sequence[float] | np.ndarray): Positive per-class
            frequencies (only their proportions matter).
        rho (float): The GRW exponent, >= 0.
        normalize_to (float, optional): Sum of the weights.
            Defaults to None, meaning K.

    Returns:
        np.ndarray: Weights of shape (K,), dtype float64.
    """
    counts = _to_counts(
        counts if isinstance(counts, np.ndarray) else list(counts))
    _check_counts(counts, allow_zero=False)
    if not (math.isfinite(rho) and rho >= 0):
        raise ValueError(f'rho must be finite and >= 0 (0: no re-weighting, '
                         f'1: class-balanced), got {rho}')
    if normalize_to is None:
        normalize_to = float(len(counts))
    elif not (math.isfinite(normalize_to) and normalize_to > 0):
        raise ValueError(f'normalize_to must be a finite positive number, '
                         f'got {normalize_to!r}')

    ratios = counts / counts.sum()
    with np.errstate(over='ignore', divide='ignore', invalid='ignore'):
        raw = 1.0 / ratios**rho
        total = raw.sum()
    if not (np.all(np.isfinite(raw)) and np.isfinite(total) and total > 0):
        # Extreme frequencies or exponents overflow the direct formula;
        # the same weights in the log domain stay finite.
        log_raw = -rho * np.log(ratios)
        raw = np.exp(log_raw - log_raw.max())
        total = raw.sum()
    return raw / total * float(normalize_to)


def _log_min_grw_weight(log_ratios: np.ndarray, rho: float) -> float:
    """``log`` of the smallest GRW weight (``normalize_to=K``): the most
    frequent class's, ``log K - logsumexp_k(rho * log(r_max / r_k))``."""
    exponents = rho * (log_ratios.max() - log_ratios)
    top = exponents.max()
    return float(
        math.log(len(log_ratios)) -
        (top + math.log(np.exp(exponents - top).sum())))


def max_grw_rho(counts: Union[Sequence[float], np.ndarray],
                dtype: Any = np.float32) -> float:
    """The largest ``rho`` whose GRW weights (:func:`grw_weights`, sum K)
    are all normal numbers of ``dtype``.

    The weights never exceed K (no overflow); the smallest one, that of the
    most frequent class, falls with ``rho`` and underflows to a denormal or
    0 past this value. Rounded down to 2 decimals.

    Args:
        counts (Sequence[float] | np.ndarray): Positive per-class
            frequencies.
        dtype (numpy dtype): The dtype the weights are used in.
            Defaults to float32.

    Returns:
        float: The limit; ``math.inf`` when all counts are equal.
    """
    counts = _to_counts(
        counts if isinstance(counts, np.ndarray) else list(counts))
    _check_counts(counts, allow_zero=False)
    log_ratios = np.log(counts / counts.sum())
    floor = math.log(float(np.finfo(dtype).tiny))
    if log_ratios.max() - log_ratios.min() == 0:
        return math.inf
    low, high = 0.0, 1.0
    while _log_min_grw_weight(log_ratios, high) >= floor:
        low, high = high, high * 2
    for _ in range(100):  # bisection on a decreasing function
        mid = (low + high) / 2
        if _log_min_grw_weight(log_ratios, mid) >= floor:
            low = mid
        else:
            high = mid
    return math.floor(low * 100) / 100


def check_class_order(file_classes: Optional[Sequence[str]],
                      dataset_classes: Optional[Sequence[str]],
                      source: str,
                      where: str,
                      logger: Any = None) -> bool:
    """Check that a class-frequency file lists the dataset's classes in the
    dataset's order (names compared without case and outer spaces).

    Args:
        file_classes (Sequence[str], optional): ``classes`` of the file.
        dataset_classes (Sequence[str], optional): The dataset's
            ``metainfo['classes']``.
        source (str): The file (and its user), for messages.
        where (str): The dataset, for messages.
        logger (logging.Logger, optional): Gets the warning when either
            side has no names. Defaults to None (no warning).

    Returns:
        bool: Whether the order could be checked.
    """
    if file_classes is None or dataset_classes is None:
        if logger is not None:
            lacking = (f'the class-frequency file {source} has no "classes"'
                       if file_classes is None else
                       f'{where} has no metainfo["classes"]')
            logger.warning(
                f'{lacking}: the order of its counts cannot be checked '
                f'against {where}; make sure they are in the label order '
                '(write the file with the statistics tools in tools/, which '
                'record the names).')
        return False
    file_classes = list(file_classes)
    dataset_classes = list(dataset_classes)
    for index, (ours, theirs) in enumerate(zip(file_classes, dataset_classes)):
        if str(ours).strip().lower() != str(theirs).strip().lower():
            raise ValueError(
                f'class {index} is {theirs!r} in {where} but {ours!r} in the '
                f'class-frequency file {source}: the file lists other '
                'classes or another class order, so every count (and GRW '
                'weight) would go to the wrong class. Write the file from '
                "this dataset's training set with the statistics tools in "
                'tools/ (see docs/grw_loss.md).')
    if len(file_classes) != len(dataset_classes):
        raise ValueError(
            f'the class-frequency file {source} names '
            f'{len(file_classes)} classes but {where} has '
            f'{len(dataset_classes)} (they agree on the first '
            f'{min(len(file_classes), len(dataset_classes))}); use the '
            "file written from this dataset's training set.")
    return True
