"""Per-class training frequencies: the JSON file format and GRW weights.

Every statistics tool of mmdisalign (ImageNet-LT split lists, mmseg pixel
counts, LVIS annotation files) writes the same JSON object through
:func:`save_class_freq`::

    {
      "format": "mmdisalign.class_freq",
      "version": 1,
      "num_classes": 3,
      "count_type": "images",
      "classes": ["cat", "dog", "bag"],
      "counts": [100, 10, 1],
      "source": "data/imagenet_lt/ImageNet_LT_train.txt",
      "instance_count": [130, 12, 1]
    }

``counts`` is the frequency used by default; any further key holding a
list of ``num_classes`` numbers (``image_count``, ``instance_count``, ...)
can be selected instead with ``key=``. Other extra keys (for example
per-class group names) are kept and returned by
:func:`load_class_freq_meta`.

:func:`grw_weights` turns the frequencies into the class weights of the
generalized re-weight (GRW) loss of DisAlign (CVPR 2021).
"""
import json
import math
import numbers
import os
import os.path as osp
import tempfile
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from .json_file import read_json_file

__all__ = [
    'CLASS_FREQ_FORMAT', 'CLASS_FREQ_VERSION', 'save_class_freq',
    'load_class_freq', 'load_class_freq_meta', 'grw_weights'
]

CLASS_FREQ_FORMAT = 'mmdisalign.class_freq'
CLASS_FREQ_VERSION = 1

# Keys with a fixed meaning; extra per-class lists may use any other key.
_RESERVED_KEYS = ('format', 'version', 'num_classes', 'count_type', 'classes',
                  'counts', 'source')
# How many offending classes an error message lists before abbreviating.
_MAX_LISTED = 10

PathType = Union[str, 'os.PathLike[str]']
ClassFreqType = Union[Sequence[float], np.ndarray, PathType, Dict[str, Any]]


def _is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (bools excluded)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (bools excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _where(source: Optional[str]) -> str:
    """Return ' in <source>' for error messages, or '' without a source."""
    return f' in {source}' if source else ''


def _class_label(index: int, classes: Optional[Sequence[str]]) -> str:
    """Return "class 3 ('bag')" or "class 3" when names are unknown."""
    if classes is not None and index < len(classes):
        return f'class {index} ({classes[index]!r})'
    return f'class {index}'


def _list_classes(indices: Sequence[int],
                  classes: Optional[Sequence[str]]) -> str:
    """Join class labels, abbreviating after ``_MAX_LISTED`` entries."""
    shown = [_class_label(int(i), classes) for i in indices[:_MAX_LISTED]]
    text = ', '.join(shown)
    if len(indices) > _MAX_LISTED:
        text += f' and {len(indices) - _MAX_LISTED} more'
    return text


def _to_counts(values: Any,
               what: str = 'counts',
               source: Optional[str] = None) -> np.ndarray:
    """Convert a 1-D sequence of real numbers to float64, checking types.

    Args:
        values: A list, tuple or numpy array of numbers.
        what (str): Name of the list for error messages.
        source (str, optional): File the values come from, for messages.

    Returns:
        np.ndarray: A float64 array of shape (K,).
    """
    if isinstance(values, np.ndarray):
        if values.dtype == np.bool_ or not (
                np.issubdtype(values.dtype, np.integer)
                or np.issubdtype(values.dtype, np.floating)):
            raise TypeError(f'{what}{_where(source)} must hold real numbers, '
                            f'got an array of dtype {values.dtype}')
        array = values.astype(np.float64)
    elif isinstance(values, (list, tuple)):
        for index, value in enumerate(values):
            if not _is_real(value):
                raise TypeError(
                    f'{what}{_where(source)} must hold real numbers, but '
                    f'entry {index} is {value!r} '
                    f'({type(value).__name__})')
        array = np.asarray(values, dtype=np.float64)
    else:
        raise TypeError(f'{what}{_where(source)} must be a list, tuple or '
                        f'numpy array of numbers, got '
                        f'{type(values).__name__}')
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
            f'{_list_classes(bad, classes)} '
            f'{"has" if bad.size == 1 else "have"} '
            f'{", ".join(str(counts[i]) for i in bad[:_MAX_LISTED])}')
    bad = np.flatnonzero(counts < 0 if allow_zero else counts <= 0)
    if bad.size:
        details = '; '.join(
            f'{_class_label(int(i), classes)} has {counts[i]:g} training '
            f'samples' for i in bad[:_MAX_LISTED])
        if bad.size > _MAX_LISTED:
            details += f'; and {bad.size - _MAX_LISTED} more classes'
        need = ('non-negative counts'
                if allow_zero else 'every class to occur (count > 0)')
        raise ValueError(f'{what}{_where(source)}: {details}; GRW needs '
                         f'{need}')


