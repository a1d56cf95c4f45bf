"""The long-lived parts of a running server, made once by `create_app` from the settings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import morecantile
from rasterio.crs import CRS

from app.cache import CachedTile, SceneCache, SeasonCache, tile_cache
from app.onthefly import CompositeFn, OnTheFly
from app.queue import BuildQueue
from app.region import SeasonRegions
from app.registry import SeasonRegistry
from compositor.catalog import BBox, Scene, SceneQuery, is_remote, load_scenes
from compositor.kernels import load_kernels
from compositor.read import search_free_crs_pair
from compositor.seasons import resolve_season
from compositor.composite import composite_window
from app.settings import ServerSettings

logger = logging.getLogger(__name__)

SearchFn = Callable[[str, BBox], list[Scene]]
SERIES_THREADS = 4  # seasons of season series read at once, over all requests (each may wait on the on-the-fly pool)


@dataclass
class Services:
    """Settings, the season registry, the caches, the on-the-fly pool, the build queue, the seasons'
    source regions (where on-the-fly tiles can come from: `app.region`) and the season series' pool."""

    settings: ServerSettings
    registry: SeasonRegistry
    tiles: SeasonCache[CachedTile]
    scenes: SceneCache
    onthefly: OnTheFly
    queue: BuildQueue
    regions: SeasonRegions
    series: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(SERIES_THREADS,
                                                                                  thread_name_prefix="series"))

    def invalidate(self, season: str) -> None:
        """A block of ``season`` was built (or season files replaced): forget what it invalidates."""
        tiles = self.tiles.invalidate(season)
        searches = self.scenes.invalidate(season)
        self.onthefly.invalidate(season)
        logger.info("season %s changed: dropped %d cached tiles and %d catalog searches", season, tiles, searches)

    def warm_up(self) -> None:
        """Load what the first tiles would otherwise all wait on at once, before the server takes requests:
        the compiled kernels (`compositor.kernels`), the coordinate checks between the season grids' CRSs
        and the map CRSs (`compositor.read.search_free_crs_pair`, about 0.2 s a pair, computed by every
        request that arrives before the first finishes), and a local catalog's scenes. Nothing here is
        needed for correctness: a failure is logged and the server starts."""
        started = time.perf_counter()
        try:
            load_kernels()
            grids = {self.settings.crs} | {self.registry.get(name).grid.crs for name in self.registry.built_season_names()}
            maps = [morecantile.tms.get("WebMercatorQuad").rasterio_crs, CRS.from_epsg(4326), CRS.from_epsg(3857)]
            for grid in grids:
                grid_wkt = CRS.from_user_input(grid).to_wkt()
                for target in maps:
                    search_free_crs_pair(grid_wkt, target.to_wkt())
            if self.settings.catalog and not is_remote(self.settings.catalog):
                load_scenes(self.settings.catalog)  # parsed once per file version (`compositor.catalog`)
        except Exception as exc:  # noqa: BLE001 - a slower first tile, not a server that does not start
            logger.warning("warm-up incomplete (%s): the first tiles load the rest", exc)
        logger.info("warmed up in %.1f s", time.perf_counter() - started)

    def close(self) -> None:
        self.onthefly.shutdown()
        self.series.shutdown(wait=False, cancel_futures=True)


def catalog_search(settings: ServerSettings) -> SearchFn:
    """Scenes of a season in a lon/lat box from the configured catalog (STAC API or local file)."""

    query = SceneQuery.from_settings(settings)

    def search(season_name: str, bbox_4326: BBox) -> list[Scene]:
        return query.search(bbox_4326, resolve_season(season_name, settings.seasons)).scenes

    return search


def make_services(settings: ServerSettings, *, search: SearchFn | None = None, composite: CompositeFn = composite_window,
                  chunk_cache_bytes: int | None = None) -> Services:
    """Everything `create_app` wires; ``search`` and ``composite`` can be replaced (tests, benchmarks), and
    ``chunk_cache_bytes`` (memory for on-the-fly chunks kept for other tiles and renderings; default
    ``settings.onthefly_cache_mb``) set to 0."""
    registry = SeasonRegistry(settings)
    scenes = SceneCache(search or catalog_search(settings), settings.catalog_cache_ttl_s,
                        failure_ttl_s=settings.catalog_failure_ttl_s)
    services = Services(settings, registry, tile_cache(settings.tile_cache_size), scenes,
                        OnTheFly(settings, scenes, composite, chunk_cache_bytes), BuildQueue(),
                        SeasonRegions(settings))
    registry.add_listener(services.invalidate)
    return services
