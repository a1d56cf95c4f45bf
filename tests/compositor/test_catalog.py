"""The scene catalog on the real Earth Search sample item and against a STAC API on loopback."""

import copy
import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from compositor.catalog import (
    cloud_filter_name,
    deduplicate_acquisitions,
    load_scenes,
    parse_bbox,
    scene_from_item,
    SceneQuery,
    search_scenes,
)
from compositor.errors import CatalogUnavailableError, InvalidBBoxError, MalformedItemError
from compositor.seasons import resolve_season
from tests.samples import SAMPLE_DIR, SAMPLE_ITEM

BBOX_29RKH = (-11.9, 24.4, -10.9, 25.2)


@pytest.fixture
def item():
    return json.loads(SAMPLE_ITEM.read_text())


def test_real_sample_item(item):
    scene = scene_from_item(item)
    assert scene.id == "S2A_29RKH_20200219_0_L2A"
    assert scene.relative_orbit == 37  # only in s2:product_uri in this item
    assert "sat:relative_orbit" not in item["properties"]
    assert scene.mgrs_tile == "29RKH"
    assert scene.crs == "EPSG:32629"
    assert scene.datetime == dt.datetime(2020, 2, 19, 11, 34, 25, 405000, tzinfo=dt.UTC)
    assert scene.cloud_cover == pytest.approx(4.051854)
    assert scene.processing_baseline == "02.14"
    assert scene.offset_applied is False and scene.offset_dn == 0
    assert scene.hrefs["blue"].endswith("/B02.tif") and scene.hrefs["scl"].endswith("/SCL.tif")
    assert set(scene.hrefs) == {"blue", "green", "red", "nir", "swir16", "swir22", "scl"}
    assert scene.footprint.bounds == pytest.approx((-11.483, 24.664, -10.880, 25.305), abs=1e-3)  # the crop


def test_band_id_asset_keys(item):
    keyed = copy.deepcopy(item)
    renames = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12", "scl": "SCL"}
    keyed["assets"] = {renames.get(k, k): v for k, v in item["assets"].items()}
    assert "blue" not in keyed["assets"]
    assert scene_from_item(keyed).hrefs == scene_from_item(item).hrefs


def test_sat_relative_orbit_wins_over_product_uri(item):
    item["properties"]["sat:relative_orbit"] = 80
    assert scene_from_item(item).relative_orbit == 80


def test_orbit_missing_everywhere_is_a_clear_error(item):
    item["properties"]["s2:product_uri"] = "S2A_MSIL2A_20200219T112111_N0214_T29RKH.SAFE"
    with pytest.raises(MalformedItemError, match="S2A_29RKH_20200219_0_L2A.*relative orbit"):
        scene_from_item(item)


@pytest.mark.parametrize(
    ("baseline", "applied", "stated", "when", "offset", "source"),
    [
        ("02.14", False, 0, "2020-02-19T11:34:25Z", 0, "earthsearch:boa_offset_applied"),
        ("04.00", False, -0.1, "2022-02-19T11:34:25Z", 1000, "earthsearch:boa_offset_applied"),
        ("04.00", True, -0.1, "2022-02-19T11:34:25Z", 0, "earthsearch:boa_offset_applied"),  # Earth Search
        ("05.09", False, -0.1, "2023-07-01T10:00:00Z", 1000, "earthsearch:boa_offset_applied"),
        (None, False, None, "2022-01-24T23:59:59Z", 0, "earthsearch:boa_offset_applied"),
        (None, False, None, "2022-01-25T00:00:00Z", 1000, "earthsearch:boa_offset_applied"),
        ("05.09", None, -0.1, "2023-07-01T10:00:00Z", 1000, "raster:bands"),  # sentinel-2-c1-l2a
        ("05.09", None, 0, "2023-07-01T10:00:00Z", 0, "raster:bands"),  # a harmonised catalog
        ("05.09", None, None, "2023-07-01T10:00:00Z", 1000, "processing baseline"),
        ("03.01", None, None, "2023-07-01T10:00:00Z", 0, "processing baseline"),
        (None, None, None, "2022-01-25T00:00:00Z", 1000, "acquisition date"),
    ],
)
def test_offset_rule(item, baseline, applied, stated, when, offset, source):
    props = item["properties"]
    props["datetime"] = when
    if applied is None:
        del props["earthsearch:boa_offset_applied"]
    else:
        props["earthsearch:boa_offset_applied"] = applied
    if baseline is None:
        del props["s2:processing_baseline"]
    else:
        props["s2:processing_baseline"] = baseline
    for asset in item["assets"].values():
        for band in asset.get("raster:bands", []):
            band.pop("offset", None)
            if stated is not None:
                band["offset"] = stated
    scene = scene_from_item(item)
    assert (scene.offset_dn, scene.offset_source) == (offset, source)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda i: i["assets"].pop("scl"), "no asset scl or SCL"),
        (lambda i: i["assets"].pop("swir22"), "no asset swir22 or B12"),
        (lambda i: i["properties"].pop("datetime"), "datetime"),
        (lambda i: i.pop("geometry"), "geometry"),
        (lambda i: i["properties"].pop("proj:epsg"), "proj:epsg"),
    ],
)
def test_malformed_items_name_the_item(item, mutate, message):
    mutate(item)
    with pytest.raises(MalformedItemError, match="S2A_29RKH_20200219_0_L2A") as err:
        scene_from_item(item)
    assert message in str(err.value)


