"""Where a season's map tiles can come from: its built blocks and the region on-the-fly compositing serves.

TileJSON ``bounds`` and the WMTS layers' bounding boxes are the season reader's bounds
(`app.reader.SeasonReader`), which are `map_bounds`: the union of the built blocks' bounds and the
season's source region, the region on-the-fly tiles can be composited in:

* a local catalog (ItemCollection file or folder): the bounds of the footprints of the season's
  scenes, the scenes an on-the-fly search finds (cloud filter included); read once per season and
  kept ``catalog_cache_ttl_s`` (at least `MIN_TTL_S`), so that a request costs a dictionary look-up;
* a STAC API: the area of use of the season grid's CRS (Europe for EPSG:3035). The catalog is not
  asked: Sentinel-2 collections state a world-wide spatial extent (Earth Search's ``sentinel-2-l2a``:
  -180,-90,180,90), which would cost a request and say less than the grid.

When a local catalog cannot be read (missing, malformed) the region is the grid's area of use too:
a map's bounds never wait on, nor fail with, the catalog. A local catalog with no scene of the
season has no source region: the bounds are the built blocks' (the grid's area of use when nothing
is built either).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from morecantile import TileMatrixSet
from rasterio.crs import CRS
from rasterio.warp import transform as transform_points

from app.registry import SeasonState
from compositor.catalog import BBox, SceneQuery, is_remote
from compositor.grid import project_bounds
from app.settings import ServerSettings

logger = logging.getLogger(__name__)

MIN_TTL_S = 60.0
WORLD_4326 = (-180.0, -90.0, 180.0, 90.0)
WORLD_4326 = (-180.0, -85.0511, 180.0, 85.0511)  # app.reader's: WebMercator's latitudes


def grid_area_4326(state: SeasonState) -> BBox:
    """The area of use of the season grid's CRS (the world for a CRS that states none)."""
    return state.grid.area_of_use_4326 or WORLD_4326


@dataclass(frozen=True)
class SourceRegion:
    """A season's on-the-fly region: ``bbox_4326`` (None: the catalog has no scene of the season) and
    where it came from: ``"catalog"`` (a local catalog's scenes) or ``"grid"`` (the grid's area of use)."""

    bbox_4326: BBox | None
    origin: str


class SeasonRegions:
    """The source region of each season, by season name (thread-safe, kept ``ttl_s``).

    Only the first request of a season waits for a local catalog to be read; when the region is
    older than ``ttl_s``, one request reads the catalog again while the others keep the old region.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.ttl_s = max(settings.catalog_cache_ttl_s, MIN_TTL_S)
        self._kept: dict[tuple[str, str], tuple[float, SourceRegion]] = {}
        self._reading: set[tuple[str, str]] = set()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, state: SeasonState) -> SourceRegion:
        catalog = str(self.settings.catalog)
        if is_remote(catalog):
            return SourceRegion(grid_area_4326(state), "grid")
        key = (state.name, catalog)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and (time.monotonic() < kept[0] or key in self._reading):
                return kept[1]
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:  # one reading of the catalog per season at a time
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() < kept[0]:
                return kept[1]
            with self._lock:
                self._reading.add(key)
            try:
                region = self._read(state, catalog)
            finally:
                with self._lock:
                    self._reading.discard(key)
            with self._lock:
                self._kept[key] = (time.monotonic() + self.ttl_s, region)
            return region

    def _read(self, state: SeasonState, catalog: str) -> SourceRegion:
        try:
            scenes = SceneQuery.from_settings(self.settings, catalog=catalog).search(WORLD_4326, state.season).scenes
            boxes = [s.footprint.bounds for s in scenes if not s.footprint.is_empty]
        except Exception as exc:  # noqa: BLE001 - unreadable or malformed: the bounds must still answer
            logger.warning("season %s: the extent of catalog %s is unknown (%s); map bounds use the area of %s",
                           state.name, catalog, exc, state.grid.crs)
            return SourceRegion(grid_area_4326(state), "grid")
        boxes = [b for b in boxes if all(math.isfinite(v) for v in b)]
        if not boxes:
            return SourceRegion(None, "catalog")
        return SourceRegion((min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                             max(b[3] for b in boxes)), "catalog")


def union(a: BBox | None, b: BBox | None) -> BBox | None:
    if a is None or b is None:
        return a or b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def map_bounds(state: SeasonState, regions: SeasonRegions) -> BBox | None:
    """Where tiles of the season can come from, in the grid's CRS: the built blocks' bounds and the
    season's source region (a variant's: its built blocks alone, nothing is composited on the fly for it); None
    when neither projects to the grid (use the whole world)."""
    built = state.built.bounds_grid
    if state.variant:
        return built
    region = regions.get(state)
    bbox_4326 = region.bbox_4326
    if bbox_4326 is None and built is None:  # nothing anywhere: the grid's whole area, as for any season
        bbox_4326 = grid_area_4326(state)
    projected = project_bounds("EPSG:4326", state.grid.crs, bbox_4326) if bbox_4326 is not None else None
    return union(built, projected)


def zoom_for_pixel(tms: TileMatrixSet, crs: CRS, bounds: BBox, size: float, size_crs: CRS | None = None,
                   strategy: str = "upper") -> int:
    """The zoom of ``tms`` whose pixels are about ``size`` units of ``size_crs`` (default ``crs``) at the
    centre of ``bounds`` (in ``crs``); ``upper``: the first zoom at least that fine. The TMS's last zoom
    when that cannot be measured."""
    try:
        west, south, east, north = bounds
        cx, cy = (west + east) / 2, (south + north) / 2
        size_crs = size_crs or crs
        xs, ys = transform_points(crs, size_crs, [cx], [cy])
        xs, ys = transform_points(size_crs, tms.rasterio_crs, [xs[0], xs[0] + size], [ys[0], ys[0]])
        resolution = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
        if not math.isfinite(resolution) or resolution <= 0:
            raise ValueError(resolution)
        return int(tms.zoom_for_res(resolution, zoom_level_strategy=strategy))
    except Exception:  # noqa: BLE001
        return tms.maxzoom
