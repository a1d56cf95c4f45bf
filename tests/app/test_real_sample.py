"""The server on the real Earth Search sample scene (Western Sahara, EPSG:32629, orbit 37), on the fly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from compositor.settings import Settings
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
    settings = Settings(data_dir=root / "data", catalog=str(catalog), crs="EPSG:32629", resolution_m=100.0,
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
