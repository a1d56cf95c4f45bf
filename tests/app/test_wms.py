"""The WMS-T endpoint (`app.wms`) and the Time dimension of the WMTS capabilities (`app.wmts`).

Over the half-built test season (2022-winter built; any other season composited on the fly, and the
archive has no scene outside 2022-winter). A GetMap is checked against the season's own ``/bbox``
answer (same pixels), a GetFeatureInfo against ``/point``; TIME picks the season. QGIS itself draws
two built seasons in `tests/e2e/test_qgis.py`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.app.helpers import BUILT_LONLAT, SEASON, decode

WMS = "{http://www.opengis.net/wms}"
OGC = "{http://www.opengis.net/ogc}"
BBOX_3857 = (1262000.0, 6088000.0, 1268000.0, 6094000.0)  # inside the built block
GETMAP = ("/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=true-colour&STYLES=&CRS=EPSG:3857"
          "&BBOX={},{},{},{}&WIDTH=200&HEIGHT=200&FORMAT=image/png&TRANSPARENT=TRUE").format(*BBOX_3857)


def _bbox_image(client, season: str, query: str = "preset=true-colour") -> np.ndarray:
    west, south, east, north = BBOX_3857
    response = client.get(f"/seasons/{season}/bbox/{west},{south},{east},{north}/200x200.png"
                          f"?coord_crs=EPSG:3857&dst_crs=EPSG:3857&{query}")
    assert response.status_code == 200, response.text
    return decode(response.content)


def test_capabilities_list_presets_styles_and_the_seasons_as_time(client):
    response = client.get("/wms?service=WMS&request=GetCapabilities")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == f"{WMS}WMS_Capabilities" and root.get("version") == "1.3.0"
    top = root.find(f"{WMS}Capability/{WMS}Layer")
    dimension = top.find(f"{WMS}Dimension")
    assert dimension.get("name") == "time" and dimension.get("units") == "ISO8601"
    assert dimension.get("default") == "2021-12-02"  # the latest built season: 2022-winter
    assert "2021-12-02/2022-03-20/P1D" in dimension.text.split(",")
    assert {c.text for c in top.findall(f"{WMS}CRS")} >= {"EPSG:3857", "EPSG:3035", "EPSG:4326", "CRS:84"}
    layers = {layer.findtext(f"{WMS}Name"): [s.findtext(f"{WMS}Name") for s in layer.findall(f"{WMS}Style")]
              for layer in top.findall(f"{WMS}Layer")}
    assert layers["true-colour"] == ["p50", "p25", "p75", "medoid"]
    assert layers["count"] == ["count"] and "ndvi" in layers
    formats = root.find(f"{WMS}Capability/{WMS}Request/{WMS}GetFeatureInfo").findall(f"{WMS}Format")
    assert "application/json" in {f.text for f in formats}


@pytest.mark.parametrize("time", ["2022-01-10T00:00:00Z", "2022-01-10", "2021-12-02/2022-03-20", "2022-winter",
                                  "2021-11-20/2022-02-01", None])
def test_getmap_draws_the_season_time_names_like_its_bbox_route(client, time):
    url = GETMAP + (f"&TIME={time}" if time else "")
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-s2seasons-season"] == SEASON
    assert response.headers["x-s2seasons-source"] == "built"
    image = decode(response.content)
    np.testing.assert_array_equal(image, _bbox_image(client, SEASON))
    assert (image[3] == 255).mean() > 0.95 and 20 < image[:3].mean() < 235


def test_getmap_style_is_the_statistic_and_other_seasons_are_on_the_fly(client):
    p75 = decode(client.get(GETMAP.replace("LAYERS=true-colour&STYLES=", "LAYERS=ndvi&STYLES=p75")
                            + "&TIME=2022-02-01").content)
    np.testing.assert_array_equal(p75, _bbox_image(client, SEASON, "preset=ndvi&statistic=p75"))
    spring = client.get(GETMAP + "&TIME=2022-04-15T00:00:00Z")  # no scene of 2022-spring in the archive
    assert spring.status_code == 200
    assert spring.headers["x-s2seasons-season"] == "2022-spring"
    assert spring.headers["x-s2seasons-source"] == "not-built"
    assert (decode(spring.content)[3] == 0).all()


def test_axis_order_of_wms_130(client):
    """EPSG:4326 lists latitude first in WMS 1.3.0; CRS:84 and WMS 1.1.1's SRS list longitude first."""
    lonlat = "11.35,47.88,11.39,47.92"
    latlon = "47.88,11.35,47.92,11.39"
    base = ("/wms?SERVICE=WMS&REQUEST=GetMap&LAYERS=true-colour&STYLES=&WIDTH=120&HEIGHT=160&FORMAT=image/png"
            "&TIME=2022-winter")
    crs84 = decode(client.get(f"{base}&VERSION=1.3.0&CRS=CRS:84&BBOX={lonlat}").content)
    epsg4326 = decode(client.get(f"{base}&VERSION=1.3.0&CRS=EPSG:4326&BBOX={latlon}").content)
    wms111 = decode(client.get(f"{base}&VERSION=1.1.1&SRS=EPSG:4326&BBOX={lonlat}").content)
    assert crs84.shape == (4, 160, 120) and crs84[3].mean() > 250
    np.testing.assert_array_equal(crs84, epsg4326)
    np.testing.assert_array_equal(crs84, wms111)


