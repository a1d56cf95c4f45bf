"""Compositing from the source scenes where nothing is built: on the season's own grid, shared, bounded.

An on-the-fly tile is the tile the server will give once its block is built. The season grid's
blocks are composited where a tile needs them, in square chunks (``onthefly_chunk_px``) of the
block's grid at the overview level GDAL reads of a built block's COGs for that tile
(`app.built.read_level`): level 0, full resolution, at the zooms where built tiles read the
full-resolution COGs; a coarser level below. Each chunk is composited once, with the scenes and
options the block build uses (`block_scenes`: the scenes touching the block, the footprints of those
within the blend taper's reach, every scene, no cloud-cover cap unless the preview setting
``onthefly_max_scenes`` is set; the season's own build options where blocks are built), and kept;
every tile of a viewport is then cut from the chunks it covers exactly as from the built COGs
(`app.built.read_block_arrays`). Neighbouring tiles share chunks, so a viewport composites its
region once.

At level 0 a chunk is the build's computation on a smaller window: the same pixels except where
GDAL's averaging warp of the 10/20 m bands gives a last-digit difference at another window size
(within 1 DN, measured and tested). At coarser levels a built COG's overview is the average of its
full-resolution percentiles, which on the fly would cost the build itself; there the chunk is
composited at the level's own resolution, from the scenes' overviews (percentiles of averages
instead of averages of percentiles: the tolerance is measured and stated in the README).

The work runs in its own small thread pool (``onthefly_workers``), never in the threads that
serve built tiles, and at most a few requests may wait on it: beyond that the answer is an
immediate 503, so built areas keep being served while the pool is saturated. A request waits at
most until its time budget (``onthefly_budget_s``) is spent, then gets a 503 with
``Retry-After``; the chunks it started go on and are kept, so the retry finds them. Requests
needing the same chunk share it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np
import rasterio
import shapely
from affine import Affine
from cachetools import TTLCache
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from shapely.geometry import box

from app.built import blank, read_block_arrays, read_level, storage_groups
from app.cache import SceneCache, SeasonCache
from app.context import wait_result
from app.errors import ServerBusyError
from app.layers import variable_bands
from app.projection import crs_key, project_squares
from app.registry import SeasonState
from compositor.bands import (BAND_NAMES, BANDS_BY_NAME, COUNT, MEDOID, MEDOID_DOY, QA, QA_VARIABLE, SEEN,
                              STATISTICS, Index)
from compositor.describe import is_index, storage
from compositor.blend import context_distance_m
from compositor.catalog import BBox, Scene
from compositor.composite import CompositeFn, CompositeOptions, composite_window, to_dn, to_index
from compositor.errors import InvalidInputError
from compositor.grid import Block, OutputGrid, project_bounds
from compositor.offsets import check_offsets
from compositor.plan import buffered_footprint_4326
from compositor.read import GDAL_ENV
from app.settings import ServerSettings

logger = logging.getLogger(__name__)

Variable = tuple[str, str]  # (band, statistic or count)
WAITERS_PER_WORKER = 4  # requests waiting for chunks, per worker
JOBS_PER_WORKER = 32  # chunks running or queued, per worker: a viewport of unbuilt tiles needs up to ~30
QUEUE_FULL_RETRY_AFTER_S = 2  # a place frees when a chunk ends or a waiting client leaves: soon
MAX_BLOCKS_PER_TILE = 64  # grid blocks one read may span (a tile never spans more)
CHUNK_MARGIN_PX = 2  # chunks a read needs: its bounds grown by this many level pixels (warp look-around)


def grid_bounds_4326(crs: CRS | str, transform: Affine, shape: tuple[int, int]) -> BBox:
    """Lon/lat box of a grid (densified edges); `InvalidInputError` when it has none."""
    bounds = project_bounds(crs, "EPSG:4326", array_bounds(shape[0], shape[1], transform))
    if bounds is None:
        raise InvalidInputError("this area cannot be expressed in longitude and latitude")
    return bounds


def least_cloudy(scenes: Sequence[Scene], limit: int) -> list[Scene]:
    """The ``limit`` least cloudy scenes (unknown cover last), in their original order."""
    ranked = sorted(scenes, key=lambda s: (s.cloud_cover if s.cloud_cover is not None else 101.0, s.datetime, s.id))
    kept = {s.id for s in ranked[:limit]}
    return [s for s in scenes if s.id in kept]


def grow_bbox_4326(bbox_4326: BBox, distance_m: float) -> BBox:
    """A lon/lat box grown by at least ``distance_m`` (ground metres) on every side (spherical Earth,
    longitudes at the box's most poleward latitude; latitudes capped at +-90)."""
    west, south, east, north = bbox_4326
    dlat = math.degrees(distance_m / 6_371_008.8)
    poleward = min(89.0, max(abs(south), abs(north)) + dlat)
    dlon = min(180.0, dlat / math.cos(math.radians(poleward)))
    return (max(-180.0, west - dlon), max(-90.0, south - dlat), min(180.0, east + dlon), min(90.0, north + dlat))


REMOTE_READ_THREADS = 16
LOCAL_READ_THREADS = 4


def read_threads(settings: ServerSettings, scenes: Sequence[Scene]) -> int:
    """How many scene files a chunk reads at once: the setting, else more over a network than from disk."""
    if settings.onthefly_read_threads is not None:
        return settings.onthefly_read_threads
    remote = any("://" in href or href.startswith("/vsi") for s in scenes for href in s.hrefs.values())
    return REMOTE_READ_THREADS if remote else LOCAL_READ_THREADS


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


def blocks_under(grid: OutputGrid, crs: CRS, transform: Affine,
                 shape: tuple[int, int]) -> tuple[list[Block], np.ndarray, BBox | None]:
    """The grid blocks under a target grid, its label raster (0 none, else 1 + index) and its bounds in
    the grid CRS. Labels are rasterized from the same densified outlines as the built blocks'
    (`app.projection`), so that the edge between a built and an unbuilt block falls on the same pixels
    either way."""
    bounds_grid = project_bounds(crs, grid.crs, array_bounds(shape[0], shape[1], transform))
    if bounds_grid is None:
        return [], np.zeros(shape, dtype=np.int32), None
    blocks = grid.blocks_in_bounds(bounds_grid, MAX_BLOCKS_PER_TILE)
    outlines = project_squares(blocks, crs_key(crs))
    shapes = [(o, n) for n, o in enumerate(outlines, start=1) if not o.is_empty]
    if not shapes:
        return [], np.zeros(shape, dtype=np.int32), bounds_grid
    labels = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32", all_touched=False)
    return blocks, labels, bounds_grid


@dataclass(frozen=True)
class BlockScenes:
    """What a block build of a season would read: ``scenes`` touch the block, ``nearby`` only shape
    the blend weights near its edges (`compositor.plan.plan_build` chooses them the same way)."""

    scenes: tuple[Scene, ...]
    nearby: tuple[Scene, ...]


@dataclass(frozen=True)
class Chunk:
    """One square window of a block's grid at an overview level: the unit composited and kept."""

    block: Block
    level: int
    col: int  # level pixels from the block's left edge
    row: int
    size: int

    @property
    def transform(self) -> Affine:
        return self.block.transform @ Affine.scale(2**self.level) @ Affine.translation(self.col, self.row)

    @property
    def bounds(self) -> BBox:
        return array_bounds(self.size, self.size, self.transform)


def chunks_for(block: Block, level: int, chunk_px: int, bounds_grid: BBox) -> list[Chunk]:
    """The chunks of ``block`` at ``level`` that a read of ``bounds_grid`` (grid CRS) needs."""
    size_level = block.size_px >> level
    chunk = max(1, min(chunk_px, size_level))
    pixel = block.resolution_m * 2**level
    west, south, east, north = block.bounds
    margin = CHUNK_MARGIN_PX * pixel
    x0 = max(0, math.floor((bounds_grid[0] - margin - west) / pixel) // chunk)
    x1 = min(math.ceil(size_level / chunk), math.ceil((bounds_grid[2] + margin - west) / pixel / chunk))
    y0 = max(0, math.floor((north - bounds_grid[3] - margin) / pixel) // chunk)
    y1 = min(math.ceil(size_level / chunk), math.ceil((north - bounds_grid[1] + margin) / pixel / chunk))
    return [Chunk(block, level, i * chunk, j * chunk, min(chunk, size_level - i * chunk))
            for j in range(y0, y1) for i in range(x0, x1)]


@dataclass
class ChunkResult:
    """A composited chunk: uint16 DN per (band, statistic) and counts, and what it read."""

    chunk: Chunk
    values: dict[Variable, np.ndarray]
    n_scenes: int
    n_acquisitions: int
    skipped: dict[str, str]
    scenes_read: frozenset[str] = frozenset()

    def nbytes(self) -> int:
        """Memory the chunk holds (its arrays, and a little for the rest)."""
        return sum(v.nbytes for v in self.values.values()) + 1024


@dataclass
class OnTheFlyRead:
    """What an on-the-fly read gives the reader: values per variable (0 where nothing), whether the
    pixels had scenes at all, and the scenes that could not be read."""

    values: dict[Variable, np.ndarray]
    covered: np.ndarray  # pixels of blocks with at least one scene
    skipped: dict[str, str]
    n_acquisitions: int
    scenes_read: frozenset[str] = frozenset()  # the scenes the chunks under the read used


@dataclass(frozen=True)
class _Job:
    """A chunk a read waits for: kept already (``key`` None), or composited by the pool under ``key``, which
    the read leaves when it stops waiting."""

    future: Future[ChunkResult]
    key: tuple | None = None


def _chunk_variables(bands: Sequence[str]) -> list[Variable]:
    """What a chunk of ``bands`` holds: each band's statistics and count, each index's statistics, and the QA
    layer for the pseudo-band "qa"."""
    def variables(band: str) -> list[Variable]:
        if band == MEDOID:
            return [(b, MEDOID) for b in BAND_NAMES] + [MEDOID_DOY]
        return [(band, kind) for kind in ((SEEN,) if band == QA else STATISTICS if is_index(band)
                                          else (*STATISTICS, COUNT))]

    return [v for band in bands for v in variables(band)]


def _done(result: ChunkResult) -> _Job:
    future: Future[ChunkResult] = Future()
    future.set_result(result)
    return _Job(future)


class OnTheFly:
    """The bounded pool, the in-flight table and the cache of composited chunks."""

    def __init__(self, settings: ServerSettings, scenes: SceneCache, composite: CompositeFn = composite_window,
                 cache_bytes: int | None = None) -> None:
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
        ttl = max(settings.catalog_cache_ttl_s, 1.0)
        if cache_bytes is None:
            cache_bytes = int(settings.onthefly_cache_mb * 2**20)
        # Kept by memory, not by count: a z9 viewport of the demo needs about 90 chunks, a count of 64
        # made every repeat composite them all again.
        self._results: SeasonCache[ChunkResult] = SeasonCache(
            TTLCache(maxsize=cache_bytes, ttl=ttl, getsizeof=ChunkResult.nbytes))
        self._block_scenes: SeasonCache[BlockScenes] = SeasonCache(TTLCache(maxsize=4096, ttl=ttl))
        self._levels: dict[tuple, int] = {}
        self.default_options = CompositeOptions.from_settings(settings)

    @property
    def retry_after_s(self) -> float:
        return max(1.0, math.ceil(self.settings.onthefly_budget_s / 2))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def invalidate(self, season: str) -> None:
        self._results.invalidate(season)
        self._block_scenes.invalidate(season)

    # --- what a block build would do ---------------------------------------------------------------

    def options_for(self, state: SeasonState) -> CompositeOptions:
        """The season's build options: its built blocks' (their manifests), else the last build's
        (``season.json``: a build with ``--no-blend`` composites without blending on the fly too), else the
        settings'."""
        for recorded in (state.built.options, state.record.get("options")):
            if not recorded:
                continue
            try:
                return CompositeOptions.from_fingerprint(recorded)
            except (TypeError, ValueError) as exc:
                logger.warning("season %s: build options %s not usable (%s); on the fly uses the settings'",
                               state.name, recorded, exc)
                break
        return self.default_options

    def indices_for(self, state: SeasonState, names: Sequence[str]) -> tuple[Index, ...]:
        """The definitions of the indices ``names``: the season's (``season.json``), else the settings'; an unknown
        name is an `InvalidInputError` that lists the known ones."""
        known = {i.name: i for i in self.settings.indices}
        for name, (a, b) in (state.record.get("indices") or {}).items():
            known[name] = Index(name, a, b, known[name].description if name in known else "")
        missing = [n for n in names if n not in known]
        if missing:
            raise InvalidInputError(f"unknown index {', '.join(map(repr, missing))}: use one of {', '.join(known)}")
        return tuple(known[n] for n in names)

    def block_scenes(self, state: SeasonState, block: Block, options: CompositeOptions) -> BlockScenes:
        """The scenes a build of ``block`` reads and those whose footprints it sees (cached)."""
        key = (state.name, block.id, block.size_px, block.resolution_m, block.crs,
               options.blend_edge_margin_m, options.blend_edge_ramp_m)
        hit = self._block_scenes.get(key)
        if hit is not None:
            return hit
        reach = context_distance_m(options.blend_edge_margin_m, options.blend_edge_ramp_m)
        outline = block.footprint_4326()
        around = buffered_footprint_4326(block.bounds, reach, block.crs)
        found = self.scenes.find(state.name, around.bounds)
        touching = shapely.intersects([s.footprint for s in found], outline) if found else []
        near = shapely.intersects([s.footprint for s in found], around) if found else []
        scenes = [s for s, t in zip(found, touching) if t]
        if self.settings.onthefly_max_scenes is not None:
            scenes = least_cloudy(scenes, self.settings.onthefly_max_scenes)
        result = BlockScenes(tuple(scenes), tuple(s for s, t, n in zip(found, touching, near) if n and not t))
        self._block_scenes.put(key, result)
        return result

    def level(self, block: Block, crs: CRS, transform: Affine, shape: tuple[int, int], bounds_grid: BBox,
              resampling: str, reproject: str) -> int:
        """`app.built.read_level`, kept per block geometry and target pixel size (a zoom's tiles share it);
        ``bounds_grid``: the target's bounds in the grid CRS."""
        pixel = min((bounds_grid[2] - bounds_grid[0]) / shape[1], (bounds_grid[3] - bounds_grid[1]) / shape[0])
        ratio = round(math.log2(pixel / block.resolution_m), 3) if pixel > 0 else None
        key = (block.size_px, block.resolution_m, block.crs, crs_key(crs), ratio, resampling, reproject)
        found = self._levels.get(key) if ratio is not None else None
        if found is None:
            found = read_level(block, crs, transform, shape, resampling=resampling, reproject=reproject)
            if ratio is not None and len(self._levels) < 4096:
                self._levels[key] = found
        return found

    # --- the read ----------------------------------------------------------------------------------

    def read(self, state: SeasonState, crs: CRS, transform: Affine, shape: tuple[int, int],
             variables: Sequence[Variable], where: np.ndarray, *, deadline: float, resampling: str = "nearest",
             reproject: str = "nearest") -> OnTheFlyRead:
        """``variables`` on the target grid where ``where``, cut from composited chunks of the season grid."""
        blocks, labels, bounds_grid = blocks_under(state.grid, crs, transform, shape)
        labels = np.where(where, labels, 0)
        wanted = [(i, b) for i, b in enumerate(blocks, start=1) if (labels == i).any()]
        bands = variable_bands(variables)  # what the chunks composite (unknown indices: refused by the reader)
        values = {v: blank(v, shape) for v in variables}
        covered = np.zeros(shape, dtype=bool)
        skipped: dict[str, str] = {}
        used: set[str] = set()
        n_acq = 0
        if not wanted:
            return OnTheFlyRead(values, covered, skipped, n_acq)
        options = self.options_for(state)
        level = self.level(wanted[0][1], crs, transform, shape, bounds_grid, resampling, reproject)
        plans = [(index, block, chunks_for(block, level, self.settings.onthefly_chunk_px, bounds_grid))
                 for index, block in wanted]
        futures: dict[Chunk, _Job] = {}
        waiting = False
        try:
            for _, _, chunks in plans:
                for chunk in chunks:
                    key = self._key(state, chunk, bands, options)
                    done = self._results.get(key)
                    if done is not None:
                        futures[chunk] = _done(done)
                        continue
                    if not waiting:
                        self._enter_waiting_room()
                        waiting = True
                    futures[chunk] = self._submit(key, state, chunk, bands, options)
            results = {chunk: wait_result(job.future, deadline) for chunk, job in futures.items()}
        except FutureTimeout:
            raise ServerBusyError(
                f"the on-the-fly composite took longer than the budget of {self.settings.onthefly_budget_s:g} s; "
                "it goes on in the background: retry shortly", self.retry_after_s) from None
        finally:
            self._release(futures, waiting)
        for index, block, chunks in plans:
            if not any(results[chunk].n_scenes for chunk in chunks):
                continue  # no scene touches the block: nothing to cut
            inside = labels == index
            covered |= inside
            for group in storage_groups(variables):
                pieces = [(chunk.row, chunk.col, np.stack([results[chunk].values[v] for v in group]))
                          for chunk in chunks]
                nodata = storage(*group[0])[1]
                data = read_block_arrays(block, level, pieces, nodata, crs, transform, shape, resampling=resampling,
                                         reproject=reproject)
                for variable, plane in zip(group, data):
                    values[variable][inside] = plane[inside]
            for chunk in chunks:
                skipped.update(results[chunk].skipped)
                n_acq = max(n_acq, results[chunk].n_acquisitions)
                used |= results[chunk].scenes_read
        return OnTheFlyRead(values, covered, skipped, n_acq, frozenset(used))

    # --- chunks: shared, bounded, kept ---------------------------------------------------------------

    def _key(self, state: SeasonState, chunk: Chunk, bands: tuple[str, ...], options: CompositeOptions) -> tuple:
        fingerprint = tuple(sorted((k, str(v)) for k, v in options.fingerprint().items()))
        return (state.name, chunk.block.id, chunk.block.size_px, chunk.block.resolution_m, chunk.block.crs,
                chunk.level, chunk.col, chunk.row, bands, fingerprint, self.settings.onthefly_max_scenes)

    def _enter_waiting_room(self) -> None:
        """Take one of the ``max_waiters`` places of requests waiting for chunks, or `ServerBusyError`."""
        with self._lock:
            if self._n_waiting >= self.max_waiters:
                raise ServerBusyError(
                    f"{self._n_waiting} requests wait for on-the-fly composites: retry in a moment, "
                    "or view the built areas meanwhile", QUEUE_FULL_RETRY_AFTER_S)
            self._n_waiting += 1

    def _submit(self, key: tuple, state: SeasonState, chunk: Chunk, bands: tuple[str, ...],
                options: CompositeOptions) -> _Job:
        """The chunk's job, shared with the requests already waiting for it, or a new one."""
        with self._lock:
            job = self._inflight.get(key)
            if job is None and len(self._inflight) >= self.max_jobs:
                raise ServerBusyError(
                    f"{len(self._inflight)} on-the-fly composites are running or queued: retry in a moment, "
                    "or view the built areas meanwhile", QUEUE_FULL_RETRY_AFTER_S)
            if job is None:
                job = self._pool.submit(self._run, key, state, chunk, bands, options)
                self._inflight[key] = job
            self._waiters[key] = self._waiters.get(key, 0) + 1
        return _Job(job, key)

    def _release(self, futures: dict[Chunk, _Job], waiting: bool) -> None:
        """Leave the waiting room; a chunk nobody waits for any more and that never started is dropped."""
        with self._lock:
            if waiting:
                self._n_waiting -= 1
            for job in futures.values():
                key = job.key
                if key is None or key not in self._waiters:
                    continue
                self._waiters[key] -= 1
                if not self._waiters[key]:
                    del self._waiters[key]
                    if job.future.cancel():  # nobody waits and it never started
                        self._inflight.pop(key, None)

    def _run(self, key: tuple, state: SeasonState, chunk: Chunk, bands: tuple[str, ...],
             options: CompositeOptions) -> ChunkResult:
        """Composite one chunk with what the block's build reads (its scenes touching the chunk, the
        footprints of all the block's scenes and of those nearby); kept unless a scene failed."""
        started = time.perf_counter()
        try:
            found = self.block_scenes(state, chunk.block, options)
            shape = (chunk.size, chunk.size)
            area = box(*grid_bounds_4326(chunk.block.crs, chunk.transform, shape))
            readable = [s for s in found.scenes if s.footprint.intersects(area)]
            if not readable:
                values = {v: blank(v, shape) for v in _chunk_variables(bands)}
                result = ChunkResult(chunk, values, 0, 0, {})
                self._results.put(key, result)
                return result
            with rasterio.Env(**GDAL_ENV):
                threads = read_threads(self.settings, readable)
                scenes, _ = check_offsets(readable, threads)
                read_ids = {s.id for s in readable}
                footprints = [*scenes, *(s for s in found.scenes if s.id not in read_ids), *found.nearby]
                chunk_options = dataclasses.replace(options, use_overviews=chunk.level > 0,
                                                    read_threads=threads)
                reflectance = tuple(b for b in bands if b in BANDS_BY_NAME)
                indices = self.indices_for(state, [b for b in bands if is_index(b)])
                composite = self._composite(scenes, reflectance, chunk.block.crs, chunk.transform, shape,
                                            chunk_options, footprints=footprints, indices=indices,
                                            medoid=MEDOID in bands)
            values: dict[Variable, np.ndarray] = {}
            for band in reflectance:
                for i, kind in enumerate(STATISTICS):
                    values[band, kind] = to_dn(composite.stats[band][i])
                values[band, COUNT] = composite.counts[band]
            for index in indices:
                for i, kind in enumerate(STATISTICS):
                    values[index.name, kind] = to_index(composite.stats[index.name][i])
            if MEDOID in bands:  # the medoid observation's bands and day of year, as a build with --products medoid
                for band in BAND_NAMES:
                    values[band, MEDOID] = composite.medoid.get(band, np.zeros(shape, dtype=np.uint16))
                doy = composite.medoid_doy
                values[MEDOID_DOY] = doy if doy is not None else np.zeros(shape, dtype=np.uint16)
            if QA in bands:  # the QA layer: observations seen, as a build with --products qa writes it
                seen = composite.seen
                values[QA_VARIABLE] = seen if seen is not None else np.zeros(shape, dtype=np.uint16)
            result = ChunkResult(chunk, values, len(scenes), composite.n_acquisitions, dict(composite.skipped),
                                 frozenset(composite.scenes_read))
            if not result.skipped:  # a scene that failed may read next time: do not keep a partial answer
                self._results.put(key, result)
            logger.info("on-the-fly %s %s level %d chunk %d,%d (%d px): %d scenes, %d acquisitions, %.2f s",
                        key[0], chunk.block.id, chunk.level, chunk.col, chunk.row, chunk.size, len(scenes),
                        composite.n_acquisitions, time.perf_counter() - started)
            return result
        finally:
            with self._lock:
                self._inflight.pop(key, None)
