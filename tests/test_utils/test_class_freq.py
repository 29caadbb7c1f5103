"""Tests of the class-frequency JSON format and of the GRW weights."""
import json
import math
import pathlib

import numpy as np
import pytest
import torch

from mmdisalign.utils.class_freq import (CLASS_FREQ_FORMAT, check_class_order,
                                         grw_weights, load_class_freq,
                                         load_class_freq_meta, save_class_freq)

COUNTS = [100, 10, 1]
CLASSES = ['cat', 'dog', 'bag']


def reference_weights(counts, rho):
    """The reference code's formula, written out in float64 numpy."""
    counts = np.asarray(counts, dtype=np.float64)
    ratios = counts / counts.sum()
    raw = 1.0 / ratios**rho
    return len(counts) * raw / raw.sum()


# --------------------------------------------------------------- weights
def test_grw_weights_rho_1_exact():
    # n^-1 = [0.01, 0.1, 1], sum 1.11 -> w = 3 * n^-1 / 1.11
    weights = grw_weights(COUNTS, rho=1.0)
    assert weights.dtype == np.float64
    np.testing.assert_allclose(
        weights, [1 / 37, 10 / 37, 100 / 37], rtol=1e-14, atol=0)
    assert math.isclose(weights.sum(), 3.0, rel_tol=1e-14)


def test_grw_weights_rho_half_exact():
    # n^-0.5 = [0.1, 1/sqrt(10), 1]
    root = 1 / math.sqrt(10)
    expected = [3 * v / (1.1 + root) for v in (0.1, root, 1.0)]
    weights = grw_weights(COUNTS, rho=0.5)
    np.testing.assert_allclose(weights, expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(
        weights, [0.2118303335, 0.6698663314, 2.1183033351], rtol=1e-9)
    assert math.isclose(weights.sum(), 3.0, rel_tol=1e-14)


def test_grw_weights_rho_0_is_all_ones():
    np.testing.assert_array_equal(grw_weights(COUNTS, rho=0), [1, 1, 1])
    np.testing.assert_array_equal(
        grw_weights([5, 5, 5, 5], rho=2.0), [1, 1, 1, 1])


def test_grw_weights_scale_invariant_and_normalize_to():
    base = grw_weights(COUNTS, rho=1.2)
    np.testing.assert_allclose(
        grw_weights([7 * c for c in COUNTS], rho=1.2), base, rtol=1e-14)
    # ratios (e.g. ADE20K's pixel ratio column) give the same weights
    np.testing.assert_allclose(
        grw_weights(np.array(COUNTS) / 111, rho=1.2), base, rtol=1e-14)
    one = grw_weights(COUNTS, rho=1.2, normalize_to=1)
    np.testing.assert_allclose(one, base / 3, rtol=1e-14)
    assert math.isclose(one.sum(), 1.0, rel_tol=1e-14)


def test_grw_weights_match_reference_float64_then_float32():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 1280, size=1000)  # ImageNet-LT-like
    for rho in (0.2, 0.8, 1.0, 1.2, 2.0):
        ours = grw_weights(counts, rho)
        ref = reference_weights(counts, rho)
        np.testing.assert_allclose(ours, ref, rtol=1e-15, atol=0)
        # the cast the loss does once: bit-identical float32 tensors
        assert torch.equal(
            torch.tensor(ours, dtype=torch.float32),
            torch.tensor(ref, dtype=torch.float32))


def test_grw_weights_extreme_values_stay_finite():
    # (1 / 1e-200)^2 overflows float64: the log-domain fallback is used
    weights = grw_weights([1e200, 1.0], rho=2.0)
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights, [0.0, 2.0], atol=1e-300)


@pytest.mark.parametrize('rho, exc, match', [
    (-0.5, ValueError, r'rho must be finite and >= 0.*-0\.5'),
    (float('nan'), ValueError, r'rho must be finite.*nan'),
    (float('inf'), ValueError, r'rho must be finite.*inf'),
    ('1', TypeError, r'must be real number, not str'),
])
def test_grw_weights_bad_rho(rho, exc, match):
    with pytest.raises(exc, match=match):
        grw_weights(COUNTS, rho)


def test_grw_weights_bad_counts():
    with pytest.raises(
            ValueError,
            match=r'class 1 has 0 training samples; '
            r'GRW needs every class to occur'):
        grw_weights([3, 0, 2], 1.0)
    with pytest.raises(ValueError, match=r'class 0 has -1 training'):
        grw_weights([-1, 2], 1.0)
    with pytest.raises(ValueError, match=r'must be finite.*class 2'):
        grw_weights([1, 2, float('inf')], 1.0)
    with pytest.raises(ValueError, match=r'must be finite.*class 0'):
        grw_weights(np.array([np.nan, 2.0]), 1.0)
    with pytest.raises(ValueError, match='is empty'):
        grw_weights([], 1.0)
    with pytest.raises(ValueError, match=r'one-dimensional.*\(2, 2\)'):
        grw_weights(np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match='normalize_to must be'):
        grw_weights(COUNTS, 1.0, normalize_to=0)