def _check_num_classes(counts: np.ndarray, num_classes: Optional[int],
                       source: Optional[str]) -> None:
    """Raise ValueError if the number of counts is not ``num_classes``."""
    if num_classes is None:
        return
    if not _is_int(num_classes) or num_classes <= 0:
        raise ValueError(
            f'num_classes must be a positive integer, got {num_classes!r}')
    if len(counts) != num_classes:
        origin = f' (from {source})' if source else ''
        raise ValueError(
            f'the class frequencies{origin} have {len(counts)} entries but '
            f'num_classes={num_classes}; use the frequency file of the '
            f'dataset the model is trained on')


def _to_jsonable_number(value: float) -> Union[int, float]:
    """Write integral values as JSON integers, others as floats."""
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def save_class_freq(path: PathType,
                    counts: Union[Sequence[float], np.ndarray],
                    classes: Optional[Sequence[str]] = None,
                    count_type: str = 'images',
                    source: Optional[str] = None,
                    extra: Optional[Dict[str, Any]] = None) -> dict:
    """Write per-class frequencies in the mmdisalign JSON format.

    The file is written atomically (a temporary file renamed into place) and
    its parent folder is created if needed. Zero counts are allowed here (a
    statistics tool records what it found); :func:`load_class_freq` rejects
    them unless ``allow_zero=True``.

    Args:
        path (str | PathLike): Output JSON file.
        counts (Sequence[float] | np.ndarray): One non-negative number per
            class, in the model's class index order.
        classes (Sequence[str], optional): Class names, same length as
            ``counts``. Written as ``null`` when None. Defaults to None.
        count_type (str): What is counted: ``'images'``, ``'pixels'``,
            ``'instances'``, ``'pixel_ratio'``, ... Defaults to 'images'.
        source (str, optional): The annotation file or a description of the
            data the counts come from. Defaults to None.
        extra (dict, optional): Further JSON-serialisable entries, for
            example ``{'instance_count': [...]}`` (per-class lists must have
            ``len(counts)`` entries to be loadable with ``key=``). Keys must
            not clash with the format's own keys. Defaults to None.

    Returns:
        dict: The JSON object that was written.
    """
    array = _to_counts(
        list(counts) if not isinstance(counts, np.ndarray) else counts)
    _check_counts(array, allow_zero=True, classes=classes)
    num_classes = len(array)
    if classes is not None:
        classes = list(classes)
        if len(classes) != num_classes:
            raise ValueError(f'classes has {len(classes)} names but counts '
                             f'has {num_classes} entries')
        for index, name in enumerate(classes):
            if not isinstance(name, str):
                raise TypeError(f'class names must be strings, but class '
                                f'{index} is {name!r}')
    if not isinstance(count_type, str) or not count_type:
        raise TypeError(
            f'count_type must be a non-empty string, got {count_type!r}')
    if source is not None and not isinstance(source, str):
        raise TypeError(f'source must be a string, got {source!r}')

    data = dict(
        format=CLASS_FREQ_FORMAT,
        version=CLASS_FREQ_VERSION,
        num_classes=num_classes,
        count_type=count_type,
        classes=classes,
        counts=[_to_jsonable_number(v) for v in array],
        source=source)
    for key, value in (extra or {}).items():
        if not isinstance(key, str):
            raise TypeError(f'extra keys must be strings, got {key!r}')
        if key in _RESERVED_KEYS:
            raise ValueError(f'extra key {key!r} clashes with a key of the '
                             f'format itself {_RESERVED_KEYS}')
        if isinstance(value, np.ndarray):
            value = value.tolist()
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise TypeError(f'extra[{key!r}] is not JSON-serialisable: '
                            f'{error}') from error
        data[key] = value

    # One key per line, each value on a single line: readable and diffable
    # even for thousands of classes.
    lines = [
        f'  {json.dumps(key)}: {json.dumps(value, allow_nan=False)}'
        for key, value in data.items()
    ]
    text = '{\n' + ',\n'.join(lines) + '\n}\n'

    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        prefix='.class_freq_', suffix='.json', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as file:
            file.write(text)
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return data


