"""On-the-fly compositing: sources, mixing with built blocks, equality with the build, and the limits."""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from rasterio.features import rasterize
from rasterio.transform import from_bounds
from rasterio.warp import transform_geom
from rio_tiler.io import Reader
from shapely.geometry import box, mapping

from app.main import create_app
from app.services import make_services
from compositor.composite import composite_window
from compositor.grid import OutputGrid
from tests.app.helpers import (
    BOUNDARY_LONLAT,
    BUILT_BLOCK,
    BUILT_LONLAT,
    GRID,
    SEASON,
    UNBUILT_BLOCK,
    UNBUILT_LONLAT,
    app_settings,
    decode,
    load_npy,
    tile_of,
    tile_url,
)

WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


def built_mask(lonlat: tuple[float, float], z: int) -> np.ndarray:
    """Pixels of the WebMercator tile whose centre lies in the built block (what the server rasterizes)."""
    tile = tile_of(lonlat, z)
    block = OutputGrid(**GRID).block_by_id(BUILT_BLOCK)
    outline = transform_geom("EPSG:3035", "EPSG:3857", mapping(box(*block.bounds).segmentize(block.span_m / 16)))
    transform = from_bounds(*WEB_MERCATOR.xy_bounds(tile), 256, 256)
    return rasterize([(outline, 1)], out_shape=(256, 256), transform=transform, fill=0).astype(bool)


@pytest.mark.parametrize(
    ("lonlat", "source"),
    [(BUILT_LONLAT, "built"), (UNBUILT_LONLAT, "on-the-fly"), (BOUNDARY_LONLAT, "mixed")],
)
def test_source_header(client, lonlat, source):
    response = client.get(tile_url(lonlat, 12))
    assert response.status_code == 200
    assert response.headers["x-s2seasons-source"] == source
    assert "x-s2seasons-not-built" not in response.headers


def test_mixed_tile_combines_built_and_on_the_fly(client, unbuilt_client, built):
    """Built pixels are the block's COG as TiTiler reads it; the others are the on-the-fly composite."""
    z = 12
    mixed = client.get(tile_url(BOUNDARY_LONLAT, z, "npy", "bands=red"))
    assert mixed.headers["x-s2seasons-source"] == "mixed"
    fly = unbuilt_client.get(tile_url(BOUNDARY_LONLAT, z, "npy", "bands=red"))
    mixed_red, fly_red = load_npy(mixed.content)[0], load_npy(fly.content)[0]
    inside = built_mask(BOUNDARY_LONLAT, z)
    assert 0.1 < inside.mean() < 0.9
    np.testing.assert_array_equal(mixed_red[~inside], fly_red[~inside])
    tile = tile_of(BOUNDARY_LONLAT, z)
    cog = next((built.data / SEASON / "blocks" / BUILT_BLOCK).glob("*_red_p50_*.tif"))
    with Reader(str(cog)) as src:
        expected = src.tile(tile.x, tile.y, tile.z).array.data[0]
    np.testing.assert_array_equal(mixed_red[inside], expected[inside])


@pytest.mark.parametrize("z", [10, 11])
def test_on_the_fly_equals_built_within_tolerance(client, unbuilt_client, z):
    """Near the product resolution (100 m; WebMercator z10 is 102 m here, z11 51 m) on-the-fly tiles equal the
    built ones: tile means within 0.5 %, per-pixel median difference under 1 %, at least 85 % of pixels within
    10 % (or 50 DN), counts within 1 on at least 95 % of pixels. The rest is resampling: built tiles resample
    the 100 m grid (nearest), on-the-fly tiles average the scenes straight into the tile's pixels."""
    query = "bands=blue,red,nir&statistic=p50"
    built = load_npy(client.get(tile_url(BUILT_LONLAT, z, "npy", query)).content).astype(float)
    fly = load_npy(unbuilt_client.get(tile_url(BUILT_LONLAT, z, "npy", query)).content).astype(float)
    compare = built_mask(BUILT_LONLAT, z) & (built[3] > 0) & (fly[3] > 0)
    assert compare.sum() > 5000
    for band in range(3):
        a, b = built[band][compare], fly[band][compare]
        assert abs(a.mean() - b.mean()) / a.mean() < 0.005
        assert np.median(np.abs(a - b) / a) < 0.01
        assert (np.abs(a - b) <= np.maximum(50, 0.10 * a)).mean() >= 0.85
    count_query = "bands=red&statistic=count"
    count_built = load_npy(client.get(tile_url(BUILT_LONLAT, z, "npy", count_query)).content)[0]
    count_fly = load_npy(unbuilt_client.get(tile_url(BUILT_LONLAT, z, "npy", count_query)).content)[0]
    difference = np.abs(count_built[compare].astype(int) - count_fly[compare].astype(int))
    assert (difference <= 1).mean() >= 0.95


