"""Reading a scene's bands warped together equals reading them one by one (the real sample scene).

The reference is `read_warped`, one file at a time: the path the build used before bands were
stacked. Equality is exact (the same warp, the same pixels), in the sample's UTM grid and in
EPSG:3035, at full resolution and from overviews, averaged and nearest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds

from compositor.composite import band_groups
from compositor.errors import SourceUnavailableError
import rasterio.crs

from compositor.read import GDAL_ENV, coordinate_operation, read_warped, read_warped_bands
from tests.app.upstreams import corrupt, file_handler, http_server, truncated

TEN_M = ("blue", "green", "red", "nir")
TWENTY_M = ("swir16", "swir22")
ONE = ("red",)  # a one-band tile or band group: the same path


def _grid_3035(scene, resolution_m: float, shrink: float = 0.1, crs: str = "EPSG:3035") -> tuple[Affine, tuple[int, int]]:
    """A grid of ``crs`` (EPSG:3035 by default) inside the sample scene (``shrink`` of each side left out);
    ``resolution_m`` in the CRS's units."""
    with rasterio.open(scene.hrefs["red"]) as src:
        left, bottom, right, top = transform_bounds(src.crs, crs, *src.bounds)
    dx, dy = (right - left) * shrink, (top - bottom) * shrink
    left, top = left + dx, top - dy
    width, height = int((right - dx - left) // resolution_m), int((top - bottom - dy) // resolution_m)
    return Affine(resolution_m, 0, left, 0, -resolution_m, top), (height, width)


def _one_by_one(hrefs, crs, transform, shape, resampling, use_overviews):
    return np.stack([read_warped(h, crs, transform, shape, resampling, use_overviews=use_overviews) for h in hrefs])


@pytest.mark.parametrize("bands", [TEN_M, TWENTY_M, ONE], ids=["10m", "20m", "one"])
@pytest.mark.parametrize("resolution_m, use_overviews", [(150.0, False), (250.0, False), (450.0, True), (900.0, True)])
@pytest.mark.parametrize("resampling", [Resampling.average, Resampling.nearest], ids=["average", "nearest"])
def test_bands_warped_together_equal_bands_warped_alone(sample_scene, bands, resolution_m, use_overviews, resampling):
    transform, shape = _grid_3035(sample_scene, resolution_m)
    hrefs = [sample_scene.hrefs[b] for b in bands]
    together = read_warped_bands(hrefs, "EPSG:3035", transform, shape, resampling, use_overviews=use_overviews)
    alone = _one_by_one(hrefs, "EPSG:3035", transform, shape, resampling, use_overviews)
    assert together.shape == (len(bands), *shape) and together.dtype == np.uint16
    assert (together > 0).mean() > 0.5  # the grid is inside the scene: mostly data
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("crs, resolution", [("EPSG:3857", 200.0), ("EPSG:4326", 0.002), ("EPSG:32630", 150.0)])
def test_bands_warped_together_into_map_tile_crss(sample_scene, crs, resolution):
    """Web Mercator and WGS 84 tiles (the on-the-fly path) and a neighbouring UTM zone: still equal."""
    transform, shape = _grid_3035(sample_scene, resolution, crs=crs)
    hrefs = [sample_scene.hrefs[b] for b in TEN_M]
    for resampling in (Resampling.average, Resampling.nearest):
        together = read_warped_bands(hrefs, crs, transform, shape, resampling)
        assert (together > 0).mean() > 0.5
        np.testing.assert_array_equal(together, _one_by_one(hrefs, crs, transform, shape, resampling, False))


def test_the_coordinate_operation_is_given_only_when_unambiguous():
    """UTM (WGS 84) to the product's and the map's CRSs: one pipeline, no database search per warp. A CRS
    pair whose candidate operations disagree (DHDN to ETRS89: Helmert variants) is left to GDAL."""
    utm = rasterio.crs.CRS.from_epsg(32632).to_wkt()
    assert "+proj=utm +zone=32" in coordinate_operation(utm, "EPSG:3035")
    assert "+proj=webmerc" in coordinate_operation(utm, "EPSG:3857")
    assert coordinate_operation(rasterio.crs.CRS.from_epsg(31468).to_wkt(), "EPSG:3035") is None
    assert coordinate_operation("not a CRS", "EPSG:3035") is None


def test_bands_warped_together_in_the_scene_crs_and_partly_outside_it(sample_scene):
    """Same CRS as the files (no reprojection) and a grid hanging over the scene's edge: still equal."""
    with rasterio.open(sample_scene.hrefs["red"]) as src:
        transform = Affine(30.0, 0, src.bounds.left - 3000.0, 0, -30.0, src.bounds.top - 20_000.0)
    shape = (400, 900)
    hrefs = [sample_scene.hrefs[b] for b in TEN_M]
    together = read_warped_bands(hrefs, "EPSG:32629", transform, shape, Resampling.average)
    alone = _one_by_one(hrefs, "EPSG:32629", transform, shape, Resampling.average, False)
    assert (together[:, :, :50] == 0).all() and (together[:, :, 200:] > 0).any()
    np.testing.assert_array_equal(together, alone)


def test_bands_warped_together_over_http(sample_scene):
    """Remote files (GDAL /vsicurl/ with range requests) are stacked like local ones."""
    transform, shape = _grid_3035(sample_scene, 300.0)
    handler, statuses = file_handler(Path(sample_scene.hrefs["red"]))
    with http_server(handler) as base, rasterio.Env(**GDAL_ENV):
        remote = read_warped_bands([f"{base}/a/B04.tif", f"{base}/b/B04.tif?x=1&y=2"], "EPSG:3035", transform, shape,
                                   Resampling.average)
    local = read_warped(sample_scene.hrefs["red"], "EPSG:3035", transform, shape, Resampling.average)
    assert statuses and set(statuses) <= {200, 206}
    np.testing.assert_array_equal(remote, np.stack([local, local]))


@pytest.mark.parametrize("breaks", [corrupt, truncated], ids=["corrupt", "truncated"])
def test_a_broken_band_fails_naming_its_file(sample_scene, tmp_path, breaks):
    transform, shape = _grid_3035(sample_scene, 300.0)
    broken = breaks(Path(sample_scene.hrefs["green"]), tmp_path / "B03.tif")
    hrefs = [sample_scene.hrefs["blue"], str(broken), sample_scene.hrefs["red"]]
    with pytest.raises(SourceUnavailableError, match="B03.tif"):
        read_warped_bands(hrefs, "EPSG:3035", transform, shape, Resampling.average)


def test_bands_on_another_grid_than_the_first_are_not_misplaced(sample_scene):
    """A 20 m file stacked behind 10 m files (not the Sentinel-2 layout, but a catalog may do it):
    each band is still warped from its own grid."""
    transform, shape = _grid_3035(sample_scene, 300.0)
    hrefs = [sample_scene.hrefs["red"], sample_scene.hrefs["swir16"]]
    together = read_warped_bands(hrefs, "EPSG:3035", transform, shape, Resampling.average)
    np.testing.assert_array_equal(together, _one_by_one(hrefs, "EPSG:3035", transform, shape, Resampling.average, False))


def test_band_groups_split_by_resolution_and_memory():
    bands = ["blue", "swir16", "green", "red", "swir22", "nir"]
    assert band_groups(bands, 10, (100, 100)) == [["blue", "green", "red", "nir"], ["swir16", "swir22"]]
    # 40 layers of 2048 x 2048 uint16 are 320 MiB per band: two bands fit a 768 MiB budget
    assert band_groups(bands, 40, (2048, 2048)) == [["blue", "green"], ["red", "nir"], ["swir16", "swir22"]]
    assert band_groups(bands, 400, (2048, 2048)) == [[b] for b in ("blue", "green", "red", "nir", "swir16", "swir22")]
    assert band_groups(["red"], 0, (10, 10)) == [["red"]]


def test_computed_once_computes_a_key_once_for_threads_asking_at_once():
    """Threads asking for the same key at the same moment wait for one computation (``lru_cache`` let each of
    them compute it: the read threads of a window computing the same footprint boxes); keys are kept up to
    ``maxsize``, least recently used out first."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from compositor.read import computed_once

    calls: list[int] = []
    lock = threading.Lock()

    @computed_once(maxsize=2)
    def slow(x: int) -> int:
        with lock:
            calls.append(x)
        time.sleep(0.2)
        return x * 2

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(slow, [1] * 8)) == [2] * 8
    assert calls == [1]
    assert slow(2) == 4 and slow(3) == 6  # 1 is the least recently used: out
    assert slow(1) == 2 and calls == [1, 2, 3, 1]


def test_computed_once_does_not_keep_a_failure():
    from compositor.read import computed_once

    attempts: list[int] = []

    @computed_once(maxsize=4)
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise OSError("unreachable")
        return x

    with pytest.raises(OSError):
        flaky(1)
    assert flaky(1) == 1 and flaky(1) == 1 and attempts == [1, 1]