def load_class_freq_meta(path: PathType) -> dict:
    """Read and validate a whole class-frequency JSON file.

    Checks the format marker, the version, that ``num_classes`` matches the
    length of ``counts`` and of ``classes``, and that ``counts`` holds
    finite non-negative numbers. Extra keys are returned unchanged (a
    per-class list is only checked when it is loaded with
    :func:`load_class_freq`).

    Args:
        path (str | PathLike): The JSON file.

    Returns:
        dict: The JSON object; ``classes`` may be None.
    """
    path = os.fspath(path) if isinstance(path, os.PathLike) else path
    data = read_json_file(
        path, 'class-frequency file',
        ' (write it with the statistics tools in tools/, see '
        'docs/grw_loss.md)')

    if not isinstance(data, dict) or data.get('format') != CLASS_FREQ_FORMAT:
        if isinstance(data, dict):
            found = data.get('format')
        else:
            found = type(data).__name__
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
    if not _is_int(num_classes) or num_classes <= 0:
        raise ValueError(f'{path}: "num_classes" must be a positive integer, '
                         f'got {num_classes!r}')
    counts = _to_counts(data['counts'], '"counts"', path)
    if len(counts) != num_classes:
        raise ValueError(f'{path}: "num_classes" is {num_classes} but '
                         f'"counts" has {len(counts)} entries')
    classes = data.get('classes')
    if classes is not None:
        if not isinstance(classes, list) or not all(
                isinstance(name, str) for name in classes):
            raise ValueError(f'{path}: "classes" must be a list of strings '
                             f'or null')
        if len(classes) != num_classes:
            raise ValueError(f'{path}: "num_classes" is {num_classes} but '
                             f'"classes" has {len(classes)} names')
    data.setdefault('classes', None)
    _check_counts(counts, True, classes, '"counts"', path)
    return data


def load_class_freq(class_freq: ClassFreqType,
                    num_classes: Optional[int] = None,
                    key: str = 'counts',
                    allow_zero: bool = False) -> np.ndarray:
    """Load per-class frequencies as a float64 array.

    Args:
        class_freq (Sequence[float] | np.ndarray | str | PathLike | dict):
            The frequencies themselves, a path to a JSON file written by
            :func:`save_class_freq`, or ``dict(file=path, key=name)`` to
            read another per-class list of that file.
        num_classes (int, optional): Expected number of classes; a
            mismatch raises ValueError. Defaults to None (no check).
        key (str): The list to read from a file (overridden by the ``key``
            of a dict). Defaults to 'counts'.
        allow_zero (bool): Accept zero counts. GRW needs every class to
            occur, so the default rejects them. Defaults to False.

    Returns:
        np.ndarray: Frequencies of shape (K,), dtype float64.
    """
    source = None
    classes = None
    if isinstance(class_freq, dict):
        unknown = sorted(set(class_freq) - {'file', 'key'})
        if 'file' not in class_freq or unknown:
            raise ValueError(f'a class_freq dict must look like '
                             f'dict(file=path, key=name), got keys '
                             f'{sorted(class_freq)}')
        key = class_freq.get('key', key)
        class_freq = class_freq['file']
        if not isinstance(class_freq, (str, os.PathLike)):
            raise TypeError(f'class_freq["file"] must be a path, got '
                            f'{type(class_freq).__name__}')
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
    _check_num_classes(counts, num_classes, source)
    _check_counts(counts, allow_zero, classes,
                  f'"{key}"' if source else 'class_freq', source)
    return counts


def _check_rho(rho: float) -> float:
    """Return ``rho`` as a float, rejecting negative or non-finite values."""
    if not _is_real(rho):
        raise TypeError(f'rho must be a real number, got {rho!r}')
    rho = float(rho)
    if not math.isfinite(rho) or rho < 0:
        raise ValueError(f'rho must be finite and >= 0 (0: no re-weighting, '
                         f'1: class-balanced), got {rho}')
    return rho


def grw_weights(counts: Union[Sequence[float], np.ndarray],
                rho: float,
                normalize_to: Optional[float] = None) -> np.ndarray:
    """Class weights of the generalized re-weight (GRW) loss.

    With class ratios :math:`r_c = n_c / \\sum_k n_k`,

    .. math::
        w_c = T \\cdot \\frac{(1 / r_c)^{\\rho}}{\\sum_k (1 / r_k)^{\\rho}}

    where :math:`T` is ``normalize_to``, by default the number of classes K,
    so that the weights sum to K and the loss keeps the scale of plain
    cross-entropy (the reference implementation's choice). ``rho=0`` gives
    all ones (instance-balanced), ``rho=1`` class-balanced weights.
    Computed in float64, like the reference; cast once where used.

    Args:
        counts (Sequence[float] | np.ndarray): Positive per-class training
            frequencies (counts or ratios: only their proportions matter).
        rho (float): The GRW exponent, >= 0.
        normalize_to (float, optional): Sum of the returned weights.
            Defaults to None, meaning K.

    Returns:
        np.ndarray: Weights of shape (K,), dtype float64.
    """
    counts = _to_counts(
        counts if isinstance(counts, np.ndarray) else list(counts))
    _check_counts(counts, allow_zero=False)
    rho = _check_rho(rho)
    if normalize_to is None:
        normalize_to = float(len(counts))
    elif not (_is_real(normalize_to) and math.isfinite(normalize_to)
              and normalize_to > 0):
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
