"""What a season folder says about itself: ``season.json``, the block manifests, the index of built blocks.

The build writes these and every reader (season outputs, exports, the tile server) reads them here,
so there is one answer to "which blocks are built, on which grid, with which files":

    DATA/<season>/season.json                   # the grid, the regions asked for, when outputs were updated
    DATA/<season>/blocks/<id>/manifest.json     # written last: the block is built (or empty)
    DATA/<season>/blocks/<id>/[<build>/]*.tif   # its files; in an object store under the build's own prefix

A block is built when its manifest exists with status ``built`` (at least one observation) or
``empty`` (every scene read, none valid). The manifest names the folder of its files: the block
folder itself (a folder store replaces a block by one rename), or a prefix of its own build below it
(``"prefix"``: an object store replaces a block by writing the new build's files under a new prefix
and then the manifest, so a reader that follows one manifest never mixes two builds).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from affine import Affine
from pyproj import CRS

from compositor.bands import (BAND_NAMES, DEFAULT_PRODUCTS, FILL, FILL_FLAG, FILLED, MEDOID, MEDOID_DOY, PRODUCTS,
                              QA, QA_VARIABLE, STATISTICS, Index, index_order, resolve_bands)
from compositor.describe import is_index
from compositor.errors import InvalidInputError
from compositor.grid import Block, OutputGrid
from compositor.layout import OUTPUT_KINDS, SeasonLayout
from compositor.storage.base import MANIFEST, SEASON_RECORD

logger = logging.getLogger(__name__)

BUILT_STATUSES = ("built", "empty")
REPLACED_GRACE_S = 3600.0  # files of a replaced block build stay this long after the swap (object stores)
__all__ = ["BUILT_STATUSES", "MANIFEST", "SEASON_RECORD", "BuiltBlock", "ManifestCache", "MosaicExtent",
           "block_sources", "built_blocks", "claim_season", "grid_record", "mosaic_extent", "read_manifest",
           "note_variant", "read_manifests", "remove_replaced_builds", "season_files", "season_rasters", "season_variables", "season_grid", "season_record", "select_bands"]


# --- season.json --------------------------------------------------------------------------------


def season_record(layout: SeasonLayout) -> dict | None:
    """The season's ``season.json``, or None when the season was never built here."""
    return layout.store.read_json(layout.root / SEASON_RECORD)


def _write_season_record(layout: SeasonLayout, record: dict) -> None:
    layout.store.write_text(layout.root / SEASON_RECORD, json.dumps(record, indent=1, sort_keys=True))


def season_grid(layout: SeasonLayout) -> OutputGrid | None:
    """The grid a season folder was built on (from ``season.json``), or None if never built."""
    record = season_record(layout)
    if record is None:
        return None
    return OutputGrid(record["crs"], record["resolution_m"], record["block_size_px"])


def claim_season(layout: SeasonLayout, grid: OutputGrid, bbox_4326: Sequence[float] | None = None,
                 options: dict | None = None, products: Sequence[str] = (), indices: Sequence[Index] = ()) -> None:
    """Record the season's grid, the regions asked for and the build options (``season.json``), or refuse a
    build on another grid into the same folder. The server uses the regions for its built-coverage figures
    and the options (`CompositeOptions.fingerprint`) to composite on the fly as the build does."""
    existing = season_grid(layout)
    if existing is not None and existing != grid:
        raise InvalidInputError(
            f"{layout.root} was built on {existing.crs} at {existing.resolution_m:g} m with "
            f"{existing.block_size_px} px blocks; build with the same --crs/--resolution/--block-size "
            "or into another --out folder"
        )
    record = season_record(layout)
    if record is None:
        record = {"season": layout.season.name, "start_date": layout.season.start.isoformat(),
                  "end_date": layout.season.end.isoformat(), "crs": grid.crs,
                  "resolution_m": grid.resolution_m, "block_size_px": grid.block_size_px, "bboxes_4326": []}
    bboxes = record.setdefault("bboxes_4326", [])
    if bbox_4326 is not None and list(bbox_4326) not in bboxes:
        bboxes.append(list(bbox_4326))
    if options is not None:
        record["options"] = options
    if products:  # every product some build of the season made (servers list them at /seasons), and its fill
        made = set(record.get("products", DEFAULT_PRODUCTS)) | set(products)
        record["products"] = [p for p in (*PRODUCTS, FILLED) if p in made]
    if indices:  # name -> [a, b] of (a - b) / (a + b): what on-the-fly composites and servers describe
        record["indices"] = {**record.get("indices", {}), **{i.name: [i.a, i.b] for i in indices}}
    _write_season_record(layout, record)


