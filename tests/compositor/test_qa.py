"""The QA layer (product "qa"): per pixel the observations seen, valid or masked, beside the counts.

Checked against the planted scenes' own SCL arrays (numpy, nothing of the compositor); a build of the synthetic
archive with every product is checked in test_products.py."""

from __future__ import annotations


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
from compositor.testing.planted import BLOCK, GRID, SEASON, planted_series


def test_products_are_validated_and_bands_always_made():
    assert resolve_products(None) == ("bands",)
    assert resolve_products("qa") == ("bands", "qa")
    with pytest.raises(InvalidInputError, match="unknown product 'medoids'"):
        resolve_products("bands,medoids")


def test_seen_counts_every_acquisition_whose_data_cover_the_pixel(tmp_path):
    """Four acquisitions: clear, all cloud, clear, and one with data on the left half only (its right half is
    SCL 0, no data). Seen = 4 on the left, 3 on the right; the counts are the clear ones among them."""
    scenes, arrays = planted_series(tmp_path / "scenes", ["vegetation", "cloud", "vegetation", "vegetation"],
                                    days_apart=3)
    scls = [scl for _, scl in arrays]
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
