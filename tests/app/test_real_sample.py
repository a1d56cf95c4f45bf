"""The server on the real Earth Search sample scene (Western Sahara, EPSG:32629, orbit 37), on the fly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServerSettings
from tests.app.helpers import decode, load_npy, tile_url

SAMPLE_SEASON = "2020-winter"
SAMPLE_LONLAT = (-11.42, 24.80)
ASSETS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12", "scl": "SCL"}


@pytest.fixture(scope="module")
def sample_client(sample_dir, tmp_path_factory):
    """An unbuilt server whose catalog is the real item, its hrefs pointing at the local files."""
    root = tmp_path_factory.mktemp("sample-catalog")
    item = json.loads(next(sample_dir.glob("*_L2A.json")).read_text())
    for key, name in ASSETS.items():
        item["assets"][key]["href"] = str(sample_dir / f"{name}.tif")
    catalog = root / "catalog.json"
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    settings = ServerSettings(data_dir=root / "data", catalog=str(catalog), crs="EPSG:32629", resolution_m=100.0,
                        block_size_px=256)
    with TestClient(create_app(settings)) as client:
        yield client


def test_real_scene_tile_on_the_fly(sample_client, sample_scene):
    response = sample_client.get(tile_url(SAMPLE_LONLAT, 11, "npy", "bands=red,nir,swir16", season=SAMPLE_SEASON))
    assert response.status_code == 200 and response.headers["x-s2seasons-source"] == "on-the-fly"
    data = load_npy(response.content)
    valid = data[3] > 0
    assert valid.mean() > 0.9  # desert, about 4 % cloud in the whole scene
    red, nir, swir16 = (band[valid].astype(float) for band in data[:3])
    assert 1500 < np.median(red) < 6000  # bright desert reflectance (baseline 02.14: no offset to remove)
    assert np.median(swir16) > np.median(nir) > np.median(red) * 0.8
    picture = decode(sample_client.get(tile_url(SAMPLE_LONLAT, 11, season=SAMPLE_SEASON)).content)
    assert picture.shape == (4, 256, 256) and picture[:3].mean() > 60


def test_real_scene_point(sample_client):
    body = sample_client.get(f"/seasons/{SAMPLE_SEASON}/point/{SAMPLE_LONLAT[0]},{SAMPLE_LONLAT[1]}").json()
    values = dict(zip(body["band_names"], body["values"]))
    assert values["red_count"] == 1  # one acquisition: every statistic is its value
    assert values["red_p25"] == values["red_p50"] == values["red_p75"] > 0


def test_real_scene_on_the_fly_equals_the_built_block(sample_dir, tmp_path):
    """On the real 10/20 m scene at the product's 30 m: a block built, then the same tiles from a server
    where it is not built. Where built tiles read the block's full-resolution COGs (z12 and finer at
    25 N), the on-the-fly tiles are the built ones within 1 DN (the 10 m bands' averaging warp of a 256 px
    chunk against the build's 512-row strip), with the same pixels empty."""
    from app.queue import block_bbox_4326
    from compositor.build import run_build
    from compositor.grid import OutputGrid

    item = json.loads(next(sample_dir.glob("*_L2A.json")).read_text())
    for key, name in ASSETS.items():
        item["assets"][key]["href"] = str(sample_dir / f"{name}.tif")
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    grid = {"crs": "EPSG:32629", "resolution_m": 30.0, "block_size_px": 512}
    block = OutputGrid(**grid).block_by_id(_block_id(OutputGrid(**grid), SAMPLE_LONLAT))
    built_settings = ServerSettings(data_dir=tmp_path / "data", catalog=str(catalog), **grid)
    summary = run_build(built_settings, SAMPLE_SEASON, block_bbox_4326(block), workers=1, progress=False)
    assert [r.status for r in summary.results] == ["built"], summary.describe()
    west, south, east, north = block.footprint_4326().bounds
    centre = ((west + east) / 2, (south + north) / 2)
    unbuilt_settings = ServerSettings(data_dir=tmp_path / "empty", catalog=str(catalog), **grid)
    with TestClient(create_app(built_settings)) as built, TestClient(create_app(unbuilt_settings)) as fly:
        for z in (12, 13, 15):
            for query in ("bands=red,nir,swir16&statistic=p50", "bands=blue&statistic=count",
                          "bands=swir22&statistic=p75"):
                url = tile_url(centre, z, "npy", query, season=SAMPLE_SEASON)
                expected, response = built.get(url), fly.get(url)
                assert expected.headers["x-s2seasons-source"] in ("built", "mixed")  # z12: the block and beyond
                assert response.headers["x-s2seasons-source"] == "on-the-fly"
                a, b = load_npy(expected.content).astype(int), load_npy(response.content).astype(int)
                np.testing.assert_array_equal(a[-1] > 0, b[-1] > 0)
                both = (a[-1] > 0) & (b[-1] > 0)
                assert both.mean() > 0.5 and np.abs(a[:-1][:, both] - b[:-1][:, both]).max() <= 1


def _block_id(grid, lonlat) -> str:
    x, y = grid.bounds_in_grid((*lonlat, *lonlat))[:2]
    span = grid.block_size_px * grid.resolution_m
    return grid.block(int(x // span), int(y // span)).id