def note_variant(layout: SeasonLayout, variant: str, details: dict) -> None:
    """Record in ``season.json`` that the season has a ``variant`` (``filled``): its name joins ``products`` and
    ``details`` (how it was made) go under its name. Servers list it and serve it (``variant=filled``)."""
    record = season_record(layout) or {}
    made = set(record.get("products", DEFAULT_PRODUCTS)) | {variant}
    record["products"] = [p for p in (*PRODUCTS, variant) if p in made]
    record[variant] = details
    _write_season_record(layout, record)


def note_outputs_updated(layout: SeasonLayout) -> None:
    """Record in ``season.json`` when the season outputs were rewritten: servers watching an object store
    notice it (the file's ETag changes) and re-read the manifests."""
    record = season_record(layout) or {}
    record["outputs_updated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    _write_season_record(layout, record)


def season_files(layout: SeasonLayout) -> list[str]:
    """The season's own files (VRTs, season.json), overview rasters and STAC root, relative to its folder."""
    store = layout.store
    files = [p.relative_to(layout.root).as_posix()
             for folder in (layout.root, layout.overview_dir) for p in store.folder_files(folder)]
    if store.is_file(layout.catalog_dir / "catalog.json"):
        files.append("catalog/catalog.json")
    return files


# --- manifests ----------------------------------------------------------------------------------


def grid_record(grid: OutputGrid | Block) -> dict[str, object]:
    """The grid as a manifest records it (a block's manifest and ``season.json`` must agree on it)."""
    size = grid.size_px if isinstance(grid, Block) else grid.block_size_px
    return {"crs": grid.crs, "resolution_m": grid.resolution_m, "block_size_px": size}


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write a block's manifest into the local ``folder`` of its new files, atomically (written last, it says the
    block is complete: a build's and a fill's blocks alike)."""
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)


def read_manifest(layout: SeasonLayout, block_id: str) -> dict | None:
    """The block's manifest, or None when absent or unreadable (the block is then not built)."""
    return layout.store.read_json(layout.manifest_path(block_id))


def read_manifests(layout: SeasonLayout, block_ids: Sequence[str] | None = None) -> dict[str, dict]:
    """The manifests of the season's blocks (of ``block_ids`` only, when given), by block id.

    One listing finds them; an object store reads them side by side (`OutputStore.read_jsons`)."""
    store = layout.store
    wanted = None if block_ids is None else set(block_ids)
    paths = [p for p in store.manifests(layout.blocks_dir) if wanted is None or p.parent.name in wanted]
    return {p.parent.name: m for p, m in zip(paths, store.read_jsons(paths)) if m}


class ManifestCache:
    """Parsed block manifests by path, re-read only when the file changed (a build installs one block at
    a time: a server re-indexes the season after each, so an unchanged manifest must cost a ``stat`` only)."""

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


def remove_replaced_builds(layout: SeasonLayout, grace_s: float = REPLACED_GRACE_S) -> int:
    """Remove the files of blocks' replaced builds in an object store; returns how many were removed.

    A file goes when all of these hold: its block's manifest names another build's folder; the file itself
    is older than ``grace_s`` (so a build uploading meanwhile, whose manifest is not there yet, keeps its
    files); and the season outputs (VRTs, STAC, ``season.json``, which servers watch) were rewritten after
    that manifest and at least ``grace_s`` ago (so every reader had time to move on from the old build).
    Run when a build starts. A store that replaces whole block folders (a folder) has no replaced builds."""
    store = layout.store
    if not store.new_build_prefix():
        return 0
    updated = (season_record(layout) or {}).get("outputs_updated_at")
    if not updated:
        return 0
    now = dt.datetime.now(dt.UTC)
    outputs_at = dt.datetime.fromisoformat(str(updated))
    if (now - outputs_at).total_seconds() < grace_s:
        return 0
    manifests = read_manifests(layout)
    removed = 0
    for path, modified in store.file_times(layout.blocks_dir).items():
        block_id = path.relative_to(layout.blocks_dir).parts[0]
        manifest = manifests.get(block_id)
        if manifest is None or path.name == MANIFEST:
            continue  # not built (a killed build's upload: rebuilt and replaced the same way) or the manifest
        if path.parent == layout.block_dir(block_id) / str(manifest.get("prefix") or ""):
            continue
        try:
            swapped_at = dt.datetime.fromisoformat(str(manifest.get("built_at")))
        except ValueError:
            continue
        if swapped_at < outputs_at and (now - modified).total_seconds() >= grace_s:
            store.delete(path)
            removed += 1
    if removed:
        logger.info("season %s: removed %d files of replaced block builds", layout.season.name, removed)
    return removed


