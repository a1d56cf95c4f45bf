"""Broken upstreams: a STAC API that is down or slow, scene files missing, truncated or corrupt, remote COGs
that fail or hang, and clients that leave. On-the-fly answers skip what they cannot read (and say how many
scenes), or answer 503 with Retry-After; built tiles keep coming meanwhile."""

from __future__ import annotations

import asyncio
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import morecantile
from shapely.geometry import box
import pytest
import rasterio
from affine import Affine
from fastapi.testclient import TestClient
from rasterio.enums import Resampling

from app.main import create_app
from app.services import make_services
from compositor.catalog import deduplicate_acquisitions, load_scenes
from compositor.composite import composite_window
from compositor.errors import SourceUnavailableError
from compositor.read import GDAL_ENV, read_warped
from compositor.seasons import resolve_season
from compositor.settings import Settings
from tests.app.helpers import BUILT_LONLAT, SEASON, UNBUILT_LONLAT, app_settings, free_port, tile_of, tile_url
from tests.app.upstreams import (
    broken_catalog,
    corrupt,
    file_handler,
    http_server,
    missing,
    silent_server,
    slow_stac_handler,
    truncated,
)

ONTHEFLY = tile_url(UNBUILT_LONLAT, 12)
ONTHEFLY_OTHER = tile_url(UNBUILT_LONLAT, 13)
BUILT = tile_url(BUILT_LONLAT, 12)


