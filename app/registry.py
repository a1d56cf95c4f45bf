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

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath

from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from app.projection import ProjectedBlocks, ProjectionCache
from compositor.build import SEASON_RECORD, season_grid
from compositor.errors import InvalidInputError
from compositor.grid import Block, OutputGrid
from compositor.layout import SeasonLayout
from compositor.seasons import Season, resolve_season
from compositor.settings import Settings
from compositor.storage import open_store, output_location

logger = logging.getLogger(__name__)

BUILT_STATUSES = ("built", "empty")
OVERVIEW_FACTOR = 16  # compositor.mosaic.DEFAULT_OVERVIEW_FACTOR: season overview at 16x the pixel size


@dataclass(frozen=True)
class BuiltBlock:
    """A block with a manifest: its grid cell, the bands it holds and its status (built or empty)."""

    block: Block
    bands: frozenset[str]
    status: str
    options: tuple = ()  # the build options (`CompositeOptions.fingerprint`) as sorted items


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

    @property
    def options(self) -> dict:
        """The build options of the season's most recently indexed built block ({} when none is built)."""
        for built in reversed(self.blocks):
            if built.options:
                return dict(built.options)
        return {}

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
    record: dict = field(default_factory=dict, compare=False)  # season.json

    @property
    def name(self) -> str:
        return self.season.name

    def overview_resolution_m(self) -> float:
        return self.grid.resolution_m * OVERVIEW_FACTOR


class ManifestCache:
    """Parsed block manifests by path, re-read only when the file changed (a build installs one block at
    a time: the season is re-indexed after each, so an unchanged manifest must cost a ``stat`` only)."""

    def __init__(self) -> None:
        self._parsed: dict[PurePath, tuple[str, dict | None]] = {}
        self._lock = threading.Lock()

    def manifests(self, layout: SeasonLayout) -> list[dict]:
        store = layout.store
        versions = sorted(store.manifest_versions(layout.blocks_dir).items())
        with self._lock:
            stale = [(path, key) for path, key in versions if self._parsed.get(path, ("",))[0] != key]
        parsed = store.read_jsons([path for path, _ in stale])
        with self._lock:
            self._parsed.update((path, (key, manifest)) for (path, key), manifest in zip(stale, parsed))
            return [entry[1] for path, _ in versions if (entry := self._parsed.get(path)) and entry[1]]


def load_built_index(layout: SeasonLayout, grid: OutputGrid, cache: ManifestCache | None = None) -> BuiltIndex:
    """Built blocks from the manifests; blocks of another grid or a failed status are left out."""
    blocks = []
    record = {"crs": grid.crs, "resolution_m": grid.resolution_m, "block_size_px": grid.block_size_px}
    for manifest in (cache or ManifestCache()).manifests(layout):
        if manifest.get("status") not in BUILT_STATUSES or manifest.get("grid") != record:
            logger.warning("season %s: block %s ignored (status %s, grid %s)", layout.season.name,
                           manifest.get("block"), manifest.get("status"), manifest.get("grid"))
            continue
        try:
            block = grid.block_by_id(str(manifest.get("block")))
        except InvalidInputError:
            continue
        options = manifest.get("options")
        options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())) \
            if isinstance(options, dict) else ()
        blocks.append(BuiltBlock(block, frozenset(manifest.get("bands", ())), str(manifest["status"]), options))
    return BuiltIndex.from_blocks(blocks)


def season_files(layout: SeasonLayout) -> list[str]:
    """The season's own files (VRTs, season.json), overview rasters and STAC root, relative to its folder."""
    store = layout.store
    files = [p.relative_to(layout.root).as_posix()
             for folder in (layout.root, layout.overview_dir) for p in store.folder_files(folder)]
    if store.is_file(layout.catalog_dir / "catalog.json"):
        files.append("catalog/catalog.json")
    return files


class _Signatures:
    """Change signatures of season folders; those of an object store are listed at most every ``refresh_s``."""

    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self._remote: dict[PurePath, tuple[float, tuple]] = {}

    def __call__(self, layout: SeasonLayout) -> tuple:
        store = layout.store
        if store.is_local:
            return store.change_signature(layout.root)
        now = time.monotonic()
        cached = self._remote.get(layout.root)
        if cached is None or now - cached[0] >= self.refresh_s:
            cached = (now, store.change_signature(layout.root))
            self._remote[layout.root] = cached
        return cached[1]


class SeasonRegistry:
    """Resolves season names (never paths) to `SeasonState` snapshots, refreshed when a build changes them."""

    def __init__(self, settings: Settings) -> None:
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
        """The season called ``name`` (`SeasonNotFoundError` otherwise)."""
        return resolve_season(name, self.settings.seasons)

    def get(self, name: str) -> SeasonState:
        """The current state of season ``name``; a new snapshot when its folders changed."""
        season = self.resolve(name)
        probe = SeasonLayout(self.data_dir, season, self.settings.crs, self.settings.resolution_m)
        signature = self._signature(probe)
        cached = self._states.get(season.name)
        if cached and cached[0] == signature:
            return cached[1]
        with self._lock:
            cached = self._states.get(season.name)
            if cached and cached[0] == signature:
                return cached[1]
            state = self._load(season, probe)
            self._states[season.name] = (signature, state)
        if cached is not None:
            logger.info("season %s changed: %d built blocks", season.name, len(state.built))
            state.layout.store.forget_cached_reads(state.layout.root)  # files replaced under the same names
            for listener in self._listeners:
                listener(season.name)
        return state

    def _load(self, season: Season, probe: SeasonLayout) -> SeasonState:
        grid = season_grid(probe)
        has_record = grid is not None
        if grid is None:
            grid = OutputGrid(self.settings.crs, self.settings.resolution_m, self.settings.block_size_px)
        layout = SeasonLayout(self.data_dir, season, grid.crs, grid.resolution_m)
        built = load_built_index(layout, grid, self._manifests) if has_record else BuiltIndex()
        files = frozenset(season_files(layout)) if has_record else frozenset()
        record = (layout.store.read_json(layout.root / SEASON_RECORD) or {}) if has_record else {}
        self._generation += 1
        return SeasonState(season, grid, layout, built, self._generation, has_record, files, record)

    def built_season_names(self) -> list[str]:
        """Seasons with a ``season.json`` under the data folder, by start date (an object store is listed
        at most every ``store_refresh_s``)."""
        if self.store.is_local:
            folders = self.store.season_names()
        else:
            listed_at, folders = self._season_folders
            if time.monotonic() - listed_at >= self.settings.store_refresh_s:
                folders = self.store.season_names()
                self._season_folders = (time.monotonic(), folders)
        names = []
        for folder in folders:
            try:
                names.append(self.resolve(folder))
            except InvalidInputError:
                logger.warning("folder %s has a %s but is not a known season name", folder, SEASON_RECORD)
        return [s.name for s in sorted(names)]
