"""Every endpoint family, on the built season and on the same season unbuilt (composited on the fly)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.app.helpers import BUILT_BLOCK, BUILT_LONLAT, SEASON, UNBUILT_LONLAT, decode, load_npy, tile_url

BASE = f"/seasons/{SEASON}"
# (client fixture, where the built block's area comes from)
SIDES = [("client", "built"), ("unbuilt_client", "on-the-fly")]


@pytest.fixture(params=SIDES, ids=[s for _, s in SIDES])
def side(request):
    name, source = request.param
    return request.getfixturevalue(name), source


@pytest.mark.parametrize(
    ("fmt", "media", "bands"),
    [("png", "image/png", 4), ("jpeg", "image/jpeg", 3), ("webp", "image/webp", 3),
     ("tif", "image/tiff; application=geotiff", 4), ("npy", "application/x-binary", 4)],
)
def test_tile_formats(side, fmt, media, bands):
    client, source = side
    response = client.get(tile_url(BUILT_LONLAT, 12, fmt))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    assert response.headers["x-s2seasons-source"] == source
    image = load_npy(response.content) if fmt == "npy" else decode(response.content)
    assert image.shape[0] >= bands and image.shape[1:] == (256, 256)  # webp drops an opaque alpha band
    if fmt in ("png", "webp", "jpeg"):
        assert image.shape[0] == 3 or (image[3] == 255).mean() > 0.99  # the archive covers this tile: opaque
        assert 20 < image[:3].mean() < 235  # rescaled true colour, neither black nor white


def test_raw_formats_carry_reflectance(client):
    """tif and npy are data formats: uint16 DN, no preset rescaling."""
    data = load_npy(client.get(tile_url(BUILT_LONLAT, 12, "npy", "bands=red")).content)
    assert data.dtype == np.uint16
    assert 200 < np.median(data[0]) < 6000
    geotiff = decode(client.get(tile_url(BUILT_LONLAT, 12, "tif", "bands=red")).content)
    np.testing.assert_array_equal(geotiff[0], data[0])


@pytest.mark.parametrize("tms_id", ["WebMercatorQuad", "EuropeanETRS89_LAEAQuad", "WorldCRS84Quad", "WGS1984Quad"])
def test_tile_matrix_sets(side, tms_id):
    client, source = side
    z = {"WebMercatorQuad": 12, "EuropeanETRS89_LAEAQuad": 9, "WorldCRS84Quad": 11, "WGS1984Quad": 11}[tms_id]
    response = client.get(tile_url(BUILT_LONLAT, z, "npy", "bands=nir", tms_id=tms_id))
    assert response.status_code == 200, response.text
    data = load_npy(response.content)
    assert data[1].mean() > 250  # mask: valid nearly everywhere
    assert 1000 < np.median(data[0][data[1] > 0]) < 6000


@pytest.mark.parametrize("preset", ["true-colour", "colour-infrared", "nir-swir", "swir", "ndvi", "count"])
def test_presets_render(side, preset):
    client, _ = side
    response = client.get(tile_url(BUILT_LONLAT, 12, "png", f"preset={preset}"))
    assert response.status_code == 200, response.text
    image = decode(response.content)
    assert image.shape[0] == 4  # RGBA: a colormap for ndvi and count, three bands otherwise
    assert len(np.unique(image[:3])) > 4


def test_expression_is_ndvi(client):
    data = load_npy(client.get(tile_url(BUILT_LONLAT, 12, "npy", "bands=nir,red,green")).content).astype(float)
    ndvi = load_npy(client.get(tile_url(BUILT_LONLAT, 12, "npy", "expression=(nir-red)/(nir%2Bred)")).content)
    expected = (data[0] - data[1]) / (data[0] + data[1])
    np.testing.assert_allclose(ndvi[0], expected, rtol=1e-5, atol=1e-6)


def test_statistics_of_a_tile(client):
    """p25 <= p50 <= p75 everywhere, count >= 1 where there is a value."""
    stack = [load_npy(client.get(tile_url(BUILT_LONLAT, 12, "npy", f"bands=red&statistic={s}")).content)[0]
             for s in ("p25", "p50", "p75", "count")]
    p25, p50, p75, count = (a.astype(int) for a in stack)
    assert (p25 <= p50).all() and (p50 <= p75).all()
    assert (count[p50 > 0] >= 1).all() and count.max() > 3


def test_tilejson(side):
    client, _ = side
    response = client.get(f"{BASE}/WebMercatorQuad/tilejson.json?preset=ndvi&tile_format=png")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tiles"][0].startswith(f"http://testserver{BASE}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?")
    assert "preset=ndvi" in body["tiles"][0]
    # 100 m pixels: WebMercator zoom 11 (51 m at 48 N) shows them all, measured where the tiles come from
    # (built or not: the bounds are the catalog's scenes of the season with the built block)
    assert body["maxzoom"] == 11
    west, south, east, north = body["bounds"]
    for lon, lat in (BUILT_LONLAT, UNBUILT_LONLAT):
        assert west < lon < east and south < lat < north


def test_wmts_capabilities(side):
    client, _ = side
    response = client.get(f"{BASE}/WebMercatorQuad/WMTSCapabilities.xml?bands=nir&statistic=p75")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
    root = ET.fromstring(response.content)
    layers = {layer.find("ows:Identifier", ns).text: layer.find("w:ResourceURL", ns).get("template")
              for layer in root.iter("{http://www.opengis.net/wmts/1.0}Layer")}
    assert set(layers) == {"custom", "true-colour", "colour-infrared", "nir-swir", "swir", "ndvi", "count"}
    assert layers["custom"].endswith("/tiles/WebMercatorQuad/{TileMatrix}/{TileCol}/{TileRow}.png?bands=nir&statistic=p75")
    assert layers["ndvi"].endswith("{TileRow}.png?preset=ndvi")
    matrices = [m.find("ows:Identifier", ns).text for m in root.iter("{http://www.opengis.net/wmts/1.0}TileMatrix")]
    assert matrices[-1] == "11"


def test_wmts_laea(side):
    client, _ = side
    response = client.get(f"{BASE}/EuropeanETRS89_LAEAQuad/WMTSCapabilities.xml")
    assert response.status_code == 200
    assert b"<ows:SupportedCRS>http://www.opengis.net/def/crs/EPSG/0/3035</ows:SupportedCRS>" in response.content
    assert b"<TopLeftCorner>5500000.0 2000000.0</TopLeftCorner>" in response.content  # EPSG:3035 is northing first


def test_point_returns_every_band_statistic_and_count(side):
    client, source = side
    response = client.get(f"{BASE}/point/{BUILT_LONLAT[0]},{BUILT_LONLAT[1]}")
    assert response.status_code == 200, response.text
    assert response.headers["x-s2seasons-source"] == source
    body = response.json()
    assert len(body["values"]) == 24 and body["band_names"][:4] == ["blue_p25", "blue_p50", "blue_p75", "blue_count"]
    values = dict(zip(body["band_names"], body["values"]))
    assert values["red_p25"] <= values["red_p50"] <= values["red_p75"]
    assert values["red_count"] >= 1


def test_point_is_the_build(client, unbuilt_client):
    """On the fly, a point is its grid pixel composited at full resolution from the same scenes as the build:
    the built value within 1 % or 3 DN (GDAL's averaging warp differs by a few DN between a 1-pixel window
    and a whole block), counts exactly."""
    url = f"{BASE}/point/{BUILT_LONLAT[0]},{BUILT_LONLAT[1]}"
    built, fly = client.get(url), unbuilt_client.get(url)
    assert built.headers["x-s2seasons-source"] == "built" and fly.headers["x-s2seasons-source"] == "on-the-fly"
    names = built.json()["band_names"]
    for name, a, b in zip(names, built.json()["values"], fly.json()["values"]):
        assert abs(a - b) <= (0 if name.endswith("count") else max(3, 0.01 * a)), name


def test_point_selection(client):
    body = client.get(f"{BASE}/point/{BUILT_LONLAT[0]},{BUILT_LONLAT[1]}?bands=nir,red&statistic=count").json()
    assert body["band_names"] == ["nir_count", "red_count"]
    ndvi = client.get(f"{BASE}/point/{BUILT_LONLAT[0]},{BUILT_LONLAT[1]}?preset=ndvi").json()
    assert -1 <= ndvi["values"][0] <= 1


def test_preview(side):
    client, source = side
    response = client.get(f"{BASE}/preview.png?max_size=128")
    assert response.status_code == 200, response.text
    image = decode(response.content)
    assert max(image.shape[1:]) == 128
    if source == "built":  # the built block, whole
        assert response.headers["x-s2seasons-source"] == "built"
        assert (image[3] == 255).mean() > 0.1  # the archive's data cover the block's eastern part
    else:  # unbuilt: where tiles can come from (the catalog's scenes of the season), composited on the fly
        assert response.headers["x-s2seasons-source"] == "on-the-fly"
        assert (image[3] == 255).mean() > 0.2


def test_bbox_crop(side):
    client, source = side
    west, south = BUILT_LONLAT[0] - 0.02, BUILT_LONLAT[1] - 0.02
    response = client.get(f"{BASE}/bbox/{west},{south},{west + 0.04},{south + 0.04}/200x150.png?preset=nir-swir")
    assert response.status_code == 200, response.text
    assert response.headers["x-s2seasons-source"] == source
    image = decode(response.content)
    assert image.shape == (4, 150, 200) and (image[3] == 255).all()


def test_feature_crop(side):
    client, _ = side
    lon, lat = BUILT_LONLAT
    triangle = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
        [lon - 0.02, lat - 0.02], [lon + 0.02, lat - 0.02], [lon, lat + 0.02], [lon - 0.02, lat - 0.02]]]}}
    response = client.post(f"{BASE}/feature/128x128.png?bands=red", json=triangle)
    assert response.status_code == 200, response.text
    alpha = decode(response.content)[-1]
    assert alpha[100, 64] == 255 and alpha[5, 5] == 0  # inside the triangle / outside it


def test_info_statistics_tilesets(client):
    info = client.get(f"{BASE}/info").json()
    assert info["built_blocks"] == 1 and info["dtype"] == "uint16"
    stats = client.get(f"{BASE}/statistics?bands=red&max_size=128")
    assert stats.status_code == 200, stats.text
    assert 100 < stats.json()["red_p50"]["mean"] < 6000
    tilesets = client.get(f"{BASE}/tiles").json()
    assert any("WebMercatorQuad" in t["title"] for t in tilesets["tilesets"])


def test_seasons_listing(client, settings):
    body = client.get("/seasons").json()
    [season] = body["seasons"]
    assert season["name"] == SEASON and season["start_date"] == "2021-12-02" and season["end_date"] == "2022-03-20"
    assert season["built"]["blocks"] == 1
    assert season["built"]["coverage_percent"] == 100.0  # of the one block its build asked for
    assert season["built"]["coverage_of"] == "build-bboxes"
    assert season["built"]["geojson"]["type"] == "Polygon"
    links = season["links"]
    assert links["xyz"] == f"http://testserver{BASE}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?preset=true-colour"
    assert links["wmts"]["WebMercatorQuad"].endswith("/WebMercatorQuad/WMTSCapabilities.xml")
    assert len(links["vrt"]) == 24 and len(links["overview"]) == 24
    assert links["stac"].endswith("/files/catalog/catalog.json")
    for url in (links["vrt"]["red_p50"], links["overview"]["nir_count"], links["stac"],
                links["cog_template"].format(block=BUILT_BLOCK, band="red", statistic="p50")):
        assert client.get(url.replace("http://testserver", "")).status_code == 200, url
    assert body["on_the_fly"]["min_zoom"] == settings.onthefly_min_zoom


def test_unbuilt_season_description(client):
    body = client.get("/seasons/2023-summer").json()
    assert body["built"]["blocks"] == 0 and body["built"]["geojson"] is None
    assert "vrt" not in body["links"]


def test_blocks_geojson(client):
    response = client.get(f"{BASE}/blocks.geojson")
    assert response.headers["content-type"] == "application/geo+json"
    [feature] = response.json()["features"]
    assert feature["id"] == BUILT_BLOCK and feature["properties"]["status"] == "built"


def test_presets_listing(client):
    body = client.get("/presets").json()
    names = [p["name"] for p in body["presets"]]
    assert names == ["true-colour", "colour-infrared", "nir-swir", "swir", "ndvi", "count", "fill-flag"]
    assert body["presets"][6]["variant"] == "filled" and body["presets"][6]["colormap"]["2"] == "#d7191c"
    assert body["presets"][4]["colormap_name"] == "rdylgn" and body["default"] == "true-colour"


def test_tile_outside_the_data_is_transparent(side):
    client, _ = side
    response = client.get(tile_url((11.44, 47.70), 12))  # south of the archive's data region
    assert response.status_code == 200
    assert (decode(response.content)[3] == 0).all()


def test_unbuilt_tile_without_scenes_is_transparent_and_says_so(client):
    """No scene of the season touches the tile: a transparent tile that says why, not an on-the-fly one."""
    response = client.get(tile_url(UNBUILT_LONLAT, 12, season="2023-summer"))  # no scene in that season
    assert response.status_code == 200 and response.headers["x-s2seasons-source"] == "not-built"
    assert response.headers["x-s2seasons-not-built"] == "no scenes"
    assert (decode(response.content)[3] == 0).all()
    far = client.get(tile_url((5.0, 50.0), 12))  # the season has scenes, but none there
    assert far.headers["x-s2seasons-source"] == "not-built" and far.headers["x-s2seasons-not-built"] == "no scenes"
    mixed = client.get(tile_url(BUILT_LONLAT, 12))  # built, and scenes on the fly beside it: no such header
    assert "x-s2seasons-not-built" not in mixed.headers


def test_small_scales_read_the_season_overview(client, built):
    """At WebMercator z6 (about 1.6 km pixels here) the block is read from the season's 1.6 km overview."""
    from rio_tiler.io import Reader

    from tests.app.helpers import tile_of

    response = client.get(tile_url(BUILT_LONLAT, 6, "npy", "bands=red"))
    assert response.headers["x-s2seasons-source"] == "built" and "x-s2seasons-not-built" in response.headers
    served = load_npy(response.content)
    overview = next((built.data / SEASON / "overview").glob("*_red_p50_1600m_*.tif"))
    tile = tile_of(BUILT_LONLAT, 6)
    with Reader(str(overview)) as src:
        expected = src.tile(tile.x, tile.y, tile.z).array
    shown = served[1] > 0
    assert 0 < shown.sum() < 400  # a 25 km block (its data part) in a 600 km tile
    np.testing.assert_array_equal(served[0][shown], expected.data[0][shown])


@pytest.mark.parametrize("z", [9, 13])
def test_several_rasters_read_together_equal_one_at_a_time(client, z):
    """Built rasters of a block are read as one stacked VRT: the same values as reading each COG alone."""
    together = load_npy(client.get(tile_url(BUILT_LONLAT, z, "npy", "bands=swir22,nir,red&statistic=p75")).content)
    for index, band in enumerate(("swir22", "nir", "red")):
        alone = load_npy(client.get(tile_url(BUILT_LONLAT, z, "npy", f"bands={band}&statistic=p75")).content)
        np.testing.assert_array_equal(together[index], alone[0])
    counts = load_npy(client.get(tile_url(BUILT_LONLAT, z, "npy", "expression=red_count;nir_count;red_p50")).content)
    red_count = load_npy(client.get(tile_url(BUILT_LONLAT, z, "npy", "bands=red&statistic=count")).content)[0]
    np.testing.assert_array_equal(counts[0][counts[3] > 0], red_count[counts[3] > 0])