def test_local_folder_filters_by_bbox_season_and_cloud():
    winter = resolve_season("2020-winter")
    assert [s.id for s in load_scenes(SAMPLE_DIR, BBOX_29RKH, winter)] == ["S2A_29RKH_20200219_0_L2A"]
    assert load_scenes(SAMPLE_DIR, BBOX_29RKH, resolve_season("2020-summer")) == []
    assert load_scenes(SAMPLE_DIR, (0.0, 40.0, 1.0, 41.0), winter) == []
    assert load_scenes(SAMPLE_DIR, BBOX_29RKH, winter, max_cloud_cover=4.0) == []
    assert search_scenes(SAMPLE_DIR, BBOX_29RKH, winter, max_cloud_cover=4.0).dropped == {cloud_filter_name(4.0): 1}


def test_relative_hrefs_resolve_against_the_collection_file(tmp_path, item):
    item["assets"]["red"]["href"] = "scenes/B04.tif"
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    scene = load_scenes(tmp_path / "items.json")[0]
    assert scene.hrefs["red"] == str(tmp_path / "scenes" / "B04.tif")
    assert scene.hrefs["blue"].startswith("https://")


def test_missing_catalog_file_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogUnavailableError, match="does not exist"):
        SceneQuery(str(tmp_path / "nope.json")).search(BBOX_29RKH, resolve_season("2020-winter"))


def test_acquisition_seen_in_two_tiles_is_one_group(item):
    a = scene_from_item(item)
    twin = copy.deepcopy(item)
    twin["id"] = "S2A_29RKJ_20200219_0_L2A"
    twin["properties"]["mgrs:grid_square"] = "KJ"
    b = scene_from_item(twin)
    other = copy.deepcopy(item)
    other["id"] = "S2B_29RKH_20200224_0_L2A"
    other["properties"]["datetime"] = "2020-02-24T11:34:25Z"
    other["properties"]["platform"] = "sentinel-2b"
    c = scene_from_item(other)
    groups = deduplicate_acquisitions([c, b, a])
    assert [[s.id for s in g] for g in groups] == [[a.id, b.id], [c.id]]


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "10,50,5,55", "0,95,1,96", ""])
def test_bad_bbox(text):
    with pytest.raises(InvalidBBoxError, match="west,south,east,north"):
        parse_bbox(text)


# --- a STAC API on loopback ------------------------------------------------------------------