def tile_scenes(archive, lonlat=UNBUILT_LONLAT, z=12, *, surely_read: bool = False) -> list:
    """The scenes touching an on-the-fly tile (ids sorted); with ``surely_read`` only those the server
    certainly reads: the first MGRS tile of each acquisition (a second one is read only where the first
    has no data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        area = box(*morecantile.tms.get("WebMercatorQuad").bounds(tile_of(lonlat, z)))
    touching = [s for s in load_scenes(archive.catalog, season=resolve_season(SEASON)) if s.footprint.intersects(area)]
    if not surely_read:
        return sorted(s.id for s in touching)
    return sorted(group[0].id for group in deduplicate_acquisitions(touching))


# --- the catalog --------------------------------------------------------------------------------------

def test_catalog_down_gives_503_on_the_fly_and_built_tiles_still_200(built):
    """Nothing listens at the catalog's port: on-the-fly 503 + Retry-After (and at once for the next tiles
    of the area, the failure is remembered); built tiles and points are read as ever."""
    catalog = f"http://127.0.0.1:{free_port()}/v1"
    settings = app_settings(built.data, catalog)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        first = client.get(ONTHEFLY)
        assert first.status_code == 503
        assert int(first.headers["retry-after"]) >= 1
        assert "catalog cannot be reached" in first.json()["detail"] and catalog not in first.text
        started = time.monotonic()
        again = client.get(ONTHEFLY_OTHER)
        assert again.status_code == 503 and "retry-after" in again.headers
        assert time.monotonic() - started < 0.5
        built_tile = client.get(BUILT)
        assert built_tile.status_code == 200 and built_tile.headers["x-s2seasons-source"] == "built"
        point = client.get(f"/seasons/{SEASON}/point/{BUILT_LONLAT[0]},{BUILT_LONLAT[1]}")
        assert point.status_code == 200


def test_slow_catalog_gives_503_and_never_holds_up_built_tiles(built):
    """The catalog answers after 5 s, past ``stac_timeout_s``: the on-the-fly tile gets its 503 with
    Retry-After, and built tiles asked meanwhile come back at once."""
    with http_server(slow_stac_handler(5.0)) as stac:
        settings = app_settings(built.data, f"{stac}/v1", stac_timeout_s=0.2,
                                onthefly_budget_s=20.0)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client, ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            waiting = pool.submit(client.get, ONTHEFLY)
            time.sleep(0.3)
            for z in (12, 13, 14):
                t0 = time.monotonic()
                response = client.get(tile_url(BUILT_LONLAT, z, query="preset=swir"))
                assert response.status_code == 200 and time.monotonic() - t0 < 2.0
            response = waiting.result()
            assert response.status_code == 503 and "retry-after" in response.headers, response.text
            assert time.monotonic() - started < 15  # 0.2 s timeout x pystac-client's 6 attempts, not 5 s each


# --- scene files ----------------------------------------------------------------------------------------

def test_unreadable_scenes_are_skipped_and_counted(archive, tmp_path):
    """One scene's SCL is missing, one truncated, one corrupt: the tile renders from the others, says
    ``X-S2Seasons-Skipped-Scenes: 3`` and is not cached (those scenes may be readable next time)."""
    ids = tile_scenes(archive, surely_read=True)
    # The scene with the largest SCL file is truncated (the SCL of a scene with little data in the
    # archive's region compresses to a few kB: half of it is cut).
    scl_size = {s.id: Path(s.hrefs["scl"]).stat().st_size for s in load_scenes(archive.catalog) if s.id in ids}
    cut = max(ids[1:-1], key=lambda i: scl_size[i])
    breaks = {ids[0]: missing, cut: truncated, ids[-1]: corrupt}
    catalog = broken_catalog(archive.catalog, tmp_path / "broken", breaks)
    settings = app_settings(tmp_path / "data", catalog)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for _ in range(2):
            response = client.get(ONTHEFLY)
            assert response.status_code == 200, response.text
            assert response.headers["x-s2seasons-source"] == "on-the-fly"
            assert response.headers["x-s2seasons-skipped-scenes"] == "3"
            assert response.headers["x-s2seasons-cache"] == "miss"
        whole = TestClient(create_app(app_settings(tmp_path / "data2", archive.catalog))).get(ONTHEFLY)
        assert "x-s2seasons-skipped-scenes" not in whole.headers


def test_no_readable_scene_gives_503(archive, tmp_path):
    catalog = broken_catalog(archive.catalog, tmp_path / "broken", {i: missing for i in tile_scenes(archive)})
    with TestClient(create_app(app_settings(tmp_path / "data", catalog)), raise_server_exceptions=False) as client:
        response = client.get(ONTHEFLY)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert "could be read" in response.json()["detail"] and str(tmp_path) not in response.text


# --- GDAL's remote reads -----------------------------------------------------------------------------------

def test_gdal_env_sets_timeouts_and_retries():
    assert int(GDAL_ENV["GDAL_HTTP_TIMEOUT"]) > 0 and int(GDAL_ENV["GDAL_HTTP_CONNECTTIMEOUT"]) > 0
    assert int(GDAL_ENV["GDAL_HTTP_MAX_RETRY"]) >= 1 and float(GDAL_ENV["GDAL_HTTP_RETRY_DELAY"]) > 0


def _read_one(href: str):
    grid = Affine(100.0, 0, 4_440_000.0, 0, -100.0, 2_800_000.0)  # EPSG:3035, east of Munich
    return read_warped(href, "EPSG:3035", grid, (32, 32), Resampling.nearest)


def test_remote_cog_read_is_retried_after_a_503(archive):
    scene = load_scenes(archive.catalog, season=resolve_season(SEASON))[0]
    handler, statuses = file_handler(Path(scene.hrefs["red"]), fail_first=1)
    with http_server(handler) as base, rasterio.Env(**GDAL_ENV):
        data = _read_one(f"{base}/flaky/{scene.id}/B04.tif")
    assert statuses[0] == 503 and {200, 206} & set(statuses[1:])
    assert data.shape == (32, 32)


def test_remote_cog_read_that_hangs_fails_after_the_timeout():
    """A server that accepts and never answers: the read fails (the scene is skipped), it does not hang."""
    env = {**GDAL_ENV, "GDAL_HTTP_TIMEOUT": 1, "GDAL_HTTP_CONNECTTIMEOUT": 1, "GDAL_HTTP_MAX_RETRY": 1,
           "GDAL_HTTP_RETRY_DELAY": 0.1}
    with silent_server() as base, rasterio.Env(**env):
        started = time.monotonic()
        with pytest.raises(SourceUnavailableError):
            _read_one(f"{base}/hang/B04.tif")
        assert time.monotonic() - started < 10


# --- clients that leave --------------------------------------------------------------------------------------

class SlowComposite:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __call__(self, scenes, bands, crs, transform, shape, options, footprints=None, indices=(), medoid=False):
        time.sleep(self.delay_s)
        return composite_window(scenes, bands, crs, transform, shape, options, footprints=footprints)


async def _get(app, path: str, disconnect_after_s: float | None) -> tuple[int, float]:
    """``GET path`` straight through ASGI; the client goes away after ``disconnect_after_s``."""
    messages: list[dict] = []
    asked = False

    async def receive() -> dict:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if disconnect_after_s is None:
            await asyncio.Event().wait()
        await asyncio.sleep(disconnect_after_s)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)

    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    started = time.monotonic()
    await app(scope, receive, send)
    return next(m["status"] for m in messages if m["type"] == "http.response.start"), time.monotonic() - started


def test_a_client_that_leaves_frees_its_waiting_place(archive, tmp_path):
    """One worker (4 waiting places), slow composites: four requests whose clients leave after 0.3 s are
    let go at once (499 in the log) and free their places; a fifth request is then accepted and served,
    not refused with 503 as it was while cancelled requests kept their places for the whole budget."""
    settings = app_settings(tmp_path, archive.catalog, onthefly_workers=1, onthefly_budget_s=30.0)
    services = make_services(settings, composite=SlowComposite(1.0))
    app = create_app(settings, services)
    base = tile_of(UNBUILT_LONLAT, 13)
    urls = [f"/seasons/{SEASON}/tiles/WebMercatorQuad/13/{base.x + i}/{base.y}.png" for i in range(5)]

    async def scenario() -> None:
        left = await asyncio.gather(*(_get(app, url, disconnect_after_s=0.3) for url in urls[:4]))
        assert [status for status, _ in left] == [499] * 4
        assert all(elapsed < 2.0 for _, elapsed in left), left
        assert services.onthefly._n_waiting == 0
        status, _ = await _get(app, urls[4], disconnect_after_s=None)
        assert status == 200

    asyncio.run(scenario())
    services.close()


def test_queue_full_asks_to_retry_soon(archive, tmp_path):
    """The waiting room full: 503 with a short Retry-After (a place frees within a composite's time)."""
    settings = app_settings(tmp_path, archive.catalog, onthefly_workers=1, onthefly_budget_s=30.0)
    services = make_services(settings, composite=SlowComposite(1.5))
    base = tile_of(UNBUILT_LONLAT, 13)
    urls = [f"/seasons/{SEASON}/tiles/WebMercatorQuad/13/{base.x + i}/{base.y + 1}.png" for i in range(6)]
    with TestClient(create_app(settings, services)) as client, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(client.get, urls))
    busy = [r for r in responses if r.status_code == 503]
    assert busy and all(int(r.headers["retry-after"]) <= 2 for r in busy)
    assert all("retry" in r.json()["detail"] for r in busy)
