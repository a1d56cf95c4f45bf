"""No client input yields a 500: bad seasons, bands, statistics, TMS, z/x/y, expressions, sizes, paths."""

from __future__ import annotations

import json

import pytest

from tests.app.helpers import BUILT_LONLAT, SEASON, tile_url

B = f"/seasons/{SEASON}"
T = tile_url(BUILT_LONLAT, 12, "png").rsplit(".", 1)[0]  # .../tiles/WebMercatorQuad/12/x/y
P = f"{B}/point/{BUILT_LONLAT[0]},{BUILT_LONLAT[1]}"
BOX = f"{B}/bbox/11.35,47.88,11.38,47.91"

# (url, status, words of the message)
CASES = [
    # seasons: names only, never paths
    ("/seasons/2022-fall/tiles/WebMercatorQuad/12/1/1.png", 404, "unknown season"),
    ("/seasons/1850-winter/info", 404, "unknown season"),
    ("/seasons/..%2F..%2Fetc/info", 404, ""),
    ("/seasons/%2Fetc%2Fpasswd/info", 404, ""),
    ("/seasons/" + "x" * 100 + "/info", 422, "at most 64"),
    # bands, statistics, presets, expressions
    (f"{T}.png?bands=purple", 400, "unknown band 'purple'"),
    (f"{T}.png?bands=red,green", 400, "1 or 3"),
    (f"{T}.png?bands=red,red,red,red,red,red,red", 400, "at most 6"),
    (f"{T}.png?bands=", 200, ""),  # empty means the default rendering
    (f"{T}.png?statistic=p90", 400, "unknown statistic"),
    (f"{T}.png?preset=sepia", 400, "unknown preset"),
    (f"{T}.png?bands=red&expression=red", 400, "not both"),
    (f"{T}.png?expression=__import__('os').system('id')", 400, "not allowed"),
    (f"{T}.png?expression=red.__class__", 400, "not allowed"),
    (f"{T}.png?expression=open('x')", 400, "disallowed function"),
    (f"{T}.png?expression=foo*2", 400, "unknown name 'foo'"),
    (f"{T}.png?expression=(red", 400, "not allowed"),
    (f"{T}.png?expression=red;green", 400, "1 or 3"),
    (f"{T}.png?expression=1%2B2", 400, "uses no band"),
    (f"{T}.png?expression=" + "red%2B" * 200 + "red", 422, "at most 512"),
    (f"{T}.png?expression=red/0", 200, ""),  # division by zero: masked, not an error
    # rendering
    (f"{T}.png?rescale=a,b", 422, "rescale"),
    (f"{T}.png?rescale=1,2,3", 422, "rescale"),
    (f"{T}.png?color_formula=nonsense", 422, "color formula"),
    (f"{T}.png?colormap_name=nope", 422, "colormap_name"),
    (f"{T}.png?colormap=%7Bbad", 400, "colormap must be JSON"),
    (f"{T}.png?colormap=%7B%22a%22:1%7D", 400, "colormap must be JSON"),
    (f"{T}.png?colormap=[1,2]", 400, "colormap must be JSON"),
    (f"{T}.gif", 422, "format"),
    (f"{T}.png?resampling=fancy", 422, "resampling"),
    # tiles: TMS and z/x/y
    (f"{B}/tiles/NoSuchTMS/1/1/1.png", 422, "tileMatrixSetId"),
    (f"{B}/tiles/WebMercatorQuad/25/1/1.png", 404, "zoom 25 is outside"),
    (f"{B}/tiles/WebMercatorQuad/2/4/1.png", 404, "x is 0..3"),
    (f"{B}/tiles/WebMercatorQuad/2/1/4.png", 404, "y 0..3"),
    (f"{B}/tiles/WebMercatorQuad/2/-1/1.png", 404, "outside"),
    (f"{B}/tiles/WebMercatorQuad/z/1/1.png", 422, "integer"),
    (f"{B}/tiles/WebMercatorQuad/99999999999999999999/1/1.png", 404, "is outside"),
    (f"{B}/tiles/EuropeanETRS89_LAEAQuad/16/1/1.png", 404, "zoom 16 is outside"),
    (f"{T}.png?tilesize=100000", 400, "tilesize"),
    (f"{T}.png?tilesize=0", 422, "greater than 0"),
    (f"{T}.png?buffer=0.3", 422, "multiple of 0.5"),
    (f"{T}.png?buffer=1000", 422, "less than or equal"),
    (f"{B}/WebMercatorQuad/tilejson.json?bands=foo", 400, "unknown band"),
    (f"{B}/NoSuchTMS/tilejson.json", 422, "tileMatrixSetId"),
    (f"{B}/CDB1GlobalGrid/WMTSCapabilities.xml", 404, "variable matrix widths"),
    (f"{B}/WebMercatorQuad/WMTSCapabilities.xml?tile_format=gif", 422, "tile_format"),
    # points
    (f"{B}/point/200,10", 400, "outside -180..180"),
    (f"{B}/point/10,95", 400, "outside -180..180"),
    (f"{B}/point/nan,10", 400, "finite"),
    (f"{B}/point/inf,10", 400, "finite"),
    (f"{B}/point/a,b", 422, "number"),
    (f"{P}?coord_crs=EPSG:99999", 422, "CRS"),
    (f"{P}?bands=ultraviolet", 400, "unknown band"),
    # crops and previews
    (f"{B}/bbox/1,2,0,3.png", 400, "minx < maxx"),
    (f"{B}/bbox/1,2,1,3.png", 400, "minx < maxx"),
    (f"{B}/bbox/-200,0,10,10.png", 400, "outside -180..180"),
    (f"{BOX}/99999x3.png", 422, "less than or equal to 2048"),
    (f"{BOX}/0x3.png", 422, "greater than 0"),
    (f"{BOX}.png?dst_crs=foo", 422, "CRS"),
    (f"{BOX}.png?max_size=100000", 422, "less than or equal to 2048"),
    (f"{B}/preview.png?max_size=0", 422, "greater than 0"),
    (f"{B}/preview/5000x5000.png", 422, "less than or equal to 2048"),
    (f"{B}/statistics?bands=red,green", 400, "1 or 3"),
    # statistics: bounded work (a histogram of 10 million bins took 16 s and 3 GB)
    (f"{B}/statistics?histogram_bins=10000000", 400, "use 1..1024 bins"),
    (f"{B}/statistics?histogram_bins=0", 400, "use 1..1024 bins"),
    (f"{B}/statistics?histogram_bins=5,3,9", 400, "must increase"),
    (f"{B}/statistics?histogram_bins=" + ",".join(map(str, range(1100))), 400, "at most 1025 bin edges"),
    (f"{B}/statistics?histogram_bins=-3", 422, "pattern"),
    (f"{B}/statistics?histogram_range=5,1", 400, "min <= max"),
    (f"{B}/statistics?histogram_range=1.0e999,2.0e999", 400, "finite"),
    (f"{B}/statistics?p=1000", 422, "less than or equal to 100"),
    (f"{B}/statistics?p=-1", 422, "greater than or equal to 0"),
    (f"{B}/statistics?" + "&".join(["p=5"] * 40), 422, "at most 32"),
    (f"{B}/statistics?" + "&".join(f"c={i}" for i in range(300)), 422, "at most 256"),
    (f"{B}/statistics?histogram_bins=12&histogram_range=0,3000&p=0&p=100", 200, ""),
    # tile matrix sets: zoom limits a TMS cannot have
    (f"{B}/tiles/GNOSISGlobalGrid?maxzoom=30", 400, "TileMatrix not found"),
    (f"{B}/tiles/WorldCRS84Quad?maxzoom=1165511354", 400, "zoom levels are 0..30"),
    (f"{B}/WebMercatorQuad/tilejson.json?minzoom=-3", 400, "zoom levels are 0..30"),
    # legends: bounded images
    ("/colorMaps/viridis?format=png&width=100000&height=100000", 400, "1..2048 px"),
    ("/colorMaps/viridis?format=png&width=-180", 400, "1..2048 px"),
    ("/colorMaps/viridis?format=png&width=20&height=256", 200, ""),
    # files: only a season's own outputs
    (f"{B}/files/season.json", 404, "no file"),
    (f"{B}/files/blocks/c172_r107/manifest.json", 404, "no file"),
    (f"{B}/files/%2E%2E/%2E%2E/%2E%2E/etc/passwd", 404, "no file"),
    (f"{B}/files/blocks/..%2F..%2Fseason.json", 404, "no file"),
    (f"{B}/files/.hidden.tif", 404, "no file"),
    (f"{B}/files//etc/passwd", 404, "no file"),
    (f"{B}/files/%252e%252e/%252e%252e/etc/passwd", 404, "no file"),
    (f"{B}/files/..%5c..%5c..%5cetc%5cpasswd", 404, "no file"),
    (f"{B}/files/blocks/c172_r107/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/hostname.tif", 404, "no file"),
    (f"{B}/files/x.tif%00.json", 404, "no file"),
    (f"{B}/files/%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/etc/passwd", 404, "no file"),
    (f"{B}/files/catalog/../../../../../../etc/passwd.json", 404, ""),  # the client drops the dot segments
    ("/seasons/..%2F..%2F..%2Fetc/files/passwd.tif", 404, ""),
    ("/seasons/2021-summer/files/x.tif", 404, "no file"),
    (f"{B}/queue?x=1", 200, ""),
]