@pytest.mark.parametrize(("z", "factor"), [(10, 1), (11, 2), (12, 4), (13, 8)])
def test_on_the_fly_is_never_finer_than_the_season(unbuilt_client, z, factor):
    """Pixels finer than the season's 100 m are composited at about 100 m (at most 10 % coarser) and repeated."""
    red = load_npy(unbuilt_client.get(tile_url(UNBUILT_LONLAT, z, "npy", "bands=red")).content)[0]
    cells = red.reshape(256 // factor, factor, 256 // factor, factor)
    assert (cells == cells[:, :1, :, :1]).all()
    if factor < 8:
        finer = red.reshape(128 // factor, 2 * factor, 128 // factor, 2 * factor)
        assert not (finer == finer[:, :1, :, :1]).all()


def test_below_min_zoom_unbuilt_is_transparent_with_a_header(client):
    response = client.get(tile_url(UNBUILT_LONLAT, 8))  # z8: coarser than onthefly_min_zoom (9)
    assert response.status_code == 200
    # z8 holds the built block too: it is drawn, the rest is left empty and the header says why
    assert response.headers["x-s2seasons-source"] == "built"
    assert "on-the-fly minimum" in response.headers["x-s2seasons-not-built"]
    far = client.get(tile_url((15.0, 50.0), 8))  # nothing built in that tile at all
    assert far.headers["x-s2seasons-source"] == "not-built"
    assert (decode(far.content)[3] == 0).all()


def test_min_zoom_is_a_setting(archive, tmp_path):
    app = create_app(app_settings(tmp_path, archive.catalog, onthefly_min_zoom=13))
    with TestClient(app) as client:
        assert client.get(tile_url(UNBUILT_LONLAT, 12)).headers["x-s2seasons-source"] == "not-built"
        assert client.get(tile_url(UNBUILT_LONLAT, 13)).headers["x-s2seasons-source"] == "on-the-fly"


class Recorder:
    """A composite function that records its scenes and can be slowed down."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[list] = []  # the scenes of each call (one call per strip)
        self.rows: list[int] = []  # the rows of each call
        self.lock = threading.Lock()

    def __call__(self, scenes, bands, crs, transform, shape, options, footprints=None):
        with self.lock:
            self.calls.append(list(scenes))
            self.rows.append(shape[0])
        time.sleep(self.delay_s)
        return composite_window(scenes, bands, crs, transform, shape, options, footprints)


def test_max_scenes_keeps_the_least_cloudy(archive, tmp_path):
    settings = app_settings(tmp_path, archive.catalog, onthefly_max_scenes=5)
    recorder = Recorder()
    services = make_services(settings, composite=recorder)
    with TestClient(create_app(settings, services)) as client:
        assert client.get(tile_url(UNBUILT_LONLAT, 12)).status_code == 200
        scenes = recorder.calls[0]
        assert all(call == scenes for call in recorder.calls)  # strips share one choice of scenes
        assert len(scenes) == 5
        area = box(*WEB_MERCATOR.bounds(tile_of(UNBUILT_LONLAT, 12)))
        touching = [s for s in services.scenes.find(SEASON, area.bounds) if s.footprint.intersects(area)]
        assert len(touching) > 20
        assert sorted(s.cloud_cover for s in scenes) == sorted(s.cloud_cover for s in touching)[:5]


def test_time_budget_gives_503_then_the_retry_finds_the_composite(archive, tmp_path):
    settings = app_settings(tmp_path, archive.catalog, onthefly_budget_s=0.3)
    recorder = Recorder(delay_s=1.0)
    with TestClient(create_app(settings, make_services(settings, composite=recorder))) as client:
        url = tile_url(UNBUILT_LONLAT, 12)
        started = time.monotonic()
        first = client.get(url)
        assert first.status_code == 503
        assert time.monotonic() - started < 1.0
        assert int(first.headers["retry-after"]) >= 1
        assert "budget" in first.json()["detail"]
        deadline = time.monotonic() + 30  # the composite goes on in the background and is kept
        while (second := client.get(url)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert second.status_code == 200
        assert sum(recorder.rows) == 64  # one composite (256 px at 25 m, computed at 100 m), not two


def test_on_the_fly_work_never_starves_built_tiles(archive, built, tmp_path):
    """One slow on-the-fly worker, many unbuilt tiles requested at once: built tiles still come back fast,
    and requests beyond the waiting room get an immediate 503."""
    settings = app_settings(built.data, archive.catalog, onthefly_workers=1, onthefly_budget_s=20.0)
    recorder = Recorder(delay_s=1.0)
    with TestClient(create_app(settings, make_services(settings, composite=recorder))) as client:
        unbuilt = [tile_url(UNBUILT_LONLAT, 13, query=f"bands=red&rescale=0,{3000 + i}") for i in range(2)]
        base = tile_of(UNBUILT_LONLAT, 13)
        unbuilt += [f"/seasons/{SEASON}/tiles/WebMercatorQuad/13/{base.x + i}/{base.y + j}.png"
                    for i in range(3) for j in (-1, 1, 2)]
        with ThreadPoolExecutor(len(unbuilt)) as pool:
            futures = [pool.submit(client.get, url) for url in unbuilt]
            time.sleep(0.5)
            started = time.monotonic()
            fast = client.get(tile_url(BUILT_LONLAT, 13, query="preset=swir"))
            elapsed = time.monotonic() - started
            responses = [f.result() for f in futures]
        assert fast.status_code == 200 and fast.headers["x-s2seasons-source"] == "built"
        assert elapsed < 1.5
        statuses = sorted(r.status_code for r in responses)
        # 4 requests may wait per worker; the two requests of the same composite share one job
        assert statuses.count(503) >= len(unbuilt) - 5 and statuses.count(200) >= 1
        assert len(recorder.calls) <= 4
        busy = next(r for r in responses if r.status_code == 503)
        assert "retry" in busy.json()["detail"] and "retry-after" in busy.headers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_on_the_fly_threads_run_at_a_lower_cpu_priority(archive, tmp_path):
    """Compositing runs ``onthefly_nice`` steps nicer than the server, and so do the read threads it starts;
    the threads that serve built tiles keep the server's priority."""
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: list[tuple[int, int]] = []

    class NiceRecorder(Recorder):
        def __call__(self, *args, **kwargs):
            with ThreadPoolExecutor(1) as pool:  # as composite_window's read threads are started
                child = pool.submit(nice).result()
            seen.append((nice(), child))
            return super().__call__(*args, **kwargs)

    base = nice()
    settings = app_settings(tmp_path, archive.catalog, onthefly_nice=5)
    with TestClient(create_app(settings, make_services(settings, composite=NiceRecorder()))) as client:
        assert client.get(tile_url(UNBUILT_LONLAT, 12)).status_code == 200
    expected = min(19, base + 5)
    assert seen and all(values == (expected, expected) for values in seen), seen
    assert nice() == base


def test_strips_change_nothing(archive):
    """The pool composites a tile in strips, one per worker: the result is the whole tile's, bit for bit."""
    from affine import Affine

    from app.onthefly import least_cloudy, merge_strips, split_rows
    from compositor.catalog import load_scenes
    from compositor.composite import CompositeOptions
    from compositor.seasons import resolve_season

    tile = tile_of(BOUNDARY_LONLAT, 12)
    scenes = least_cloudy(load_scenes(archive.catalog, season=resolve_season(SEASON)),
                          tuple(WEB_MERCATOR.bounds(tile)), 40)
    transform = from_bounds(*WEB_MERCATOR.xy_bounds(tile), 256, 256)
    options = CompositeOptions(use_overviews=True)
    whole = composite_window(scenes, ("red", "swir22"), "EPSG:3857", transform, (256, 256), options)
    strips = merge_strips([composite_window(scenes, ("red", "swir22"), "EPSG:3857",
                                            transform @ Affine.translation(0, row), (rows, 256), options)
                           for row, rows in ((0, 85), (85, 86), (171, 85))])
    assert split_rows(512, 3) == [(0, 171), (171, 170), (341, 171)] and split_rows(200, 4) == [(0, 200)]
    for band in ("red", "swir22"):
        np.testing.assert_array_equal(strips.stats[band], whole.stats[band])
        np.testing.assert_array_equal(strips.counts[band], whole.counts[band])
    assert np.isfinite(whole.stats["red"]).mean() > 0.9


def test_unbuilt_blocks_are_queued_for_building(archive, built):
    settings = app_settings(built.data, archive.catalog, queue_unbuilt=True)
    with TestClient(create_app(settings)) as client:
        assert client.get(tile_url(UNBUILT_LONLAT, 12)).headers["x-s2seasons-source"] == "on-the-fly"
        assert client.get(tile_url(BUILT_LONLAT, 12)).headers["x-s2seasons-source"] == "built"
        body = client.get(f"/seasons/{SEASON}/queue").json()
    assert body["enabled"] is True
    assert [b["block"] for b in body["blocks"]] == [UNBUILT_BLOCK]
    command = body["blocks"][0]["command"]
    assert command.startswith(f"s2seasons build --season {SEASON} --bbox ")
    grid = OutputGrid(**GRID)
    assert [b.id for b in grid.blocks_for_bbox(tuple(body["blocks"][0]["bbox_4326"]))] == [UNBUILT_BLOCK]


def test_queue_is_off_by_default(client):
    client.get(tile_url(UNBUILT_LONLAT, 12))
    body = client.get(f"/seasons/{SEASON}/queue").json()
    assert body == {"season": SEASON, "enabled": False, "blocks": []}


def test_on_the_fly_weights_see_the_footprints_around_the_tile(tmp_path):
    """The footprints of an on-the-fly composite: the selected scenes and the scenes within the taper's
    reach outside the tile; not a scene touching the tile that was left out (it is not read)."""
    import datetime as dt

    from pyproj import Geod

    from app.onthefly import OnTheFly, grow_bbox_4326
    from compositor.blend import context_distance_m
    from compositor.catalog import Scene
    from compositor.seasons import resolve_season

    bbox = (15.40, 47.00, 15.50, 47.05)
    grown = grow_bbox_4326(bbox, 20_000.0)
    geod = Geod(ellps="WGS84")
    for lon0, lat0, lon1, lat1 in ((bbox[0], 47.05, grown[0], 47.05), (bbox[2], 47.05, grown[2], 47.05),
                                   (15.45, bbox[1], 15.45, grown[1]), (15.45, bbox[3], 15.45, grown[3])):
        assert geod.inv(lon0, lat0, lon1, lat1)[2] >= 20_000.0 * 0.99

    def scene(name, footprint):
        return Scene(id=name, datetime=dt.datetime(2022, 7, 1, 10, 30, tzinfo=dt.UTC), relative_orbit=79,
                     mgrs_tile="33TWN", crs="EPSG:32633", footprint=footprint, cloud_cover=1.0,
                     processing_baseline="04.00", offset_applied=True, hrefs={}, platform="sentinel-2a")

    inside, left_out = scene("inside", box(15.41, 47.01, 15.45, 47.04)), scene("left-out", box(15.42, 47.0, 15.6, 47.1))
    near, far = scene("near", box(15.52, 47.0, 15.6, 47.05)), scene("far", box(16.5, 47.0, 16.6, 47.05))

    class Scenes:
        def find(self, season, bbox_4326):
            return tuple(s for s in (inside, left_out, near, far) if s.intersects(bbox_4326))

    onthefly = OnTheFly(app_settings(tmp_path, tmp_path / "catalog.json"), Scenes())
    try:
        reach = context_distance_m(onthefly.options.blend_edge_margin_m, onthefly.options.blend_edge_ramp_m)
        assert 15_000 < reach < 25_000
        chosen = onthefly.footprint_scenes(resolve_season(SEASON), bbox, [inside])
    finally:
        onthefly.shutdown()
    assert [s.id for s in chosen] == ["inside", "near"]