def test_getfeatureinfo_answers_the_point_values(client):
    i, j = 57, 121
    west, south, east, north = BBOX_3857
    x, y = west + (i + 0.5) * (east - west) / 200, north - (j + 0.5) * (north - south) / 200
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(x, y)
    url = (GETMAP.replace("GetMap", "GetFeatureInfo") + f"&QUERY_LAYERS=true-colour&I={i}&J={j}&TIME=2022-01-05")
    feature = client.get(url + "&INFO_FORMAT=application/json").json()["features"][0]
    point = client.get(f"/seasons/{SEASON}/point/{lon},{lat}").json()
    expected = dict(zip(point["band_names"], point["values"]))
    properties = feature["properties"]
    assert properties["season"] == SEASON
    assert {k: properties[k] for k in expected} == expected
    assert expected["red_p50"] > 0 and expected["red_count"] > 0
    text = client.get(url + "&INFO_FORMAT=text/plain")
    assert text.headers["content-type"].startswith("text/plain")
    assert f"red_p50 = {int(expected['red_p50'])}" in text.text
    assert "<table>" in client.get(url + "&INFO_FORMAT=text/html").text


@pytest.mark.parametrize(("query", "code", "says"), [
    ("SERVICE=WMS", "MissingParameterValue", "REQUEST is missing"),
    ("SERVICE=WMS&REQUEST=GetLegend", "OperationNotSupported", "GetCapabilities, GetMap or GetFeatureInfo"),
    ("SERVICE=WMTS&REQUEST=GetCapabilities", "InvalidParameterValue", "SERVICE=WMS"),
    ("REQUEST=GetMap&LAYERS=nope", "LayerNotDefined", "use one of true-colour"),
    ("REQUEST=GetMap&LAYERS=true-colour,ndvi", "LayerNotDefined", "give one layer"),
    ("REQUEST=GetMap&LAYERS=count&STYLES=p50", "StyleNotDefined", "has the styles count"),
    ("REQUEST=GetMap&LAYERS=ndvi&CRS=EPSG:999999", "InvalidCRS", "not a known EPSG code"),
    ("REQUEST=GetMap&LAYERS=ndvi&CRS=EPSG:3857&BBOX=1,2,3", "InvalidParameterValue", "four numbers"),
    ("REQUEST=GetMap&LAYERS=ndvi&CRS=EPSG:3857&BBOX=5,2,3,4", "InvalidParameterValue", "below its maximum"),
    ("REQUEST=GetMap&LAYERS=ndvi&CRS=EPSG:3857&BBOX=1,2,3,4&WIDTH=5000&HEIGHT=10", "InvalidParameterValue",
     "1..2048 pixels"),
    ("REQUEST=GetMap&LAYERS=ndvi&CRS=EPSG:3857&BBOX=1,2,3,4&WIDTH=10&HEIGHT=10&TIME=someday",
     "InvalidDimensionValue", "a season name (2022-winter)"),
    ("REQUEST=GetMap&LAYERS=ndvi&CRS=EPSG:3857&BBOX=1,2,3,4&WIDTH=10&HEIGHT=10&TIME=2022-01-01,2022-07-01",
     "InvalidDimensionValue", "one season"),
    ("REQUEST=GetMap&LAYERS=ndvi&CRS=EPSG:3857&BBOX=1,2,3,4&WIDTH=10&HEIGHT=10&FORMAT=image/gif", "InvalidFormat",
     "image/png"),
    ("REQUEST=GetFeatureInfo&QUERY_LAYERS=ndvi&CRS=EPSG:3857&BBOX=1,2,3,4&WIDTH=10&HEIGHT=10&I=10&J=0",
     "InvalidParameterValue", "I=10: give 0..9"),
])
def test_bad_requests_get_a_service_exception_naming_the_fix(client, query, code, says):
    response = client.get(f"/wms?{query}")
    assert response.status_code == 400
    error = ET.fromstring(response.content).find(f"{OGC}ServiceException")
    assert error.get("code") == code
    assert says in error.text, error.text