@pytest.mark.parametrize(("url", "status", "message"), CASES, ids=[c[0][-60:] for c in CASES])
def test_bad_input_gets_a_4xx_with_a_message(client, url, status, message):
    response = client.get(url)
    assert response.status_code == status, response.text[:300]
    if status >= 400:
        detail = response.json()["detail"]
        text = detail if isinstance(detail, str) else " ".join(str(e.get("msg", "")) + str(e.get("loc", ""))
                                                                for e in detail)
        assert message in text
        assert "/tmp" not in response.text and "Traceback" not in response.text


BODIES = [
    ({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, 422),
    ({"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [1000, 0]}}, 400),
    ({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
        [[-170, -80], [170, -80], [170, 80], [-170, 80], [-170, -80]]]}}, 200),  # huge: empty, not composited
    ({"not": "geojson"}, 422),
    ("nonsense", 422),
]


@pytest.mark.parametrize(("body", "status"), BODIES)
def test_bad_feature_bodies(client, body, status):
    response = client.post(f"{B}/feature.png", json=body)
    assert response.status_code == status, response.text[:300]


SMALL = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
    [[11.35, 47.89], [11.37, 47.89], [11.37, 47.91], [11.35, 47.91], [11.35, 47.89]]]}}


def test_posted_features_are_bounded(client):
    """At most 100 features in a FeatureCollection (each is a read); 1 MiB of body is the next test."""
    many = {"type": "FeatureCollection", "features": [SMALL] * 101}
    response = client.post(f"{B}/statistics", json=many)
    assert response.status_code == 400 and "at most 100" in response.json()["detail"]
    few = {"type": "FeatureCollection", "features": [SMALL] * 3}
    assert client.post(f"{B}/statistics", json=few).status_code == 200


