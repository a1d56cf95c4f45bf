"""Cutting a target grid from built COGs with datum-less twins of the CRSs: the same pixels as rio-tiler with
the EPSG definitions, and the twins only where every operation between the CRSs is the same."""

from __future__ import annotations

import morecantile
import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import array_bounds, from_bounds
from rio_tiler.io import Reader

from app.built import cut
from compositor.read import search_free_crs_pair
from tests.app.helpers import BUILT_BLOCK, BUILT_LONLAT, SEASON


@pytest.mark.parametrize(("src", "dst"), [("EPSG:3035", "EPSG:3857"), ("EPSG:3035", "EPSG:4326"),
                                          ("EPSG:32629", "EPSG:3857"), ("EPSG:32632", "EPSG:3035")])
def test_twins_where_the_operation_is_unambiguous(src, dst):
    pair = search_free_crs_pair(CRS.from_user_input(src).to_wkt(), CRS.from_user_input(dst).to_wkt())
    assert pair is not None
    assert all("+datum" not in c.to_proj4() and "towgs84" not in c.to_proj4() for c in pair)


def test_no_twins_where_proj_knows_several_operations():
    """CH1903+ to WGS 84 has several transformations (metres apart): GDAL's own choice must stand."""
    assert search_free_crs_pair("EPSG:2056", "EPSG:3857") is None


@pytest.mark.parametrize("z", [7, 9, 11, 12, 13, 15])
@pytest.mark.parametrize(("resampling", "reproject"), [("nearest", "nearest"), ("bilinear", "bilinear")])
def test_cut_equals_rio_tiler_with_the_epsg_crss(built, z, resampling, reproject):
    tms = morecantile.tms.get("WebMercatorQuad")
    tile = tms.tile(*BUILT_LONLAT, z)
    transform = from_bounds(*tms.xy_bounds(tile), 256, 256)
    crs = CRS.from_epsg(3857)
    path = next((built.data / SEASON / "blocks" / BUILT_BLOCK).glob("*_red_p50_*.tif"))
    with Reader(str(path)) as src:
        assert search_free_crs_pair(src.crs.to_wkt(), crs.to_wkt()) is not None  # the twins are used
        ours = cut(src, crs, transform, (256, 256), resampling, reproject)
        plain = src.part(array_bounds(256, 256, transform), dst_crs=crs, bounds_crs=crs, height=256, width=256,
                         max_size=None, resampling_method=resampling, reproject_method=reproject).array
    assert ours.data.any()
    np.testing.assert_array_equal(ours.data, plain.data)
    np.testing.assert_array_equal(np.ma.getmaskarray(ours), np.ma.getmaskarray(plain))
