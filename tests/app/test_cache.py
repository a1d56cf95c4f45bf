"""Caching: rendered tiles (LRU), ETag and Cache-Control, catalog searches (TTL), invalidation by builds."""

from __future__ import annotations

import shutil
import time

from fastapi.testclient import TestClient

from app.cache import SceneCache, search_cell
from app.main import create_app
from app.services import make_services
from tests.app.helpers import BUILT_LONLAT, SEASON, UNBUILT_BLOCK, UNBUILT_LONLAT, app_settings, build_block, tile_url


def test_second_request_is_a_cache_hit_with_the_same_etag(client):
    url = tile_url(BUILT_LONLAT, 13, query="preset=colour-infrared")
    first, second = client.get(url), client.get(url)
    assert first.headers["x-s2seasons-cache"] == "miss" and second.headers["x-s2seasons-cache"] == "hit"
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert second.headers["x-s2seasons-source"] == "built"
    assert second.headers["content-type"] == "image/png"


def test_parameters_are_part_of_the_key(client):
    a = client.get(tile_url(BUILT_LONLAT, 13, query="preset=swir&rescale=0,2000"))
    b = client.get(tile_url(BUILT_LONLAT, 13, query="rescale=0,2000&preset=swir"))  # same, other order
    c = client.get(tile_url(BUILT_LONLAT, 13, query="preset=swir&rescale=0,2500"))
    assert b.headers["x-s2seasons-cache"] == "hit" and a.headers["etag"] == b.headers["etag"]
    assert c.headers["x-s2seasons-cache"] == "miss" and c.headers["etag"] != a.headers["etag"]


def test_if_none_match_gives_304(client):
    url = tile_url(BUILT_LONLAT, 13, "webp")
    etag = client.get(url).headers["etag"]
    response = client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.content == b""
    assert response.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_cache_control_depends_on_the_source(client):
    built = client.get(tile_url(BUILT_LONLAT, 12))
    fly = client.get(tile_url(UNBUILT_LONLAT, 12))
    assert built.headers["cache-control"] == "public, max-age=3600"
    assert fly.headers["cache-control"] == "public, max-age=60"


def test_errors_are_not_cached(client):
    url = tile_url(BUILT_LONLAT, 13, query="bands=purple")
    assert client.get(url).status_code == 400
    second = client.get(url)
    assert second.status_code == 400 and "x-s2seasons-cache" not in second.headers


def test_tile_cache_size_zero_disables_it(settings):
    app = create_app(settings.model_copy(update={"tile_cache_size": 0}))
    with TestClient(app) as client:
        url = tile_url(BUILT_LONLAT, 13)
        assert client.get(url).headers["x-s2seasons-cache"] == "miss"
        assert client.get(url).headers["x-s2seasons-cache"] == "miss"


def test_catalog_searches_are_cached_per_cell_with_a_ttl():
    calls = []

    def search(season, bbox):
        calls.append((season, bbox))
        return []

    cache = SceneCache(search, ttl_s=0.3)
    cache.find("2022-winter", (11.3, 47.8, 11.4, 47.9))
    cache.find("2022-winter", (11.5, 47.1, 11.6, 47.2))  # same 1-degree cell
    assert calls == [("2022-winter", (11.0, 47.0, 12.0, 48.0))]
    cache.find("2022-summer", (11.3, 47.8, 11.4, 47.9))
    assert len(calls) == 2
    time.sleep(0.4)
    cache.find("2022-winter", (11.3, 47.8, 11.4, 47.9))
    assert len(calls) == 3
    assert cache.invalidate("2022-winter") == 1
    cache.find("2022-winter", (11.3, 47.8, 11.4, 47.9))
    assert len(calls) == 4
    assert search_cell((-180.0, -90.0, -179.5, -89.5)) == (-180.0, -90.0, -179.0, -89.0)


def test_building_a_block_invalidates_tiles_and_searches(built, tmp_path):
    """A tile composited on the fly is cached; once its block is built, the next request reads the block."""
    data = tmp_path / "data"
    shutil.copytree(built.data, data)
    settings = app_settings(data, built.archive.catalog)
    services = make_services(settings)
    with TestClient(create_app(settings, services)) as client:
        url = tile_url(UNBUILT_LONLAT, 12, query="preset=ndvi")
        before = client.get(url)
        assert before.headers["x-s2seasons-source"] == "on-the-fly"
        assert client.get(url).headers["x-s2seasons-cache"] == "hit"
        other = client.get(tile_url(BUILT_LONLAT, 13))
        # One catalog search of the season: the block's scenes and those within the blend taper's reach
        # around it (its outline grown by 15 km, cached under its 1-degree cells).
        assert len(services.tiles) == 2 and len(services.scenes) == 1

        build_block(data, built.archive.catalog, UNBUILT_BLOCK)  # as `s2seasons build` in another process

        after = client.get(url)
        assert after.headers["x-s2seasons-source"] == "built"
        assert after.headers["x-s2seasons-cache"] == "miss"
        # read anew from the block, and the same picture: on the fly gave the tile the build gives
        assert after.content == before.content and after.headers["etag"] == before.headers["etag"]
        assert len(services.scenes) == 0  # the catalog searches of the season were dropped too
        assert len(services.tiles) == 1  # ... and every cached tile of the season, built ones included
        again = client.get(tile_url(BUILT_LONLAT, 13))
        assert again.headers["x-s2seasons-cache"] == "miss" and again.content == other.content
        assert client.get(f"/seasons/{SEASON}").json()["built"]["blocks"] == 2
