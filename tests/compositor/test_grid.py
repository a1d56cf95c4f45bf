"""`project_bounds`: the fast bounds projection used per scene, strip and tile agrees with rasterio's."""

from __future__ import annotations

import pytest
from rasterio.warp import transform_bounds

from compositor.grid import project_bounds


@pytest.mark.parametrize("src, dst, bounds", [
    ("EPSG:3035", "EPSG:32632", (4_300_000.0, 2_700_000.0, 4_315_360.0, 2_715_360.0)),  # a 512 px block at 30 m
    ("EPSG:3035", "EPSG:32633", (4_300_000.0, 2_700_000.0, 4_361_440.0, 2_761_440.0)),  # 2048 px, another zone
    ("EPSG:32629", "EPSG:3035", (249_980.0, 2_730_020.0, 309_780.0, 2_800_020.0)),  # the real sample's tile
    ("EPSG:3035", "EPSG:4326", (2_500_000.0, 1_400_000.0, 7_400_000.0, 5_500_000.0)),  # all of Europe
    ("EPSG:3857", "EPSG:3035", (1_252_344.3, 6_066_042.6, 1_262_128.2, 6_075_826.5)),  # a z12 map tile
])
def test_project_bounds_equals_rasterio_transform_bounds(src, dst, bounds):
    ours = project_bounds(src, dst, bounds)
    theirs = transform_bounds(src, dst, *bounds, densify_pts=21)
    scale = max(abs(v) for v in theirs) or 1.0
    assert ours == pytest.approx(theirs, abs=1e-9 * scale)


def test_project_bounds_in_the_same_crs_is_the_identity():
    assert project_bounds("EPSG:3035", "EPSG:3035", (1, 2, 3, 4)) == (1.0, 2.0, 3.0, 4.0)


def test_project_bounds_that_cannot_be_projected_is_none():
    assert project_bounds("EPSG:3035", "EPSG:4326", (1e12, 1e12, 2e12, 2e12)) is None
    assert project_bounds("not a crs", "EPSG:4326", (0, 0, 1, 1)) is None
