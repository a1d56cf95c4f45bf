"""The long-lived parts of a running server, made once by `create_app` from the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from app.cache import CachedTile, SceneCache, SeasonCache, tile_cache
from app.onthefly import CompositeFn, OnTheFly
from app.queue import BuildQueue
from app.region import SeasonRegions
from app.registry import SeasonRegistry
from compositor.catalog import BBox, Scene, SceneQuery
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
