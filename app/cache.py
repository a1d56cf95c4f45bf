"""The server's caches: rendered tiles (LRU), catalog searches and on-the-fly composites (TTL).

Every entry belongs to one season; `invalidate(season)` drops that season's entries. The registry
calls it when a block of the season gets built, so no tile drawn from the source scenes outlives
the block that replaces it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import LRUCache, TTLCache

from compositor.catalog import BBox, Scene
from compositor.errors import CatalogUnavailableError

V = TypeVar("V")
SEARCH_CELL_DEG = 1.0  # catalog searches are made and cached per 1-degree cell


class SeasonCache(Generic[V]):
    """A thread-safe cachetools cache whose keys start with a season name."""

    def __init__(self, cache: LRUCache | TTLCache) -> None:
        self._cache = cache
        self._lock = threading.Lock()

    def get(self, key: tuple) -> V | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: tuple, value: V) -> None:
        """Keep ``value`` (not when it alone is larger than the cache: cachetools refuses it)."""
        if self._cache.maxsize <= 0:
            return
        with self._lock:
            try:
                self._cache[key] = value
            except ValueError:  # larger than the whole cache
                pass

    def invalidate(self, season: str) -> int:
        """Drop every entry of ``season``; returns how many were dropped."""
        with self._lock:
            stale = [k for k in list(self._cache.keys()) if k and k[0] == season]
            for key in stale:
                self._cache.pop(key, None)
        return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


@dataclass(frozen=True)
class CachedTile:
    """A rendered response: body, media type, ETag and the headers that describe it."""

    body: bytes
    media_type: str
    etag: str
    headers: tuple[tuple[str, str], ...]


def tile_cache(size: int) -> SeasonCache[CachedTile]:
    """Rendered tiles, least recently used out first (``size`` 0 disables it)."""
    return SeasonCache(LRUCache(maxsize=max(size, 0)))


def search_cell(bbox_4326: BBox) -> BBox:
    """The bbox grown to whole 1-degree cells, so that neighbouring tiles share one search."""
    step = SEARCH_CELL_DEG
    west, south, east, north = bbox_4326
    return (max(-180.0, math.floor(west / step) * step), max(-90.0, math.floor(south / step) * step),
            min(180.0, math.ceil(east / step) * step), min(90.0, math.ceil(north / step) * step))


class SceneCache:
    """Catalog searches by season and 1-degree cell, kept ``ttl_s`` seconds; one search per key at a time.

    A search that failed because the catalog could not be reached (`CatalogUnavailableError`: down,
    slow past its timeout) is remembered ``failure_ttl_s`` seconds: meanwhile the same search fails
    at once with the same error, instead of tying up an on-the-fly worker per request.
    """

    def __init__(self, search: Callable[[str, BBox], list[Scene]], ttl_s: float, maxsize: int = 1024,
                 failure_ttl_s: float = 0.0) -> None:
        self._search = search
        self._cache: SeasonCache[tuple[Scene, ...]] = SeasonCache(TTLCache(maxsize=maxsize, ttl=max(ttl_s, 1e-3)))
        self._failures: SeasonCache[CatalogUnavailableError] = SeasonCache(
            TTLCache(maxsize=maxsize, ttl=max(failure_ttl_s, 1e-3)))
        self._enabled = ttl_s > 0
        self._remember_failures = failure_ttl_s > 0
        self._locks: dict[Hashable, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def find(self, season: str, bbox_4326: BBox) -> tuple[Scene, ...]:
        """Scenes of ``season`` whose cell search covers ``bbox_4326`` (not yet filtered to it)."""
        cell = search_cell(bbox_4326)
        key = (season, cell)
        hit = self._cache.get(key) if self._enabled else None
        if hit is not None:
            return hit
        self._raise_recent_failure(key)
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._cache.get(key) if self._enabled else None
            if hit is None:
                self._raise_recent_failure(key)
                try:
                    hit = tuple(self._search(season, cell))
                except CatalogUnavailableError as exc:
                    if self._remember_failures:
                        self._failures.put(key, exc)
                    raise
                if self._enabled:
                    self._cache.put(key, hit)
        return hit

    def _raise_recent_failure(self, key: tuple) -> None:
        failure = self._failures.get(key) if self._remember_failures else None
        if failure is not None:
            raise CatalogUnavailableError(str(failure))

    def invalidate(self, season: str) -> int:
        self._failures.invalidate(season)
        return self._cache.invalidate(season)

    def __len__(self) -> int:
        return len(self._cache)
