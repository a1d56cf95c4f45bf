"""One build of the synthetic archive with every product (``--products indices,medoid,qa``): each goes through the
season outputs (rasters, VRTs with overviews, STAC assets, season.json) as the bands do."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from compositor.bands import INDEX_NODATA
from tests.conftest import SYNTH_SEASON, build_synthetic


@pytest.fixture(scope="module")
def season(synthetic_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("products")
    summary = build_synthetic(synthetic_archive, out, bands="red,nir", products="indices,medoid,qa")
    assert not summary.failed
    return out / SYNTH_SEASON


def collection_of(season):
    return json.loads(next((season / "catalog").rglob("collection.json")).read_text())


def test_season_json_lists_the_products_and_indices(season):
    record = json.loads((season / "season.json").read_text())
    assert record["products"] == ["bands", "indices", "medoid", "qa"] and record["indices"]["nbr"] == ["nir", "swir22"]
    manifests = list((season / "blocks").glob("*/manifest.json"))
    assert manifests and all(json.loads(m.read_text())["products"] == record["products"] for m in manifests)


def test_qa_layer_through_the_season_outputs(season):
    cloudy_somewhere = False
    for manifest in (season / "blocks").glob("*/manifest.json"):
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
    assert {"qa_seen_mosaic", "qa_seen_overview"} <= set(collection_of(season)["assets"])
    item = json.loads(next(p for p in (season / "catalog").rglob("*.json") if p.parent.name.startswith(SYNTH_SEASON)
                           and p.name != "collection.json").read_text())
    assert "qa_seen" in item["assets"] and "ndvi_p50" in item["assets"] and "medoid_doy" in item["assets"]


def test_index_percentiles_through_the_season_outputs(season):
    (vrt,) = season.glob("s2l2a_ndvi_p50_*.vrt")
    with rasterio.open(vrt) as src:
        assert src.dtypes[0] == "int16" and src.nodata == INDEX_NODATA and src.overviews(1)
        data = src.read(1, masked=True)
        assert data.count() > 1000 and -10_000 <= data.min() and data.max() <= 10_000
    assert not list(season.glob("s2l2a_swir22_p50_*.vrt"))  # read for the indices, not written
    band = collection_of(season)["assets"]["ndvi_p50_mosaic"]["raster:bands"][0]
    assert band["data_type"] == "int16" and band["nodata"] == INDEX_NODATA and band["scale"] == 0.0001


def test_medoid_through_the_season_outputs(season):
    (vrt,) = season.glob("s2l2a_swir22_medoid_*.vrt")  # all six bands, whatever bands the build asked for
    (doy,) = season.glob("s2l2a_medoid_doy_*.vrt")
    (p50,) = season.glob("s2l2a_red_p50_*.vrt")
    with rasterio.open(vrt) as src, rasterio.open(doy) as days, rasterio.open(p50) as red:
        swir, when, seen = src.read(1), days.read(1), red.read(1) > 0
        assert src.overviews(1) and ((swir > 0) == (when > 0)).all()
        assert (swir > 0).sum() >= 0.95 * seen.sum() > 1000  # a medoid wherever the bands have observations
        assert len(np.unique(when[when > 0])) > 3
    assert collection_of(season)["assets"]["medoid_doy_mosaic"]["raster:bands"][0]["unit"] == "day of year"