HUGE = b'{"type": "Feature", "properties": {"x": "' + b"a" * (2 << 20) + b'"}}'  # 2 MiB
BODY_TOO_LARGE = ("request body larger than 1 MiB (1048576 bytes): send fewer features (at most 100 per "
                  "FeatureCollection), simpler geometries or fewer properties")


def in_pieces(body: bytes, size: int = 65536):
    """``body`` as an iterator: httpx sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("path", [f"{B}/feature.png", f"{B}/statistics"])
def test_too_large_body_is_a_json_413(client, path, framing):
    """Over 1 MiB of body, told by its Content-Length up front or counted while it streams: a JSON 413 that
    says what to change, with the request id like every other answer."""
    content = HUGE if framing == "content-length" else in_pieces(HUGE)
    response = client.post(path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": BODY_TOO_LARGE}
    assert response.headers["x-request-id"]


def test_chunked_body_under_the_limit_is_served(client):
    few = json.dumps({"type": "FeatureCollection", "features": [SMALL] * 3}).encode()
    response = client.post(f"{B}/statistics", content=in_pieces(few, 100), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize(("query", "status", "message"), [
    ("cover_scale=1000", 400, "cover_scale of at most 11"),  # a 1024000 px square raster before
    ("cover_scale=10&width=2048&height=2048", 400, "cover_scale of at most 5"),
    ("cover_scale=5&max_size=2048", 200, ""),
    ("cover_scale=10", 200, ""),
])
def test_feature_statistics_coverage_is_bounded(client, query, status, message):
    """The coverage of a feature is rasterized cover_scale times finer than the output on each side."""
    response = client.post(f"{B}/statistics?{query}", json=SMALL)
    assert response.status_code == status, response.text[:300]
    if message:
        assert message in response.json()["detail"]