class _StacApi:
    """A minimal STAC API (landing page, conformance, POST /search with token paging)."""

    def __init__(self, items, page_size=2):
        self.items, self.page_size, self.requests = items, page_size, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                api.requests.append(("GET", self.path, None))
                if self.path.rstrip("/") in ("", "/stac"):
                    return self._send(api.landing())
                if self.path.startswith("/stac/conformance"):
                    return self._send({"conformsTo": api.conformance})
                return self._send({"code": "NotFound"}, 404)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append(("POST", self.path, body))
                if self.path != "/stac/search":
                    return self._send({"code": "NotFound"}, 404)
                return self._send(api.page(body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/stac"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    conformance = [
        "https://api.stacspec.org/v1.0.0/core",
        "https://api.stacspec.org/v1.0.0/item-search",
        "https://api.stacspec.org/v1.0.0/item-search#query",
    ]

    def landing(self):
        return {
            "type": "Catalog", "id": "test", "stac_version": "1.0.0", "description": "loopback",
            "conformsTo": self.conformance,
            "links": [
                {"rel": "self", "href": self.url},
                {"rel": "root", "href": self.url},
                {"rel": "search", "href": f"{self.url}/search", "method": "POST", "type": "application/geo+json"},
                {"rel": "conformance", "href": f"{self.url}/conformance"},
            ],
        }

    def page(self, body):
        start = int(body.get("token", 0))
        features = self.items[start : start + self.page_size]
        links = []
        if start + self.page_size < len(self.items):
            links.append({"rel": "next", "href": f"{self.url}/search", "method": "POST",
                          "body": {**{k: v for k, v in body.items() if k != "token"}, "token": start + self.page_size},
                          "merge": False})
        return {"type": "FeatureCollection", "features": features, "links": links}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _items(item, n):
    out = []
    for i in range(n):
        x = copy.deepcopy(item)
        x["id"] = f"S2A_29RKH_202002{10 + i:02d}_0_L2A"
        x["properties"]["datetime"] = f"2020-02-{10 + i:02d}T11:34:25Z"
        x["properties"]["eo:cloud_cover"] = float(i * 10)
        out.append(x)
    return out


def test_stac_api_search_pages_and_parameters(item):
    with _StacApi(_items(item, 5), page_size=2) as api:
        search = search_scenes(api.url, BBOX_29RKH, resolve_season("2020-winter"), max_cloud_cover=35.0)
    posts = [body for method, path, body in api.requests if method == "POST"]
    assert len(posts) == 3  # 5 items in pages of 2 followed through `next` links
    first = posts[0]
    assert first["bbox"] == list(BBOX_29RKH)
    assert first["datetime"] == "2019-12-02T00:00:00Z/2020-03-20T23:59:59.999Z"
    assert first["collections"] == ["sentinel-2-l2a"]
    # The cloud filter is the client's (not sent as a query), so that it can say what it dropped.
    assert "query" not in first
    assert [p.get("token") for p in posts] == [None, 2, 4]
    assert [s.cloud_cover for s in search.scenes] == [0.0, 10.0, 20.0, 30.0]
    assert search.dropped == {cloud_filter_name(35.0): 1} and search.n_found == 5
    assert search.describe_filters() == "5 found, 1 dropped by cloud cover above 35 % (max_cloud_cover)"


def test_no_cloud_filter_by_default_and_the_c1_collection(item):
    from compositor.settings import Settings

    assert Settings().max_cloud_cover is None
    with _StacApi(_items(item, 5), page_size=10) as api:
        search = search_scenes(api.url, BBOX_29RKH, resolve_season("2020-winter"), collection="sentinel-2-c1-l2a")
    (post,) = [body for method, _, body in api.requests if method == "POST"]
    assert post["collections"] == ["sentinel-2-c1-l2a"]
    assert len(search.scenes) == 5 and search.dropped == {}
    assert search.describe_filters() == "5 found, none dropped by a filter"


def test_unreachable_stac_api_names_the_url():
    with _StacApi([]) as api:
        url = api.url
    with pytest.raises(CatalogUnavailableError, match=url.replace(".", r"\.")):
        SceneQuery(url, timeout_s=2).search(BBOX_29RKH, resolve_season("2020-winter"))


def test_malformed_item_from_api_names_it(item):
    bad = _items(item, 2)
    del bad[1]["assets"]["nir"]
    with _StacApi(bad) as api, pytest.raises(MalformedItemError, match="S2A_29RKH_20200211_0_L2A"):
        SceneQuery(api.url).search(BBOX_29RKH, resolve_season("2020-winter"))