# --- the index of built blocks ------------------------------------------------------------------


def _options_items(options: object) -> tuple:
    if not isinstance(options, dict):
        return ()
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


@dataclass(frozen=True)
class BuiltBlock:
    """A block of the season whose manifest exists (status built, or empty: no observation)."""

    block: Block
    status: str
    bands: frozenset[str]  # its bands, its indices' names, "medoid", "qa" and "fill" (a filled block) when it has them
    folder: PurePath  # where its files are: the block folder, or its build's prefix below it
    files: frozenset[str] = frozenset()  # names of its files (that exist, when the index checked)
    n_scenes: int = 0
    n_acquisitions: int = 0
    options: tuple = ()  # the build options (`CompositeOptions.fingerprint`) as sorted items
    built_at: str = ""

    def path(self, layout: SeasonLayout, band: str, kind: str) -> PurePath:
        """The block's raster of one band and kind (p25, p50, p75, count)."""
        return self.folder / layout.block_name(band, kind)


def built_blocks(layout: SeasonLayout, grid: OutputGrid, cache: ManifestCache | None = None, *,
                 check_files: bool = False) -> list[BuiltBlock]:
    """Blocks with a manifest on this grid, north-west first; others are skipped with a warning.

    ``check_files`` lists the season's block files once (one request per thousand files in an
    object store) and keeps in `BuiltBlock.files` only those that exist; otherwise the manifest's
    list is trusted. ``cache`` keeps parsed manifests between calls (a server re-indexes often)."""
    if CRS.from_user_input(layout.crs) != CRS.from_user_input(grid.crs) or layout.resolution_m != grid.resolution_m:
        raise InvalidInputError(
            f"season layout ({layout.crs}, {layout.resolution_m:g} m) and grid ({grid.crs}, "
            f"{grid.resolution_m:g} m) differ: use the grid the season was built on"
        )
    manifests = (cache or ManifestCache()).manifests(layout)
    present: dict[PurePath, set[str]] | None = None
    if check_files and manifests:
        present = {}
        for path in layout.store.list_files(layout.blocks_dir):
            present.setdefault(path.parent, set()).add(path.name)
    record = grid_record(grid)
    blocks = []
    for manifest in manifests:
        block_id = str(manifest.get("block", "?"))
        if manifest.get("status") not in BUILT_STATUSES:
            logger.warning("season %s: block %s skipped: status %r", layout.season.name, block_id,
                           manifest.get("status"))
            continue
        if manifest.get("grid") != record:
            logger.warning("season %s: block %s skipped: built on grid %s, not %s", layout.season.name, block_id,
                           manifest.get("grid"), record)
            continue
        try:
            block = grid.block_by_id(block_id)
        except InvalidInputError:
            logger.warning("season %s: block %r skipped: malformed block id in its manifest", layout.season.name,
                           block_id)
            continue
        folder = layout.block_dir(block.id) / str(manifest.get("prefix") or "")
        files = frozenset(str(f) for f in manifest.get("files", ()))
        if present is not None:
            files = frozenset(present.get(folder, ()))
        made = manifest.get("products", ())
        layers = (frozenset(manifest.get("bands", ())) | {p for p in (QA, MEDOID, FILL) if p in made}
                  | set(manifest.get("indices", {})))
        blocks.append(BuiltBlock(block, str(manifest["status"]), layers, folder, files,
                                 len(manifest.get("scenes", ())), int(manifest.get("n_acquisitions", 0)),
                                 _options_items(manifest.get("options")), str(manifest.get("built_at", ""))))
    return sorted(blocks, key=lambda b: (-b.block.row, b.block.col))


