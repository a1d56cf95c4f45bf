"""Exactness of the compositing pipeline on planted scenes against a numpy reference."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from affine import Affine

from compositor.bands import BAND_NAMES
from compositor.blend import orbit_weights
from compositor.grid import pixel_lonlat
from compositor.composite import CompositeOptions, composite_window
from compositor.settings import DEFAULT_MASK_CLASSES
from compositor.testing.planted import planted_scene

CRS = "EPSG:32632"
TRANSFORM = Affine(100.0, 0.0, 690_000.0, 0.0, -100.0, 5_310_000.0)  # about 11.55 E, 47.9 N
SHAPE = (48, 64)
SCL_CHOICES = np.array([0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 2, 7])
SCL_P = np.array([0.04, 0.02, 0.06, 0.25, 0.15, 0.05, 0.08, 0.08, 0.07, 0.04, 0.08, 0.08])


def _plant(tmp_path, n_acq=14, orbits=(65, 22), seed=1, split_tiles=True):
    """Scenes with random values and SCL; returns scenes and the reference inputs per acquisition."""
    rng = np.random.default_rng(seed)
    scenes, truth = [], []
    start = dt.datetime(2022, 1, 10, 10, 30, tzinfo=dt.UTC)
    for i in range(n_acq):
        orbit = orbits[i % len(orbits)]
        when = start + dt.timedelta(days=2 * i)
        offset = 1000 if when >= dt.datetime(2022, 1, 25, tzinfo=dt.UTC) and i % 3 else 0
        refl = {b: rng.integers(1, 6000, SHAPE, dtype=np.uint16) for b in BAND_NAMES}
        scl = rng.choice(SCL_CHOICES, size=SHAPE, p=SCL_P).astype(np.uint8)
        stored = {b: np.where(scl == 0, 0, refl[b] + offset).astype(np.uint16) for b in BAND_NAMES}
        platform = "sentinel-2a" if i % 2 else "sentinel-2b"
        if split_tiles and i % 4 == 0:
            # One acquisition seen in two MGRS tiles: west part in one, east part (overlapping by 8 px) in the other.
            west_cols, east_cols = slice(0, 40), slice(32, 64)
            for cols, mgrs in ((west_cols, "32UPU"), (east_cols, "32UQU")):
                keep = np.zeros(SHAPE, dtype=bool)
                keep[:, cols] = True
                part = {b: np.where(keep, v, 0).astype(np.uint16) for b, v in stored.items()}
                scenes.append(planted_scene(tmp_path, f"S_{i}_{mgrs}", when, orbit, CRS, TRANSFORM, part,
                                            np.where(keep, scl, 0), offset_dn=offset, platform=platform, mgrs=mgrs))
        else:
            scenes.append(planted_scene(tmp_path, f"S_{i}", when, orbit, CRS, TRANSFORM, stored, scl,
                                        offset_dn=offset, platform=platform))
        truth.append((orbit, refl, scl))
    return scenes, truth


def _reference(truth, band, invalid=DEFAULT_MASK_CLASSES, blend=True, power=2.0):
    orbits = sorted({o for o, _, _ in truth})
    per_orbit = {}
    for orbit in orbits:
        layers = []
        for o, refl, scl in truth:
            if o != orbit:
                continue
            valid = ~np.isin(scl, list(invalid)) & (scl != 0)
            layers.append(np.where(valid, refl[band].astype(np.float64), np.nan))
        stack = np.stack(layers)
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if np.isnan(stack).all(axis=0).any() else _null():
            pct = np.nanpercentile(stack, [25, 50, 75], axis=0)
        per_orbit[orbit] = (pct, np.sum(~np.isnan(stack), axis=0))
    if not blend:
        everything = np.stack([np.where(~np.isin(scl, list(invalid)) & (scl != 0), refl[band].astype(np.float64), np.nan)
                               for _, refl, scl in truth])
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if np.isnan(everything).all(axis=0).any() else _null():
            return np.nanpercentile(everything, [25, 50, 75], axis=0), np.sum(~np.isnan(everything), axis=0)
    lon, lat = pixel_lonlat(CRS, TRANSFORM, SHAPE)
    num = np.zeros((3, *SHAPE))
    den = np.zeros(SHAPE)
    for orbit, (pct, count) in per_orbit.items():
        w = np.where(count > 0, orbit_weights(orbit, lon, lat, power), 0.0)
        num += np.where(count > 0, pct, 0.0) * w
        den += w
    with np.errstate(all="ignore"):
        blended = num / den
    blended[:, den == 0] = np.nan
    return blended, sum(c for _, c in per_orbit.values())


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _plant(tmp_path_factory.mktemp("planted"))


def test_both_orbits_weigh_in_here():
    lon, lat = pixel_lonlat(CRS, TRANSFORM, SHAPE)
    assert (orbit_weights(65, lon, lat) > 0).all() and (orbit_weights(22, lon, lat) > 0).all()


@pytest.mark.parametrize("band", ["blue", "nir", "swir22"])
def test_blended_percentiles_and_count_equal_reference(planted, band):
    scenes, truth = planted
    result = composite_window(scenes, [band], CRS, TRANSFORM, SHAPE)
    ref_stats, ref_count = _reference(truth, band)
    np.testing.assert_array_equal(result.counts[band], ref_count)
    np.testing.assert_allclose(result.stats[band], ref_stats.astype(np.float32), rtol=1e-6, equal_nan=True)
    assert result.n_acquisitions == len(truth)


def test_single_orbit_is_exactly_nanpercentile(tmp_path):
    scenes, truth = _plant(tmp_path, n_acq=9, orbits=(65,))
    result = composite_window(scenes, ["red"], CRS, TRANSFORM, SHAPE)
    ref_stats, ref_count = _reference(truth, "red")
    np.testing.assert_array_equal(result.stats["red"], ref_stats.astype(np.float32))
    np.testing.assert_array_equal(result.counts["red"], ref_count)


def test_pooled_without_blending(planted):
    scenes, truth = planted
    result = composite_window(scenes, ["green"], CRS, TRANSFORM, SHAPE, CompositeOptions(blend=False))
    ref_stats, ref_count = _reference(truth, "green", blend=False)
    np.testing.assert_array_equal(result.stats["green"], ref_stats.astype(np.float32))
    np.testing.assert_array_equal(result.counts["green"], ref_count)


def test_masking_snow_is_a_setting(planted):
    scenes, truth = planted
    invalid = (*DEFAULT_MASK_CLASSES, 11)
    result = composite_window(scenes, ["red"], CRS, TRANSFORM, SHAPE, CompositeOptions(invalid_classes=invalid))
    ref_stats, ref_count = _reference(truth, "red", invalid=invalid)
    np.testing.assert_array_equal(result.counts["red"], ref_count)
    default = composite_window(scenes, ["red"], CRS, TRANSFORM, SHAPE)
    assert (default.counts["red"] >= result.counts["red"]).all() and (default.counts["red"] > result.counts["red"]).any()


def test_missing_and_corrupt_scenes_are_skipped_and_reported(tmp_path):
    scenes, truth = _plant(tmp_path, n_acq=6, orbits=(65,), split_tiles=False)
    (tmp_path / scenes[1].id / "red.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / scenes[2].id / "scl.tif").unlink()
    result = composite_window(scenes, ["red"], CRS, TRANSFORM, SHAPE)
    assert set(result.skipped) == {scenes[1].id, scenes[2].id}
    assert scenes[2].id in result.skipped[scenes[2].id] or "scl" in result.skipped[scenes[2].id]
    kept = [truth[i] for i in (0, 3, 4, 5)]
    ref_stats, ref_count = _reference(kept, "red")
    np.testing.assert_array_equal(result.counts["red"], ref_count)
    np.testing.assert_array_equal(result.stats["red"], ref_stats.astype(np.float32))


def test_no_scenes_gives_nan_and_zero_count():
    result = composite_window([], ["red", "nir"], CRS, TRANSFORM, SHAPE)
    assert np.isnan(result.stats["red"]).all() and (result.counts["nir"] == 0).all()