# ----------------------------------------------------------- JSON format
def test_json_round_trip(tmp_path):
    path = tmp_path / 'sub' / 'freq.json'  # parent folder is created
    written = save_class_freq(
        path,
        np.array(COUNTS, dtype=np.int64),
        classes=CLASSES,
        count_type='images',
        source='data/train.txt',
        extra=dict(
            instance_count=np.array([130, 12, 1]), frequency=['f', 'c', 'r']))
    raw = json.loads(path.read_text())
    assert raw == written
    assert raw['format'] == CLASS_FREQ_FORMAT and raw['version'] == 1
    assert raw['num_classes'] == 3 and raw['counts'] == [100, 10, 1]
    assert all(isinstance(v, int) for v in raw['counts'])
    assert raw['instance_count'] == [130, 12, 1]

    counts = load_class_freq(path)
    assert counts.dtype == np.float64
    np.testing.assert_array_equal(counts, [100.0, 10.0, 1.0])
    np.testing.assert_array_equal(
        load_class_freq(str(path), num_classes=3), [100, 10, 1])
    np.testing.assert_array_equal(
        load_class_freq(dict(file=str(path), key='instance_count')),
        [130, 12, 1])
    np.testing.assert_array_equal(
        load_class_freq(path, key='instance_count'), [130, 12, 1])

    meta = load_class_freq_meta(path)
    assert meta['classes'] == CLASSES
    assert meta['count_type'] == 'images'
    assert meta['source'] == 'data/train.txt'
    assert meta['frequency'] == ['f', 'c', 'r']


def test_json_float_counts_and_no_classes(tmp_path):
    path = tmp_path / 'ratio.json'
    save_class_freq(path, [0.1576, 0.0002, 0.0105], count_type='pixel_ratio')
    raw = json.loads(path.read_text())
    assert raw['counts'] == [0.1576, 0.0002, 0.0105]
    assert raw['classes'] is None and raw['source'] is None
    np.testing.assert_array_equal(
        load_class_freq(path), [0.1576, 0.0002, 0.0105])
    assert load_class_freq_meta(path)['classes'] is None


def test_in_memory_counts():
    for value in (COUNTS, tuple(COUNTS), np.array(COUNTS)):
        counts = load_class_freq(value, num_classes=3)
        assert counts.dtype == np.float64
        np.testing.assert_array_equal(counts, [100, 10, 1])
    np.testing.assert_array_equal(
        load_class_freq([0, 1], allow_zero=True), [0, 1])


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def valid_dict(**changes):
    data = dict(
        format=CLASS_FREQ_FORMAT,
        version=1,
        num_classes=3,
        count_type='images',
        classes=CLASSES,
        counts=COUNTS,
        source='x')
    data.update(changes)
    return data