def select_bands(blocks: Sequence[BuiltBlock], bands: Iterable[str] | str | None) -> tuple[str, ...]:
    """The requested bands (validated), or, for ``None``, every band any block holds; product order."""
    if bands is None:
        present = {band for b in blocks for band in b.bands}
        return tuple(n for n in BAND_NAMES if n in present)
    wanted = resolve_bands(bands)
    for band in wanted:
        if not any(band in b.bands for b in blocks):
            logger.warning("band %s: no built block holds it; nothing to write", band)
    return wanted


def block_sources(layout: SeasonLayout, blocks: Sequence[BuiltBlock], band: str,
                  kind: str) -> list[tuple[Block, PurePath]]:
    """Existing block files of one band and kind; a file its manifest promises but lacks is warned."""
    sources = []
    holder = MEDOID if kind == MEDOID else band  # a block built with the medoid has it for all six bands
    for built in blocks:
        if holder not in built.bands:
            continue
        path = built.path(layout, band, kind)
        if path.name in built.files:
            sources.append((built.block, path))
        else:
            logger.warning("block %s: %s is missing; left out of the season outputs", built.block.id, path.name)
    return sources


def season_variables(blocks: Sequence[BuiltBlock], bands: Iterable[str] | str | None) -> list[tuple[str, str]]:
    """The season's rasters as (band, kind): each band's (`select_bands`) statistics and count, each index's
    statistics, the medoid's, then the QA layer and the fill flag (of a filled variant), where some block has them."""
    variables = [(band, kind) for band in select_bands(blocks, bands) for kind in OUTPUT_KINDS]
    indices = index_order({name for b in blocks for name in b.bands if is_index(name)})
    variables += [(name, kind) for name in indices for kind in STATISTICS]
    if any(MEDOID in b.bands for b in blocks):
        variables += [(band, MEDOID) for band in BAND_NAMES] + [MEDOID_DOY]
    variables += [QA_VARIABLE] if any(QA in b.bands for b in blocks) else []
    return variables + ([FILL_FLAG] if any(FILL in b.bands for b in blocks) else [])


def season_rasters(layout: SeasonLayout, blocks: Sequence[BuiltBlock], bands: Iterable[str] | str | None
                   ) -> Iterator[tuple[str, str, list[tuple[Block, PurePath]]]]:
    """``(band, kind, block files)`` of each of the season's rasters (`season_variables`) that some block has a
    file of: what a season-wide raster (VRT, overview, export) is made of."""
    for band, kind in season_variables(blocks, bands):
        sources = block_sources(layout, blocks, band, kind)
        if sources:
            yield band, kind, sources


@dataclass(frozen=True)
class MosaicExtent:
    """The rectangle of grid blocks from (col_min, row_min) to (col_max, row_max), inclusive."""

    col_min: int
    col_max: int
    row_min: int
    row_max: int
    block_size_px: int
    resolution_m: float

    @property
    def width(self) -> int:
        return (self.col_max - self.col_min + 1) * self.block_size_px

    @property
    def height(self) -> int:
        return (self.row_max - self.row_min + 1) * self.block_size_px

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the grid CRS (metres)."""
        span = self.block_size_px * self.resolution_m
        return (self.col_min * span, self.row_min * span, (self.col_max + 1) * span, (self.row_max + 1) * span)

    @property
    def transform(self) -> Affine:
        xmin, _, _, ymax = self.bounds
        return Affine(self.resolution_m, 0.0, xmin, 0.0, -self.resolution_m, ymax)

    def offset_px(self, block: Block) -> tuple[int, int]:
        """(column, row) of the block's upper-left pixel in the mosaic (rows grow southwards)."""
        return ((block.col - self.col_min) * self.block_size_px, (self.row_max - block.row) * self.block_size_px)


def mosaic_extent(blocks: Sequence[BuiltBlock]) -> MosaicExtent:
    """The smallest rectangle of blocks holding every built block (the same for all bands)."""
    if not blocks:
        raise InvalidInputError("the season has no built block: build some before writing season outputs")
    first = blocks[0].block
    cols = [b.block.col for b in blocks]
    rows = [b.block.row for b in blocks]
    return MosaicExtent(min(cols), max(cols), min(rows), max(rows), first.size_px, first.resolution_m)
