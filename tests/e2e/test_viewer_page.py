"""The viewer page as the server renders it (no browser): every resource it names is on the server itself."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from tests.app.helpers import REPO, app_settings

RESOURCE = re.compile(r'\b(?:src|href)="([^"]*)"')


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from app.main import create_app

    folder = tmp_path_factory.mktemp("viewer-page")
    with TestClient(create_app(app_settings(folder, folder / "catalog.json"))) as test_client:
        yield test_client


def test_page_names_only_its_own_resources(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    resources = RESOURCE.findall(response.text)
    assert "/static/vendor/leaflet/leaflet.js" in resources and "/static/viewer/js/main.js" in resources
    assert all(url.startswith("/") and not url.startswith("//") for url in resources), resources
    for url in resources:
        assert client.get(url).status_code == 200, url


def test_page_config_lists_presets_bands_and_the_on_the_fly_zoom(client):
    text = client.get("/").text
    config = json.loads(re.search(r'<script id="s2-config" type="application/json">(.*?)</script>', text, re.S)[1])
    assert [p["name"] for p in config["presets"]] == ["true-colour", "colour-infrared", "nir-swir", "swir", "ndvi",
                                                       "count"]
    assert [b["name"] for b in config["bands"]] == ["blue", "green", "red", "nir", "swir16", "swir22"]
    assert config["statistics"] == ["p25", "p50", "p75", "medoid"] and config["onTheFlyMinZoom"] == 9


def test_leaflet_is_vendored_with_its_licence(client):
    assert "Leaflet 1.9.4" in client.get("/static/vendor/leaflet/leaflet.js").text[:200]
    assert "BSD 2-Clause License" in client.get("/static/vendor/leaflet/LICENSE").text
    assert client.get("/static/vendor/leaflet/images/marker-icon.png").headers["content-type"] == "image/png"


def test_viewer_code_calls_no_other_host():
    """The only absolute URL in the viewer's own code is the opt-in OpenStreetMap basemap."""
    hosts = set()
    for path in [*(REPO / "static" / "viewer").rglob("*.*"), *(REPO / "templates").rglob("*.html")]:
        hosts |= set(re.findall(r"https?://([^/\"'`\s]+)", path.read_text()))
    assert hosts <= {"tile.openstreetmap.org", "www.w3.org"}, hosts
