"""The seasons the server knows: built ones (folders with ``season.json``) and any calendar season.

A `SeasonState` is an immutable snapshot of one season: its grid, its layout and an index of its
built blocks. The registry notices a build by the store's change signature (`OutputStore
.change_signature`), takes a new snapshot and tells its listeners (the caches) that the season
changed. In a folder that is the modification times of the season folder, its ``blocks/`` and
``overview/`` folders (a few ``stat`` calls per request; a block appears by a rename into
``blocks/``). In an object store it is the ETags of the season's own files, listed at most every
``store_refresh_s``: new blocks show when their build rewrites the season files at its end.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath

from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from app.projection import ProjectedBlocks, ProjectionCache
from app.errors import NotFoundError
from compositor.bands import DEFAULT_PRODUCTS, FILL
from compositor.errors import InvalidInputError
from compositor.grid import OutputGrid
from compositor.index import (SEASON_RECORD, BuiltBlock, ManifestCache, built_blocks, season_files, season_grid,
                              season_record)
from compositor.layout import SeasonLayout
from compositor.overview import DEFAULT_OVERVIEW_FACTOR
from compositor.seasons import Season, resolve_season, season_of
from app.settings import ServerSettings
from compositor.storage import open_store, output_location

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltIndex:
    """The built blocks of a season on its grid, with their outlines indexed in any CRS on demand."""

    blocks: tuple[BuiltBlock, ...] = ()
    _projections: ProjectionCache | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_blocks(cls, blocks: list[BuiltBlock]) -> BuiltIndex:
        return cls(tuple(blocks), ProjectionCache([b.block for b in blocks]))

    def projected(self, crs) -> ProjectedBlocks | None:
        """The blocks' outlines in ``crs`` (None when nothing is built)."""
        return self._projections.get(crs) if self._projections is not None and self.blocks else None

    def __len__(self) -> int:
        return len(self.blocks)

    def by_id(self, block_id: str) -> BuiltBlock | None:
        return self._by_id.get(block_id)

    @cached_property
    def _by_id(self) -> dict[str, BuiltBlock]:
        return {b.block.id: b for b in self.blocks}

    @property
    def options(self) -> dict:
        """The build options of the season's most recently built block ({} when none is built)."""
        recorded = [b for b in self.blocks if b.options]
        return dict(max(recorded, key=lambda b: b.built_at).options) if recorded else {}

    @property
    def bounds_grid(self) -> tuple[float, float, float, float] | None:
        if not self.blocks:
            return None
        bounds = [b.block.bounds for b in self.blocks]
        return (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds))

    @cached_property
    def footprint_4326(self) -> BaseGeometry | None:
        """The union of the built blocks' outlines in EPSG:4326 (None when nothing is built)."""
        if not self.blocks:
            return None
        return unary_union([b.block.footprint_4326(densify=4) for b in self.blocks])


@dataclass(frozen=True)
class SeasonState:
    """A season as the server sees it at one moment: grid, layout, built blocks and a generation."""

    season: Season
    grid: OutputGrid
    layout: SeasonLayout
    built: BuiltIndex
    generation: int
    has_record: bool  # season.json exists: the season was (at least partly) built
    files: frozenset[str] = frozenset()  # season files at the snapshot: "<name>.vrt", "overview/<name>.tif"
    record: dict = field(default_factory=dict, compare=False)  # season.json (a variant's: its entry there)
    variant: str = ""  # "filled": the season's gap-filled variant (`compositor.fill`), served from its blocks only

    @property
    def name(self) -> str:
        return self.season.name

    @property
    def indices(self) -> dict[str, list[str]]:
        """The season's indices, name -> [a, b] of (a - b) / (a + b) (``season.json``; none before products)."""
        return self.record.get("indices") or {}

    @property
    def products(self) -> tuple[str, ...]:
        """What the season's builds made (``season.json``; the bands alone for seasons built before products); a
        variant's: the bands and its fill flag."""
        if self.variant:
            return (*DEFAULT_PRODUCTS, FILL)
        return tuple(self.record.get("products", DEFAULT_PRODUCTS))

    def overview_resolution_m(self) -> float:
        return self.grid.resolution_m * DEFAULT_OVERVIEW_FACTOR


class _Signatures:
    """Change signatures of season folders, each kept as long as its store says (`OutputStore.signature_ttl_s`)."""

    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self._listed: dict[PurePath, tuple[float, tuple]] = {}

    def __call__(self, layout: SeasonLayout) -> tuple:
        store = layout.store
        now = time.monotonic()
        cached = self._listed.get(layout.root)
        if cached is None or now - cached[0] >= store.signature_ttl_s(self.refresh_s):
            cached = (now, store.change_signature(layout.root))
            self._listed[layout.root] = cached
        return cached[1]


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(text: str) -> dt.date | None:
    if not isinstance(text, str) or not _ISO_DAY.match(text):
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if 1984 <= day.year <= 2100 else None


