"""The viewport benchmark's parts: the slow HTTP link (ranges, latency, bandwidth cap), the catalog
rewritten to its URLs, and the 5 x 4 viewport chosen per zoom. No timing of the product is checked."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from benchmarks.bench_viewport import UNBUILT_BBOX_4326, Viewport, _inside, choose_viewport
from benchmarks.slowlink import SlowLinkServer, rewrite_catalog

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "scenes" / "a").mkdir(parents=True)
    (tmp_path / "scenes" / "a" / "B04.tif").write_bytes(PAYLOAD)
    return tmp_path


def request(server: SlowLinkServer, method: str, path: str, headers: dict | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[http.client.HTTPResponse, bytes, float]:
    conn = conn or http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    start = time.perf_counter()
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    return response, body, time.perf_counter() - start


def test_single_ranges_are_answered_206(folder: Path) -> None:
    with SlowLinkServer(folder, latency_ms=0, bandwidth_mbit=0) as server:
        for header, first, last in [("bytes=10-19", 10, 19), ("bytes=262100-", 262100, len(PAYLOAD) - 1),
                                    ("bytes=-16", len(PAYLOAD) - 16, len(PAYLOAD) - 1),
                                    ("bytes=262000-999999", 262000, len(PAYLOAD) - 1)]:
            response, body, _ = request(server, "GET", "/scenes/a/B04.tif", {"Range": header})
            assert response.status == 206, header
            assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(PAYLOAD)}"
            assert body == PAYLOAD[first:last + 1]


def test_whole_file_head_missing_and_unsatisfiable(folder: Path) -> None:
    with SlowLinkServer(folder, latency_ms=0, bandwidth_mbit=0) as server:
        response, body, _ = request(server, "GET", "/scenes/a/B04.tif")
        assert response.status == 200 and body == PAYLOAD
        response, body, _ = request(server, "HEAD", "/scenes/a/B04.tif")
        assert response.status == 200 and body == b"" and int(response.headers["Content-Length"]) == len(PAYLOAD)
        assert request(server, "GET", "/scenes/a/nothing.tif")[0].status == 404
        assert request(server, "GET", "/../etc/passwd")[0].status == 404
        assert request(server, "GET", "/scenes/a/B04.tif", {"Range": f"bytes={len(PAYLOAD)}-"})[0].status == 416
        counts = server.stats.snapshot()
        assert counts.heads == 1 and counts.requests == 5


def test_keep_alive_and_latency(folder: Path) -> None:
    with SlowLinkServer(folder, latency_ms=80, bandwidth_mbit=0) as server:
        conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
        times = [request(server, "GET", "/scenes/a/B04.tif", {"Range": "bytes=0-99"}, conn)[2] for _ in range(3)]
        assert min(times) >= 0.080
        counts = server.stats.snapshot()
        assert counts.connections == 1 and counts.ranged == 3  # one connection reused


def test_bandwidth_cap_is_shared_roughly(folder: Path) -> None:
    mbit = 8.0  # 256 KiB take 0.26 s at 8 Mbit/s
    with SlowLinkServer(folder, latency_ms=0, bandwidth_mbit=mbit) as server:
        _, body, seconds = request(server, "GET", "/scenes/a/B04.tif")
        expected = len(PAYLOAD) * 8 / (mbit * 1e6)
        assert body == PAYLOAD
        assert expected * 0.9 <= seconds <= expected * 3 + 0.5
        sent = server.stats.snapshot().bytes
        assert len(PAYLOAD) < sent < len(PAYLOAD) + 1000  # body and headers counted


def test_catalog_hrefs_rewritten_to_the_server(folder: Path, tmp_path: Path) -> None:
    catalog = folder / "catalog.json"
    catalog.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "id": "x", "assets": {
            "red": {"href": "scenes/a/B04.tif"},
            "abs": {"href": str(folder / "scenes" / "a" / "B04.tif")},
            "remote": {"href": "https://example.com/B02.tif"},
            "outside": {"href": "/elsewhere/B03.tif"}}}]}))
    out = tmp_path / "copy" / "catalog-http.json"
    assert rewrite_catalog(catalog, out, "http://127.0.0.1:9/") == 2
    assets = json.loads(out.read_text())["features"][0]["assets"]
    assert assets["red"]["href"] == assets["abs"]["href"] == "http://127.0.0.1:9/scenes/a/B04.tif"
    assert assets["remote"]["href"] == "https://example.com/B02.tif"
    assert assets["outside"]["href"] == "/elsewhere/B03.tif"
    with SlowLinkServer(folder, latency_ms=0, bandwidth_mbit=0) as server:  # and the URL serves the file
        rewrite_catalog(catalog, out, server.url)
        href = json.loads(out.read_text())["features"][0]["assets"]["red"]["href"]
        assert request(server, "GET", href.removeprefix(server.url))[1] == PAYLOAD


@pytest.mark.parametrize("zoom", [9, 10, 11, 12])
def test_viewport_is_5_by_4_distinct_tiles_at_the_zoom(zoom: int) -> None:
    view = choose_viewport(zoom, (12.4, 47.9))
    tiles = view.tiles
    assert len(tiles) == 20 and len(set(tiles)) == 20 and {t.z for t in tiles} == {zoom}
    assert len({t.x for t in tiles}) == 5 and len({t.y for t in tiles}) == 4
    west, south, east, north = view.bounds_4326()
    assert west <= 12.4 <= east and south <= 47.9 <= north
    if zoom >= 11:  # small enough to lie wholly in the unbuilt part of the demo archive
        assert all(_inside(t, UNBUILT_BBOX_4326) for t in tiles)
    pan = view.neighbour("west")
    assert not set(pan.tiles) & set(tiles) and max(t.x for t in pan.tiles) + 1 == min(t.x for t in tiles)


def test_viewport_tiles_nearest_the_centre_first() -> None:
    tiles = Viewport(12, 100, 200).tiles
    assert {(t.x, t.y) for t in tiles[:2]} == {(102, 201), (102, 202)}
