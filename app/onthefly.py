"""Compositing from the source scenes where nothing is built: bounded, time-limited, shared.

On-the-fly work runs in its own small thread pool (``onthefly_workers``), never in the threads
that serve built tiles, and at most a few requests may wait on it: beyond that the answer is an
immediate 503, so built areas keep being served while the pool is saturated. A request waits at
most until its time budget (``onthefly_budget_s``, counted from the start of the request) is
spent, then gets a 503 with ``Retry-After``; the composite it started goes on and is kept, so the
retry finds it. Identical requests in flight share one composite. A composite is computed in
horizontal strips, one per worker, as the batch build does (each pixel is computed on its own, so
strips change nothing but the time an idle server takes); the scenes are chosen once for the grid.

The compositing itself is `compositor.composite.composite_window` (SCL mask, per-orbit
percentiles and counts, orbit blending), on the requested grid, reading the scenes' overviews at
that grid's resolution; scenes come from the catalog (cached by 1-degree cell), least cloudy first,
at most ``onthefly_max_scenes`` (a cap for speed that the batch build does not have), each with the
offset its data show (`compositor.offsets.check_offsets`, cached per process, as the build does).
The blend weights also see the footprints of the scenes within the taper's reach around the tile
(`compositor.blend.context_distance_m`), as a built block does, so that a tile and the block it
overlaps weigh the orbits alike.

The SCL footprint rule and its buffer are the batch build's, applied to the SCL overview that is
read: below zoom 12 or so that overview's pixels are coarser than 20 m and each one is a sample of
the 20 m classes (the providers' overviews are resampled, not "any invalid"), so a small cloud or
a cloud edge the 20 m SCL has can be missed, and a buffer smaller than one overview pixel adds
nothing. On the fly approximates the build there; at full resolution (``use_overviews=False``) it
is the build.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import rasterio
from affine import Affine
from cachetools import TTLCache
from rasterio.crs import CRS
from rasterio.transform import array_bounds
from shapely.geometry import box

from app.cache import SceneCache, SeasonCache
from app.context import wait_result
from app.errors import ServerBusyError
from compositor.grid import project_bounds
from compositor.blend import context_distance_m
from compositor.catalog import BBox, Scene
from compositor.composite import Composite, CompositeOptions, composite_window
from compositor.errors import InvalidInputError
from compositor.offsets import check_offsets
from compositor.read import GDAL_ENV
from compositor.seasons import Season
from compositor.settings import Settings

logger = logging.getLogger(__name__)

CompositeFn = Callable[..., Composite]
WAITERS_PER_WORKER = 4
JOBS_PER_WORKER = 8
QUEUE_FULL_RETRY_AFTER_S = 2  # a place frees when a composite ends or a waiting client leaves: soon
MIN_STRIP_ROWS = 128  # below this, the per-read setup of a second strip costs more than it saves


def grid_bounds_4326(crs: CRS | str, transform: Affine, shape: tuple[int, int]) -> BBox:
    """Lon/lat box of a grid (densified edges); `InvalidInputError` when it has none."""
    bounds = project_bounds(crs, "EPSG:4326", array_bounds(shape[0], shape[1], transform))
    if bounds is None:
        raise InvalidInputError("this area cannot be expressed in longitude and latitude")
    return bounds


def least_cloudy(scenes: Sequence[Scene], bbox_4326: BBox, limit: int) -> list[Scene]:
    """Scenes touching the box, least cloudy first (unknown cover last), at most ``limit``."""
    area = box(*bbox_4326)
    touching = [s for s in scenes if s.footprint.intersects(area)]
    touching.sort(key=lambda s: (s.cloud_cover if s.cloud_cover is not None else 101.0, s.datetime, s.id))
    return touching[:limit]


def grow_bbox_4326(bbox_4326: BBox, distance_m: float) -> BBox:
    """A lon/lat box grown by at least ``distance_m`` (ground metres) on every side (spherical Earth,
    longitudes at the box's most poleward latitude; latitudes capped at +-90)."""
    west, south, east, north = bbox_4326
    dlat = math.degrees(distance_m / 6_371_008.8)
    poleward = min(89.0, max(abs(south), abs(north)) + dlat)
    dlon = min(180.0, dlat / math.cos(math.radians(poleward)))
    return (max(-180.0, west - dlon), max(-90.0, south - dlat), min(180.0, east + dlon), min(90.0, north + dlat))


def lower_thread_priority(steps: int) -> None:
    """Lower the calling thread's CPU priority by ``steps`` nice levels (Linux: nice is per thread, and
    threads it starts inherit it). Built tiles, served by the other threads, then get the cores first
    when on-the-fly compositing saturates them. Elsewhere, or when refused, nothing changes."""
    if steps <= 0 or not sys.platform.startswith("linux"):
        return
    try:  # relative to the main thread's (pid's) nice: a thread started by a niced thread starts niced
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + steps)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
    except OSError as exc:  # pragma: no cover - a sandbox without setpriority
        logger.warning("on-the-fly threads keep the server's CPU priority: %s", exc)


