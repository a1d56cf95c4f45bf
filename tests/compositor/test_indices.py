"""Index percentiles (product "indices"): NDVI, NBR, NDWI and custom normalised differences, computed per
observation after masking, then P25/P50/P75 like the bands; int16, scale 0.0001, nodata -32768.

The references are numpy's: the planted scenes' own band and SCL arrays, and, on the real sample scene,
the NDVI of the block's own band values (one observation: its percentiles are the observation)."""

from __future__ import annotations


import numpy as np
import pytest
import rasterio

from compositor.bands import INDEX_NODATA, resolve_indices
from compositor.block import BlockJob, build_block
from compositor.errors import InvalidInputError
from compositor.index import built_blocks
from compositor.layout import SeasonLayout
from compositor.seasons import resolve_season
from compositor.settings import DEFAULT_MASK_CLASSES
from compositor.testing.planted import BLOCK, GRID, SEASON, planted_series


def test_custom_indices_are_validated():
    assert [i.name for i in resolve_indices({"ndmi": ["nir", "swir16"]})] == ["ndvi", "nbr", "ndwi", "ndmi"]
    for bad in ({"ndvi": ["nir", "red"]}, {"x": ["nir", "nir"]}, {"y": ["nir", "B8"]}, {"red": ["nir", "green"]}):
        with pytest.raises(InvalidInputError):
            resolve_indices(bad)


def test_index_percentiles_equal_numpy_on_planted_scenes(tmp_path):
    scenes, arrays = planted_series(tmp_path / "scenes", ["cloud" if day % 3 == 1 else "vegetation" for day in range(7)])
    indices = resolve_indices({"ndmi": ["nir", "swir16"]})
    layout = SeasonLayout(tmp_path / "data", resolve_season(SEASON), GRID.crs, GRID.resolution_m)
    job = BlockJob(layout, BLOCK, tuple(scenes), ("red",), products=("bands", "indices"), indices=indices)
    assert build_block(job).status == "built"
    (built,) = built_blocks(layout, GRID, check_files=True)
    for index in indices:
        per_obs = []
        for stored, scl in arrays:
            a, b = stored[index.a].astype(np.float64), stored[index.b].astype(np.float64)
            valid = (scl != 0) & ~np.isin(scl, DEFAULT_MASK_CLASSES) & (a > 0) & (b > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_obs.append(np.where(valid, np.rint((a - b) / (a + b) * 10_000), np.nan))
        stack = np.stack(per_obs)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = np.nanpercentile(stack, [25, 50, 75], axis=0)
        for kind, reference in zip(("p25", "p50", "p75"), expected):
            with rasterio.open(built.path(layout, index.name, kind)) as src:
                got = src.read(1)
                assert src.dtypes[0] == "int16" and src.nodata == INDEX_NODATA and src.scales[0] == 0.0001
                assert index.name.upper() in src.descriptions[0].upper()
            nothing = np.isnan(reference)
            assert (got[nothing] == INDEX_NODATA).all()
            diff = np.abs(got[~nothing].astype(np.float64) - np.rint(reference[~nothing]))
            assert diff.max() <= 1, (index.name, kind, diff.max())  # float32 per observation vs float64 here
            assert (diff == 0).mean() > 0.99
    # the point of the product: the P50 of NDVI is not the NDVI of the P50 bands
    with rasterio.open(built.path(layout, "ndvi", "p50")) as src:
        ndvi_p50 = src.read(1).astype(np.float64)
    assert "nir" not in job.bands  # bands not asked for are read for the indices, not written
    assert not any("nir" in name for name in built.files)
    assert np.nanmax(ndvi_p50) <= 10_000 and np.nanmin(ndvi_p50[ndvi_p50 != INDEX_NODATA]) >= -10_000


def test_index_of_one_observation_is_the_ndvi_of_its_bands_on_the_real_sample(tmp_path):
    """One real scene (the shipped crop of a real Sentinel-2 L2A tile): a block's NDVI P50 is the NDVI of the
    same block's red and nir P50 (one observation per pixel), computed with numpy."""
    import dataclasses
    from types import MappingProxyType

    from compositor.catalog import load_scenes
    from compositor.grid import OutputGrid
    from tests.samples import SAMPLE_DIR, SAMPLE_FILES

    scene = load_scenes(str(SAMPLE_DIR))[0]  # the shipped crop's files, as tests/compositor/test_mosaic.py reads them
    scene = dataclasses.replace(scene, hrefs=MappingProxyType({k: f"{SAMPLE_DIR}/{v}.tif" for k, v in SAMPLE_FILES.items()}))
    grid = OutputGrid(resolution_m=200, block_size_px=512)
    block = grid.block_by_id("c21_r4")  # one of the four blocks of the crop
    layout = SeasonLayout(tmp_path / "data", resolve_season("2020-winter"), grid.crs, grid.resolution_m)
    job = BlockJob(layout, block, (scene,), ("red", "nir"), products=("bands", "indices"), indices=resolve_indices())
    assert build_block(job).status == "built"
    (built,) = built_blocks(layout, grid, check_files=True)

    def read(band, kind):
        with rasterio.open(built.path(layout, band, kind)) as src:
            return src.read(1).astype(np.float64)

    red, nir, count, ndvi = read("red", "p50"), read("nir", "p50"), read("red", "count"), read("ndvi", "p50")
    one = (count == 1) & (red > 0) & (nir > 0)
    assert one.sum() > 5000  # the crop covers part of the block
    expected = np.rint((nir - red) / (nir + red) * 10_000)
    assert np.abs(ndvi[one] - expected[one]).max() <= 1
    assert (ndvi[count == 0] == INDEX_NODATA).all()