class SeasonRegistry:
    """Resolves season names (never paths) to `SeasonState` snapshots, refreshed when a build changes them."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.data_dir = output_location(settings.data_dir)
        self.store = open_store(self.data_dir)
        self._signature = _Signatures(settings.store_refresh_s)
        self._season_folders: tuple[float, list[str]] = (-float("inf"), [])
        self._states: dict[str, tuple[tuple[int, ...], SeasonState]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._manifests = ManifestCache()
        self._generation = 0

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(season_name)`` is called whenever a season's built blocks or files change."""
        self._listeners.append(listener)

    def resolve(self, name: str) -> Season:
        """The season called ``name``, or the season of a day ``YYYY-MM-DD`` (the custom season starting that day,
        else the calendar season containing it: WMTS' ``{Time}`` values, `app.wmts`); `SeasonNotFoundError`
        otherwise."""
        day = _iso_day(name)
        if day is not None:
            starting = [s for s in self.settings.seasons.values() if s.start == day]
            return starting[0] if len(starting) == 1 else season_of(day)
        return resolve_season(name, self.settings.seasons)

    def get(self, name: str, variant: str = "") -> SeasonState:
        """The current state of season ``name`` (of its ``variant``, "filled", when one is named); a new snapshot
        when its folders changed. A variant that was never made is a `NotFoundError` naming the command that
        makes it."""
        season = self.resolve(name)
        if variant:
            own = self.get(name)
            if variant not in own.products or not isinstance(own.record.get(variant), dict):
                raise NotFoundError(
                    f"season {season.name} has no {variant} variant: make it with s2seasons fill --season "
                    f"{season.name} --bbox W,S,E,N (where the season and a neighbouring season are built), or leave "
                    f"out variant={variant}")
            probe = own.layout.with_variant(variant)
        else:
            probe = SeasonLayout(self.data_dir, season, self.settings.crs, self.settings.resolution_m)
        signature = self._signature(probe)
        key = (season.name, variant)
        cached = self._states.get(key)
        if cached and cached[0] == signature:
            return cached[1]
        with self._lock:
            cached = self._states.get(key)
            if cached and cached[0] == signature:
                return cached[1]
            state = self._load(season, probe) if not variant else self._load_variant(own, probe)
            self._states[key] = (signature, state)
        if cached is not None:
            logger.info("season %s%s changed: %d built blocks", season.name, f" ({variant})" if variant else "",
                        len(state.built))
            state.layout.store.forget_cached_reads(state.layout.root)  # files replaced under the same names
            for listener in self._listeners:
                listener(season.name)
        return state

    def _load_variant(self, own: SeasonState, layout: SeasonLayout) -> SeasonState:
        """A variant on the season's grid: its blocks and files under its own folder, its entry of ``season.json``."""
        built = BuiltIndex.from_blocks(built_blocks(layout, own.grid, self._manifests))
        self._generation += 1
        return SeasonState(own.season, own.grid, layout, built, self._generation, True,
                           frozenset(season_files(layout)), dict(own.record.get(layout.variant) or {}),
                           layout.variant)

    def _load(self, season: Season, probe: SeasonLayout) -> SeasonState:
        grid = season_grid(probe)
        has_record = grid is not None
        if grid is None:
            grid = OutputGrid(self.settings.crs, self.settings.resolution_m, self.settings.block_size_px)
        layout = SeasonLayout(self.data_dir, season, grid.crs, grid.resolution_m)
        built = BuiltIndex.from_blocks(built_blocks(layout, grid, self._manifests)) if has_record else BuiltIndex()
        files = frozenset(season_files(layout)) if has_record else frozenset()
        record = (season_record(layout) or {}) if has_record else {}
        self._generation += 1
        return SeasonState(season, grid, layout, built, self._generation, has_record, files, record)

    def built_season_names(self) -> list[str]:
        """Seasons with a ``season.json`` under the data folder, by start date (an object store is listed
        at most every ``store_refresh_s``)."""
        listed_at, folders = self._season_folders
        if time.monotonic() - listed_at >= self.store.signature_ttl_s(self.settings.store_refresh_s):
            folders = self.store.season_names()
            self._season_folders = (time.monotonic(), folders)
        names = []
        for folder in folders:
            try:
                names.append(self.resolve(folder))
            except InvalidInputError:
                logger.warning("folder %s has a %s but is not a known season name", folder, SEASON_RECORD)
        return [s.name for s in sorted(names)]