class OnTheFly:
    """The bounded pool, the in-flight table and the cache of on-the-fly composites."""

    def __init__(self, settings: Settings, scenes: SceneCache, composite: CompositeFn = composite_window,
                 kept_composites: int = 64) -> None:
        self.settings = settings
        self.scenes = scenes
        self._composite = composite
        workers = settings.onthefly_workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s2seasons-onthefly",
                                        initializer=lower_thread_priority, initargs=(settings.onthefly_nice,))
        self.max_waiters = WAITERS_PER_WORKER * workers
        self.max_jobs = JOBS_PER_WORKER * workers
        self._lock = threading.Lock()
        self._inflight: dict[tuple, Future] = {}
        self._waiters: dict[tuple, int] = {}
        self._n_waiting = 0
        self._results: SeasonCache[Composite] = SeasonCache(
            TTLCache(maxsize=kept_composites, ttl=max(settings.catalog_cache_ttl_s, 1.0)))
        self.options = CompositeOptions(invalid_classes=settings.invalid_scl_classes,
                                        mask_buffer_m=settings.mask_buffer_m, blend_power=settings.blend_power,
                                        use_overviews=True, blend_edge_margin_m=settings.blend_edge_margin_m,
                                        blend_edge_ramp_m=settings.blend_edge_ramp_m)

    @property
    def retry_after_s(self) -> float:
        return max(1.0, math.ceil(self.settings.onthefly_budget_s / 2))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def invalidate(self, season: str) -> None:
        self._results.invalidate(season)

    def select_scenes(self, season: Season, bbox_4326: BBox) -> list[Scene]:
        return least_cloudy(self.scenes.find(season.name, bbox_4326), bbox_4326, self.settings.onthefly_max_scenes)

    def footprint_scenes(self, season: Season, bbox_4326: BBox, selected: Sequence[Scene]) -> list[Scene]:
        """The scenes whose footprints shape the blend weights of a composite of ``bbox_4326``: the
        ``selected`` ones and those within the taper's reach that do not touch the box (a block
        build gives its blocks the same). Scenes touching the box but left out by
        ``onthefly_max_scenes`` are not read, so their footprints are left out too."""
        reach = context_distance_m(self.options.blend_edge_margin_m, self.options.blend_edge_ramp_m)
        around = grow_bbox_4326(bbox_4326, reach)
        area, near = box(*bbox_4326), box(*around)
        outside = [s for s in self.scenes.find(season.name, around)
                   if s.footprint.intersects(near) and not s.footprint.intersects(area)]
        return [*selected, *outside]

    def composite(self, season: Season, crs: CRS, transform: Affine, shape: tuple[int, int], bands: Sequence[str],
                  *, deadline: float, use_overviews: bool = True) -> Composite:
        """Percentiles and counts of ``bands`` on the grid, within the request's ``deadline`` (monotonic)."""
        crs_text = crs.to_string()
        key = (season.name, crs_text, tuple(transform)[:6], tuple(shape), tuple(bands), use_overviews)
        hit = self._results.get(key)
        if hit is not None:
            return hit
        with self._lock:
            job = self._inflight.get(key)
            if job is None and (self._n_waiting >= self.max_waiters or len(self._inflight) >= self.max_jobs):
                raise ServerBusyError(
                    f"{len(self._inflight)} on-the-fly composites are running or queued: retry in a moment, "
                    "or view the built areas meanwhile", QUEUE_FULL_RETRY_AFTER_S)
            if job is None:
                job = _Job(key, season, crs_text, transform, tuple(shape), tuple(bands), use_overviews)
                job.plan = self._pool.submit(self._plan, job)
                self._inflight[key] = job
            self._waiters[key] = self._waiters.get(key, 0) + 1
            self._n_waiting += 1
        try:
            return wait_result(job.result, deadline)  # gives up early when the client goes away
        except FutureTimeout:
            raise ServerBusyError(
                f"the on-the-fly composite took longer than the budget of {self.settings.onthefly_budget_s:g} s; "
                "it goes on in the background: retry shortly", self.retry_after_s) from None
        finally:
            with self._lock:
                self._n_waiting -= 1
                self._waiters[key] -= 1
                if not self._waiters[key]:
                    del self._waiters[key]
                    if job.plan is not None and job.plan.cancel():  # nobody waits and it never started
                        self._inflight.pop(key, None)
                        job.result.cancel()

    def _plan(self, job: _Job) -> None:
        """Choose the scenes once for the whole grid, then composite it in strips on every worker."""
        try:
            bbox = grid_bounds_4326(job.crs, job.transform, job.shape)
            with rasterio.Env(**GDAL_ENV):
                job.scenes, _ = check_offsets(self.select_scenes(job.season, bbox), self.options.read_threads)
            job.footprints = self.footprint_scenes(job.season, bbox, job.scenes)
            options = self.options if job.use_overviews else dataclasses.replace(self.options, use_overviews=False)
            strips = split_rows(job.shape[0], self.settings.onthefly_workers)
            job.parts = [None] * len(strips)
            job.remaining = len(strips)
            for index, (row, rows) in enumerate(strips):
                transform = job.transform @ Affine.translation(0, row)
                part = self._pool.submit(self._strip, job, transform, (rows, job.shape[1]), options)
                part.add_done_callback(lambda future, index=index: self._strip_done(job, index, future))
        except BaseException as exc:
            self._finish(job, error=exc)

    def _strip(self, job: _Job, transform: Affine, shape: tuple[int, int], options: CompositeOptions) -> Composite:
        with rasterio.Env(**GDAL_ENV):
            return self._composite(job.scenes, job.bands, job.crs, transform, shape, options, footprints=job.footprints)

    def _strip_done(self, job: _Job, index: int, future: Future) -> None:
        try:
            part = future.result()
        except BaseException as exc:
            self._finish(job, error=exc)
            return
        with self._lock:
            job.parts[index] = part
            job.remaining -= 1
            last = job.remaining == 0
        if last:
            self._finish(job, result=merge_strips(job.parts))

    def _finish(self, job: _Job, *, result: Composite | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            self._inflight.pop(job.key, None)
        if job.result.done():
            return
        if error is not None:
            job.result.set_exception(error)
            return
        if not result.skipped:  # a scene that failed may read next time: do not keep a partial answer
            self._results.put(job.key, result)
        logger.info("on-the-fly %s %s %dx%d: %d scenes, %d acquisitions in %d strips, %.2f s", job.season.name,
                    job.bands, job.shape[1], job.shape[0], len(job.scenes), result.n_acquisitions, len(job.parts),
                    time.perf_counter() - job.started)
        job.result.set_result(result)


class _Job:
    """One on-the-fly composite in flight: its plan step, its strips and the merged result."""

    def __init__(self, key: tuple, season: Season, crs: str, transform: Affine, shape: tuple[int, int],
                 bands: tuple[str, ...], use_overviews: bool) -> None:
        self.key, self.season, self.crs, self.transform, self.shape = key, season, crs, transform, shape
        self.bands, self.use_overviews = bands, use_overviews
        self.started = time.perf_counter()
        self.plan: Future | None = None
        self.scenes: list[Scene] = []
        self.footprints: list[Scene] = []
        self.parts: list[Composite | None] = []
        self.remaining = 0
        self.result: Future = Future()


def split_rows(height: int, n: int) -> list[tuple[int, int]]:
    """``(first row, rows)`` of at most ``n`` strips of at least `MIN_STRIP_ROWS` rows covering ``height``."""
    count = max(1, min(n, height // MIN_STRIP_ROWS))
    edges = [round(i * height / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1] - edges[i]) for i in range(count)]


def merge_strips(parts: Sequence[Composite]) -> Composite:
    """One composite from horizontal strips, top to bottom (every pixel is computed on its own)."""
    if len(parts) == 1:
        return parts[0]
    stats = {band: np.concatenate([p.stats[band] for p in parts], axis=1) for band in parts[0].stats}
    counts = {band: np.concatenate([p.counts[band] for p in parts], axis=0) for band in parts[0].counts}
    skipped: dict[str, str] = {}
    for part in parts:
        skipped.update(part.skipped)
    return Composite(stats, counts, skipped, max(p.n_acquisitions for p in parts))
