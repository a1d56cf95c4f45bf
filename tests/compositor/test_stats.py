"""compositor.stats against numpy.nanpercentile on planted stacks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from compositor.stats import PERCENTILES, percentiles_and_count, percentiles_by_orbit


def reference(values: np.ndarray, percentiles=PERCENTILES) -> tuple[np.ndarray, np.ndarray]:
    """numpy.nanpercentile on the float64 stack with NaN for 0, and the valid count."""
    as_float = np.where(values == 0, np.nan, values.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        if values.shape[0] == 0:
            stats = np.full((len(percentiles),) + values.shape[1:], np.nan)
        else:
            stats = np.nanpercentile(as_float, list(percentiles), axis=0)
    return stats, (values != 0).sum(axis=0)


def random_stack(shape, masked: float, seed: int, high: int = 10_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.integers(1, high, size=shape, dtype=np.uint16, endpoint=True)
    values[rng.random(shape) < masked] = 0
    return values


def assert_matches(values, percentiles=PERCENTILES, exact=True):
    stats, count = percentiles_and_count(values, percentiles)
    ref_stats, ref_count = reference(values, percentiles)
    assert stats.dtype == np.float32 and count.dtype == np.uint16
    assert stats.shape == (len(percentiles),) + values.shape[1:]
    np.testing.assert_array_equal(count, ref_count)
    if exact:
        np.testing.assert_array_equal(stats, ref_stats)  # NaN == NaN here
    else:
        np.testing.assert_array_equal(stats, ref_stats.astype(np.float32))
    return stats, count


@pytest.mark.parametrize(
    "shape, masked, seed",
    [
        ((40, 32, 48), 0.45, 0),
        ((40, 17, 5), 0.0, 1),
        ((40, 9, 11), 1.0, 2),
        ((1, 7, 7), 0.3, 3),
        ((2, 13, 3), 0.5, 4),
        ((3, 1, 1), 0.2, 5),
        ((7, 5, 64), 0.9, 6),
        ((100, 6, 6), 0.45, 7),
        ((33, 1, 257), 0.6, 8),
        ((250, 3, 4), 0.1, 9),
    ],
)
def test_random_stacks_match_nanpercentile(shape, masked, seed):
    assert_matches(random_stack(shape, masked, seed))


@pytest.mark.parametrize(
    "column, expected",  # one pixel; expected = (p25, p50, p75) by hand
    [
        ([0, 0, 0, 0], (np.nan, np.nan, np.nan)),
        ([0, 0, 7, 0], (7.0, 7.0, 7.0)),
        ([10, 0, 0, 20], (12.5, 15.0, 17.5)),
        ([5, 5, 5, 5], (5.0, 5.0, 5.0)),
        ([3, 1, 0, 2, 0, 4], (1.75, 2.5, 3.25)),
        ([65535, 0, 1, 65535], (32768.0, 65535.0, 65535.0)),
        ([65535, 65535, 65534], (65534.5, 65535.0, 65535.0)),
        ([9, 2, 2, 9, 2], (2.0, 2.0, 9.0)),
    ],
)
def test_planted_pixel(column, expected):
    values = np.zeros((len(column), 2, 3), dtype=np.uint16)
    values[:, 1, 2] = column
    stats, count = assert_matches(values)
    np.testing.assert_array_equal(stats[:, 1, 2], np.array(expected, dtype=np.float32))
    assert count[1, 2] == np.count_nonzero(column)
    assert np.isnan(stats[:, 0, 0]).all() and count[0, 0] == 0


@pytest.mark.parametrize(
    "values",
    [
        random_stack((40, 20, 20), 0.45, 10, high=3),  # many ties
        random_stack((40, 20, 20), 0.45, 11, high=65535),  # full range incl. max
        np.full((12, 4, 4), 65535, dtype=np.uint16),
    ],
    ids=["ties", "full-range", "all-max"],
)
def test_ties_and_extremes(values):
    assert_matches(values)


@pytest.mark.parametrize(
    "percentiles",
    [(0.0,), (100.0,), (0.0, 10.0, 33.3, 100.0), (1.0, 99.0, 66.7, 50.0), (12.345,)],
)
@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_arbitrary_percentiles(percentiles, n):
    assert_matches(random_stack((n, 15, 16), 0.45, n), percentiles, exact=False)


def test_non_contiguous_input():
    base = random_stack((20, 30, 40), 0.45, 12)
    for view in (base[::2], base[:, ::3, 1::2], base[::-1, :, ::-1], np.asfortranarray(base)):
        assert not view.flags.c_contiguous
        assert_matches(view)


@pytest.mark.parametrize("shape", [(0, 4, 5), (3, 0, 5), (0, 0, 0)])
def test_empty(shape):
    stats, count = percentiles_and_count(np.zeros(shape, dtype=np.uint16))
    assert stats.shape == (3,) + shape[1:] and count.shape == shape[1:]
    assert np.isnan(stats).all() and (count == 0).all()


@pytest.mark.parametrize(
    "values, percentiles, match",
    [
        (np.zeros((4, 4), np.uint16), PERCENTILES, "3-D"),
        (np.zeros((2, 4, 4, 1), np.uint16), PERCENTILES, "3-D"),
        (np.zeros((2, 4, 4), np.float32), PERCENTILES, "uint16"),
        (np.zeros((2, 4, 4), np.int16), PERCENTILES, "uint16"),
        (np.zeros((2, 4, 4), np.uint16), (50.0, 101.0), r"\[0, 100\]"),
        (np.zeros((2, 4, 4), np.uint16), (-1.0,), r"\[0, 100\]"),
        (np.zeros((2, 4, 4), np.uint16), (np.nan,), r"\[0, 100\]"),
        (np.zeros((2, 4, 4), np.uint16), ((25.0, 50.0),), "1-D"),
    ],
)
def test_bad_input_raises(values, percentiles, match):
    with pytest.raises(ValueError, match=match):
        percentiles_and_count(values, percentiles)


def test_by_orbit_matches_per_group_reference():
    values = random_stack((30, 12, 14), 0.45, 13)
    orbits = np.random.default_rng(13).choice([8, 51, 108], size=30)
    result = percentiles_by_orbit(values, orbits)
    assert sorted(result) == sorted(int(o) for o in set(orbits))
    for orbit, (stats, count) in result.items():
        ref_stats, ref_count = reference(values[orbits == orbit])
        np.testing.assert_array_equal(stats, ref_stats)
        np.testing.assert_array_equal(count, ref_count)
    assert sum(c.astype(int) for _, c in result.values()).tolist() == (values != 0).sum(0).tolist()


def test_by_orbit_bad_input():
    values = random_stack((4, 3, 3), 0.45, 14)
    with pytest.raises(ValueError, match="length"):
        percentiles_by_orbit(values, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="integer"):
        percentiles_by_orbit(values, np.array([1.0, 2.0, 1.0, 2.0]))
    assert percentiles_by_orbit(values[:0], np.array([], dtype=int)) == {}


@pytest.mark.parametrize("percentiles", [(10.0, 33.3, 66.7, 90.0), (12.345, 87.654)])
def test_kernel_bit_for_bit_in_float64(percentiles):
    """The public output is float32; run the kernel into float64 to check numpy's lerp."""
    from compositor.stats import _kernel, sorting_network

    values = random_stack((40, 16, 16), 0.45, 15, high=65535)
    stats = np.empty((len(percentiles), 16, 16))
    count = np.empty((16, 16), dtype=np.uint16)
    _kernel(values, sorting_network(len(values)), np.asarray(percentiles) / 100.0, stats, count)
    np.testing.assert_array_equal(stats, reference(values, percentiles)[0])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 17, 33, 100, 257])
def test_sorting_network_sorts(n):
    """Every pair is within ``n`` and ordered, and applying the pairs sorts any column (with ties)."""
    from compositor.stats import sorting_network

    pairs = sorting_network(n)
    assert ((pairs[:, 0] < pairs[:, 1]) & (pairs[:, 1] < n)).all() if len(pairs) else n <= 1
    rng = np.random.default_rng(n)
    columns = rng.integers(0, 5 if n > 20 else 1000, size=(n, 64))
    for i, j in pairs:
        lo, hi = np.minimum(columns[i], columns[j]), np.maximum(columns[i], columns[j])
        columns[i], columns[j] = lo, hi
    assert (np.diff(columns, axis=0) >= 0).all()