def test_an_exception_report_is_well_formed_whatever_the_client_sent(client):
    response = client.get("/wms?REQUEST=GetMap&SERVICE=%02" + "x" * 3000)  # echoed: a control character, 3000 x
    assert response.status_code == 400
    error = ET.fromstring(response.content).find(f"{OGC}ServiceException")
    assert error.get("locator") == "service" and error.text.startswith("SERVICE=?XXX") and len(error.text) < 700
    # a parameter NAME with a control character, given twice, is the locator (the fuzzer found it ill-formed)
    response = client.get("/wms?REQUEST=GetMap&%08=a&%08=b")
    assert response.status_code == 400
    error = ET.fromstring(response.content).find(f"{OGC}ServiceException")
    assert error.get("locator") == "?" and "given twice" in error.text


def test_wmts_capabilities_name_the_season_by_its_time_dimension(client):
    root = ET.fromstring(client.get(f"/seasons/{SEASON}/WebMercatorQuad/WMTSCapabilities.xml").content)
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
    layer = root.find("w:Contents/w:Layer", ns)
    dimension = layer.find("w:Dimension", ns)
    assert dimension.findtext("ows:Identifier", namespaces=ns) == "Time"
    assert dimension.findtext("w:Default", namespaces=ns) == "2021-12-02"
    assert "2021-12-02" in [v.text for v in dimension.findall("w:Value", ns)]
    template = layer.find("w:ResourceURL", ns).get("template")
    assert "/seasons/{Time}/tiles/WebMercatorQuad/{TileMatrix}/{TileCol}/{TileRow}.png" in template
    from tests.app.helpers import tile_of

    tile = tile_of(BUILT_LONLAT, 12)
    by_day = client.get(template.replace("http://testserver", "").replace("{Time}", "2021-12-02")
                        .replace("{TileMatrix}", str(tile.z)).replace("{TileCol}", str(tile.x))
                        .replace("{TileRow}", str(tile.y)))
    by_name = client.get(f"/seasons/{SEASON}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png?preset=true-colour")
    assert by_day.status_code == 200 and by_day.content == by_name.content
    assert client.get("/seasons/2022-01-15").json()["name"] == SEASON  # any day names its season


@pytest.fixture(scope="module")
def custom_client(built):
    """The test data served with two custom seasons: ``w2`` starts on 2022-winter's first day, ``jan`` (not built)
    lies inside 2022-winter."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.app.helpers import app_settings

    settings = app_settings(built.data, built.archive.catalog,
                            custom_seasons={"w2": "2021-12-02/2022-01-31", "jan": "2022-01-01/2022-01-31"})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_a_day_picks_the_season_containing_it_a_built_one_first(custom_client):
    for time in ("2022-01-15", "2022-01-15T00:00:00Z"):  # inside 2022-winter (built), jan and w2 (not built)
        response = custom_client.get(GETMAP + f"&TIME={time}")
        assert response.headers["x-s2seasons-season"] == SEASON, time
    assert custom_client.get(GETMAP + "&TIME=jan").headers["x-s2seasons-season"] == "jan"  # a name is that season


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00",
                                  "2022-01-01/0001-01-01T00:00:00Z"])
def test_times_out_of_the_calendar_are_a_400(client, time):
    response = client.get(GETMAP + f"&TIME={time}")
    assert response.status_code == 400
    assert ET.fromstring(response.content).find(f"{OGC}ServiceException").get("code") == "InvalidDimensionValue"


def test_wmts_time_values_name_only_the_season_they_resolve_to(custom_client):
    """A day names the custom season that starts on it: 2022-winter's first day names w2, so 2022-winter's
    capabilities keep its name in the template (no Time dimension) and w2's list it."""
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
    winter = ET.fromstring(custom_client.get(f"/seasons/{SEASON}/WebMercatorQuad/WMTSCapabilities.xml").content)
    layer = winter.find("w:Contents/w:Layer", ns)
    assert layer.find("w:Dimension", ns) is None
    assert f"/seasons/{SEASON}/tiles/" in layer.find("w:ResourceURL", ns).get("template")
    w2 = ET.fromstring(custom_client.get("/seasons/w2/WebMercatorQuad/WMTSCapabilities.xml").content)
    dimension = w2.find("w:Contents/w:Layer/w:Dimension", ns)
    assert dimension.findtext("w:Default", namespaces=ns) == "2021-12-02"
    values = [v.text for v in dimension.findall("w:Value", ns)]
    assert "2021-12-02" in values and "2022-01-01" in values  # w2 and jan; each resolves to its own season
    assert custom_client.get("/seasons/2022-01-01").json()["name"] == "jan"

