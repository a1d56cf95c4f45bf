"""What a map client is told: TileJSON and WMTS bounds cover where tiles can come from (the built blocks
and the region on-the-fly compositing serves), not only the built part; zooms stay right for both."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from tests.app.helpers import ARCHIVE_BBOX, BUILT_LONLAT, SEASON, UNBUILT_LONLAT, app_settings, free_port

BASE = f"/seasons/{SEASON}"
OWS = "{http://www.opengis.net/ows/1.1}"
EUROPE_3035 = (-35.58, 24.6, 44.83, 84.73)  # the area of use of EPSG:3035 (lon/lat)


def tilejson(client, tms: str = "WebMercatorQuad") -> dict:
    response = client.get(f"{BASE}/{tms}/tilejson.json?preset=true-colour")
    assert response.status_code == 200, response.text
    return response.json()


def wmts_boxes(client, tms: str = "WebMercatorQuad") -> list[tuple[float, float, float, float]]:
    response = client.get(f"{BASE}/{tms}/WMTSCapabilities.xml")
    assert response.status_code == 200, response.text
    boxes = []
    for box in ET.fromstring(response.content).iter(f"{OWS}WGS84BoundingBox"):
        west, south = map(float, box.find(f"{OWS}LowerCorner").text.split())
        east, north = map(float, box.find(f"{OWS}UpperCorner").text.split())
        boxes.append((west, south, east, north))
    assert boxes
    return boxes


def contains(bounds, lonlat) -> bool:
    west, south, east, north = bounds
    return west < lonlat[0] < east and south < lonlat[1] < north


@pytest.mark.parametrize("fixture", ["client", "unbuilt_client"])
@pytest.mark.parametrize("tms", ["WebMercatorQuad", "EuropeanETRS89_LAEAQuad"])
def test_bounds_cover_the_built_and_the_on_the_fly_part(request, fixture, tms):
    """A local catalog: the season's scenes' extent (with the built block): both points with scenes are in,
    and the bounds are that region, not the whole grid's area."""
    client = request.getfixturevalue(fixture)
    bounds = tilejson(client, tms)["bounds"]
    for box in [bounds, *wmts_boxes(client, tms)]:
        assert contains(box, BUILT_LONLAT) and contains(box, UNBUILT_LONLAT), box
        assert box[0] <= ARCHIVE_BBOX[0] + 0.01 and box[2] >= ARCHIVE_BBOX[2] - 0.01, box
        assert box[2] - box[0] < 1.5 and box[3] - box[1] < 1.5, box  # the archive's scenes, not Europe


def test_zooms(client, unbuilt_client):
    """Built: from zoom 0 (the season overview); unbuilt: from the on-the-fly minimum. 100 m pixels at 48 N
    need WebMercator zoom 11, on either side."""
    built, unbuilt = tilejson(client), tilejson(unbuilt_client)
    assert (built["minzoom"], built["maxzoom"]) == (0, 11)
    assert (unbuilt["minzoom"], unbuilt["maxzoom"]) == (9, 11)


def test_a_season_without_scenes_keeps_the_grid_area(unbuilt_client):
    """2022-spring has no scene in the archive and nothing built: the grid's area of use, as before."""
    response = unbuilt_client.get("/seasons/2022-spring/WebMercatorQuad/tilejson.json")
    assert response.status_code == 200, response.text
    west, south, east, north = response.json()["bounds"]
    assert west < -30 and east > 40 and south < 30 and north > 80


def app_client(data, catalog: str) -> TestClient:
    from app.main import create_app

    return TestClient(create_app(app_settings(data, catalog)), raise_server_exceptions=False)


@pytest.mark.parametrize("catalog", ["stac-api", "missing-file"])
def test_bounds_without_a_readable_catalog_extent(built, tmp_path, catalog):
    """A STAC API (never asked: a closed port here) or a local catalog that is gone: the grid's area of use
    (Europe for EPSG:3035) with the built blocks, answered at once, never a 500; the built part keeps its
    detail (zoom 11) although Europe's middle needs only 10."""
    url = f"http://127.0.0.1:{free_port()}/v1" if catalog == "stac-api" else str(tmp_path / "gone.json")
    with app_client(built.data, url) as client:
        started = time.monotonic()
        body = tilejson(client)
        boxes = [body["bounds"], *wmts_boxes(client), tilejson(client, "EuropeanETRS89_LAEAQuad")["bounds"]]
        assert time.monotonic() - started < 5
        for west, south, east, north in boxes:
            assert west < EUROPE_3035[0] + 1 and east > EUROPE_3035[2] - 1, (west, east)
            assert south < EUROPE_3035[1] + 1 and north > EUROPE_3035[3] - 1, (south, north)
        assert (body["minzoom"], body["maxzoom"]) == (0, 11)
        assert client.get(f"{BASE}/info").status_code == 200