def test_load_errors_files(tmp_path):
    missing = tmp_path / 'nope.json'
    with pytest.raises(FileNotFoundError, match=r'nope\.json'):
        load_class_freq(missing)
    with pytest.raises(FileNotFoundError, match=r'nope\.json'):
        load_class_freq(dict(file=str(missing)))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"format": "mmdisalign.class_freq",\n  "counts": [1, 2')
    with pytest.raises(
            ValueError, match=r'bad\.json is not valid JSON.*'
            r'line 2'):
        load_class_freq(bad)
    other = write_json(tmp_path / 'other.json', {'train_shots': [1, 2]})
    with pytest.raises(
            ValueError, match=r'other\.json is not a '
            r'class-frequency file'):
        load_class_freq(other)
    plain = write_json(tmp_path / 'list.json', [1, 2, 3])
    with pytest.raises(ValueError, match='not a class-frequency file'):
        load_class_freq_meta(plain)
    future = write_json(tmp_path / 'v2.json', valid_dict(version=2))
    with pytest.raises(ValueError, match=r'v2\.json has format version 2'):
        load_class_freq(future)


def test_load_errors_content(tmp_path):
    path = write_json(tmp_path / 'f.json', valid_dict())
    with pytest.raises(
            ValueError,
            match=r"f\.json has no key 'image_count'; its per-class lists "
            r"are \['counts'\]"):
        load_class_freq(path, key='image_count')
    with pytest.raises(
            ValueError,
            match=r'frequencies \(from .*f\.json\) have 3 entries but '
            r'num_classes=4'):
        load_class_freq(path, num_classes=4)
    with pytest.raises(ValueError, match=r'num_classes=3'):
        load_class_freq([1, 2], num_classes=3)

    wrong_k = write_json(tmp_path / 'k.json', valid_dict(num_classes=4))
    with pytest.raises(
            ValueError,
            match=r'k\.json: "num_classes" is 4 but '
            r'"counts" has 3 entries'):
        load_class_freq(wrong_k)
    names = write_json(tmp_path / 'n.json', valid_dict(classes=['a']))
    with pytest.raises(ValueError, match=r'"classes" has 1 names'):
        load_class_freq_meta(names)
    no_counts = valid_dict()
    del no_counts['counts']
    no_counts = write_json(tmp_path / 'c.json', no_counts)
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['counts'\]"):
        load_class_freq(no_counts)

    zero = write_json(tmp_path / 'z.json', valid_dict(counts=[5, 1, 0]))
    with pytest.raises(
            ValueError,
            match=r"z\.json: class 2 \('bag'\) has 0 training samples; GRW "
            r'needs every class to occur'):
        load_class_freq(zero)
    np.testing.assert_array_equal(
        load_class_freq(zero, allow_zero=True), [5, 1, 0])
    negative = write_json(tmp_path / 'neg.json', valid_dict(counts=[5, -1, 2]))
    with pytest.raises(ValueError, match=r"class 1 \('dog'\) has -1"):
        load_class_freq_meta(negative)
    text = write_json(tmp_path / 's.json', valid_dict(counts=[5, '1', 2]))
    with pytest.raises(TypeError, match=r"entry 1 is '1'"):
        load_class_freq(text)
    short = write_json(tmp_path / 'e.json', valid_dict(image_count=[1, 2]))
    with pytest.raises(
            ValueError,
            match=r'"image_count" has 2 entries but '
            r'"num_classes" is 3'):
        load_class_freq(short, key='image_count')
    inf = tmp_path / 'inf.json'
    inf.write_text(
        json.dumps(valid_dict(image_count=[1, 2, 3]))[:-1] +
        ', "pixel_count": [1, Infinity, 3]}')
    with pytest.raises(ValueError, match=r"must be finite.*class 1 \('dog'\)"):
        load_class_freq(inf, key='pixel_count')


def test_load_errors_types():
    with pytest.raises(ValueError, match=r'dict\(file=path, key=name\)'):
        load_class_freq(dict(path='x.json'))
    with pytest.raises(TypeError, match='must be a list, tuple or numpy'):
        load_class_freq(3)
    with pytest.raises(ValueError, match=r'class 0 has 0 training samples'):
        load_class_freq([0, 1, 2])


def test_save_errors(tmp_path):
    path = tmp_path / 'f.json'
    with pytest.raises(ValueError, match=r"class 1 \('dog'\) has -2"):
        save_class_freq(path, [1, -2, 3], classes=CLASSES)
    with pytest.raises(
            ValueError, match='classes has 2 names but counts '
            'has 3 entries'):
        save_class_freq(path, COUNTS, classes=CLASSES[:2])
    with pytest.raises(ValueError, match=r"extra key 'counts' clashes"):
        save_class_freq(path, COUNTS, extra=dict(counts=[1, 2, 3]))
    with pytest.raises(TypeError, match=r"extra\['bad'\] is not JSON"):
        save_class_freq(path, COUNTS, extra=dict(bad=object()))
    assert not path.exists()
    # zero counts are recorded (the loader rejects them by default)
    save_class_freq(pathlib.Path(path), [0, 3])
    assert json.loads(path.read_text())['counts'] == [0, 3]


# ----------------------------------------------------------- class order
class _Logger:
    """Collects warnings."""

    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def test_class_order_reversed_names_the_first_mismatch():
    with pytest.raises(ValueError) as info:
        check_class_order(CLASSES[::-1], CLASSES, "'f.json' (used by loss)",
                          'the train dataset D')
    message = str(info.value)
    assert message.startswith("class 0 is 'cat' in the train dataset D but "
                              "'bag' in the class-frequency file 'f.json' "
                              '(used by loss)')
    assert 'another class order' in message
    # Swapped in the middle: index 1 named.
    with pytest.raises(ValueError, match=r"^class 1 is 'dog' .* but 'bag'"):
        check_class_order(['cat', 'bag', 'dog'], CLASSES, 'f', 'd')


def test_class_order_same_names_pass_case_and_spaces_aside():
    logger = _Logger()
    assert check_class_order([' Cat', 'DOG ', 'bag'], tuple(CLASSES), 'f', 'd',
                             logger)
    assert logger.warnings == []


def test_class_order_other_number_of_classes():
    with pytest.raises(
            ValueError,
            match=r'file f names 2 classes but d has 3 \(they agree on the '
            r'first 2\)'):
        check_class_order(CLASSES[:2], CLASSES, 'f', 'd')


def test_class_order_without_names_warns():
    logger = _Logger()
    assert not check_class_order(None, CLASSES, "'f.json'", 'the train '
                                 'dataset D', logger)
    assert logger.warnings == [
        "the class-frequency file 'f.json' has no \"classes\": the order "
        'of its counts cannot be checked against the train dataset D; make '
        'sure they are in the label order (write the file with the '
        'statistics tools in tools/, which record the names).'
    ]
    assert not check_class_order(CLASSES, None, 'f', 'the val dataset', logger)
    assert logger.warnings[1].startswith(
        'the val dataset has no metainfo["classes"]: the order of its '
        'counts cannot be checked')
