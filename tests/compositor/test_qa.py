"""The QA layer (product "qa"): per pixel the observations seen, valid or masked, beside the counts.

Checked against the planted scenes' own SCL arrays (numpy, nothing of the compositor) and through a build of
the synthetic archive (rasters, VRT, STAC, season.json)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from compositor.bands import COUNT, SEEN, resolve_products
from compositor.block import BlockJob, build_block
from compositor.errors import InvalidInputError
from compositor.index import built_blocks
from compositor.layout import SeasonLayout
from compositor.seasons import resolve_season
from compositor.settings import DEFAULT_MASK_CLASSES
from compositor.testing.planted import BLOCK, GRID, SEASON, WHEN, planted_scene, scene_arrays
from tests.conftest import SYNTH_SEASON, build_synthetic


def test_products_are_validated_and_bands_always_made():
    assert resolve_products(None) == ("bands",)
    assert resolve_products("qa") == ("bands", "qa")
    with pytest.raises(InvalidInputError, match="unknown product 'medoids'"):
        resolve_products("bands,medoids")


def test_seen_counts_every_acquisition_whose_data_cover_the_pixel(tmp_path):
    """Four acquisitions: clear, all cloud, clear, and one with data on the left half only (its right half is
    SCL 0, no data). Seen = 4 on the left, 3 on the right; the counts are the clear ones among them."""
    scenes, scls = [], []
    for day, kind in enumerate(("vegetation", "cloud", "vegetation", "vegetation")):
        bands, scl = scene_arrays(kind, seed=day)
        if day == 3:
            scl = scl.copy()
            scl[:, BLOCK.size_px // 2:] = 0
            bands = {b: np.where(scl == 0, 0, v) for b, v in bands.items()}
        stored = {b: np.rint(v).astype(np.uint16) for b, v in bands.items()}
        scenes.append(planted_scene(tmp_path / "scenes", f"s{day}", WHEN + dt.timedelta(days=3 * day), 22, BLOCK.crs,
                                    BLOCK.transform, stored, scl))
        scls.append(scl)
    layout = SeasonLayout(tmp_path / "data", resolve_season(SEASON), GRID.crs, GRID.resolution_m)
    job = BlockJob(layout, BLOCK, tuple(scenes), ("red",), products=("bands", "qa"))
    assert build_block(job).status == "built"

    scl = np.stack(scls)
    expected_seen = (scl != 0).sum(axis=0)
    expected_clear = ((scl != 0) & ~np.isin(scl, DEFAULT_MASK_CLASSES)).sum(axis=0)
    (built,) = built_blocks(layout, GRID, check_files=True)
    with rasterio.open(built.path(layout, "qa", SEEN)) as src:
        seen = src.read(1)
        assert src.nodata is None and src.dtypes[0] == "uint16"
        assert "seen" in src.descriptions[0].lower()
    with rasterio.open(built.path(layout, "red", COUNT)) as src:
        count = src.read(1)
    np.testing.assert_array_equal(seen, expected_seen)
    np.testing.assert_array_equal(count, expected_clear)
    assert set(np.unique(seen)) == {3, 4} and (seen >= count).all()
    assert cog_validate(str(built.path(layout, "qa", SEEN)), quiet=True)[0]


def test_a_build_with_qa_writes_it_through_the_season_outputs(synthetic_archive, tmp_path):
    out = tmp_path / "data"
    summary = build_synthetic(synthetic_archive, out, bands="red,nir", products="qa")
    assert not summary.failed
    season = out / SYNTH_SEASON
    assert json.loads((season / "season.json").read_text())["products"] == ["bands", "qa"]
    blocks = list((season / "blocks").glob("*/manifest.json"))
    assert blocks and all(json.loads(m.read_text())["products"] == ["bands", "qa"] for m in blocks)
    cloudy_somewhere = False
    for manifest in blocks:
        (seen_file,) = manifest.parent.glob("s2l2a_qa_seen_*.tif")
        with rasterio.open(seen_file) as src:
            seen = src.read(1).astype(int)
        for band in ("red", "nir"):
            with rasterio.open(next(manifest.parent.glob(f"s2l2a_{band}_count_*.tif"))) as src:
                count = src.read(1).astype(int)
            assert (seen >= count).all()
            cloudy_somewhere |= bool((seen > count).any())
    assert cloudy_somewhere  # the archive has clouds: some observations were seen and masked
    (vrt,) = season.glob("s2l2a_qa_seen_*.vrt")
    with rasterio.open(vrt) as src:
        assert src.overviews(1) and src.read(1, out_shape=(16, 16)).max() > 0
    collection = json.loads(next((season / "catalog").rglob("collection.json")).read_text())
    assert "qa_seen_mosaic" in collection["assets"] and "qa_seen_overview" in collection["assets"]
    item = json.loads(next(p for p in (season / "catalog").rglob("*.json") if p.parent.name.startswith(SYNTH_SEASON)
                           and p.name != "collection.json").read_text())
    assert "qa_seen" in item["assets"]
