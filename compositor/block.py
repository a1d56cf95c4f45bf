"""One block job: composite a block of one season, write its COGs, then its manifest, atomically.

A block is built when ``blocks/<id>/manifest.json`` exists. Everything of a block is written into
a private local folder first, the manifest last; the store then installs it under the block's lock
(`compositor.storage`: a rename in a folder; in an object store, uploads under a prefix of this build,
then the manifest that names it). Killing a build at any moment leaves either the previous complete
block or the new complete block (in an object store, possibly an orphan upload that no manifest
names, removed by a later build), and two builders of the same block never both install it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from affine import Affine

from compositor import __version__
from compositor.bands import (BAND_NAMES, COUNT, DEFAULT_PRODUCTS, MEDOID, MEDOID_DOY, QA, QA_VARIABLE, STATISTICS,
                              Index)
from compositor.catalog import Scene, deduplicate_acquisitions
from compositor.cog import BandSpec, describe, open_strip_writer, translate_to_cog, write_strip
from compositor.composite import Composite, CompositeOptions, composite_window, to_dn, to_index
from compositor.grid import Block
from compositor.describe import overview_resampling, season_spec
from compositor.index import grid_record, read_manifest, write_manifest
from compositor.layout import SeasonLayout
from compositor.offsets import OffsetCheck, check_offsets

logger = logging.getLogger(__name__)

DEFAULT_STRIP_ROWS = 512


@dataclass(frozen=True)
class BlockJob:
    """Everything a worker needs to build one block of one season (picklable).

    ``scenes`` touch the block and are read; ``nearby`` do not but lie within the blend taper's
    reach: only their footprints are used, so that the weights near the block's edges are the
    ones its neighbours compute (no seam)."""

    layout: SeasonLayout
    block: Block
    scenes: tuple[Scene, ...]
    bands: tuple[str, ...]
    options: CompositeOptions = CompositeOptions()
    strip_rows: int = DEFAULT_STRIP_ROWS
    nearby: tuple[Scene, ...] = ()
    products: tuple[str, ...] = DEFAULT_PRODUCTS  # `compositor.bands.PRODUCTS`: "qa" adds the QA layer
    indices: tuple[Index, ...] = ()  # with the product "indices": their per-observation percentiles

    @property
    def variables(self) -> list[tuple[str, str]]:
        """The block's rasters as (band, kind): each band's statistics and count, each index's statistics, and
        the QA layer if asked."""
        return ([(band, kind) for band in self.bands for kind in (*STATISTICS, COUNT)]
                + [(index.name, kind) for index in self.indices for kind in STATISTICS]
                + ([(band, MEDOID) for band in BAND_NAMES] + [MEDOID_DOY] if MEDOID in self.products else [])
                + ([QA_VARIABLE] if QA in self.products else []))


@dataclass(frozen=True)
class BlockResult:
    """What happened to one block: ``status`` is built, empty, skipped or failed.

    built: at least one valid observation. empty: every scene was read (or there were none) and
    none had a valid observation. failed: an error, or scenes could not be read and none gave data
    (the block is not installed, the next build tries it again)."""

    block_id: str
    status: str
    n_scenes: int = 0
    seconds: float = 0.0
    skipped_scenes: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    offset_corrections: tuple[dict, ...] = ()  # `OffsetCheck.record` of scenes the data check corrected


def is_up_to_date(manifest: dict | None, job: BlockJob) -> bool:
    """Whether a built block already holds this job: same scenes (read and nearby), options and
    (at least) bands."""
    if not manifest:
        return False
    return (
        sorted(manifest.get("scenes", [])) == sorted(s.id for s in job.scenes)
        and sorted(manifest.get("nearby_scenes", [])) == sorted(s.id for s in job.nearby)
        and manifest.get("options") == job.options.fingerprint()
        and set(job.bands) <= set(manifest.get("bands", []))
        and set(job.products) <= set(manifest.get("products", DEFAULT_PRODUCTS))
        and all(manifest.get("indices", {}).get(i.name) == [i.a, i.b] for i in job.indices)
        and manifest.get("grid") == grid_record(job.block)
    )


def _spec(job: BlockJob, band: str, kind: str) -> BandSpec:
    """The season's declaration of the raster (`compositor.describe`), with the block and its scene count."""
    spec = season_spec(job.layout.season, band, kind)
    return replace(spec, tags={**spec.tags, "block": job.block.id, "n_scenes": str(len(job.scenes))})


MEDOID_BYTES = 512 * 2**20  # the medoid holds six bands' stacks of a strip at once, and one copy: bounded so


def _strip_rows(job: BlockJob) -> int:
    """Rows composited at a time: the job's, fewer with the medoid, so that its six stacks of observations (and
    their copy for the kernel) stay within `MEDOID_BYTES`, as a strip of the bands stays within its budget."""
    if MEDOID not in job.products:
        return job.strip_rows
    n = max(1, len(deduplicate_acquisitions(job.scenes)))
    rows = MEDOID_BYTES // (2 * len(BAND_NAMES) * 2 * n * job.block.size_px)
    return max(16, min(job.strip_rows, rows))


def row_strips(size: int, rows: int) -> Iterator[tuple[int, int]]:
    """(first row, rows) of the strips of ``rows`` rows that cover ``size`` rows (the last may be shorter)."""
    for start in range(0, size, rows):
        yield start, min(rows, size - start)


def _composite_strip(job: BlockJob, scenes: Sequence[Scene], row_off: int, rows: int,
                     skipped: dict[str, str]) -> Composite:
    """Composite the rows ``row_off:row_off + rows`` of the block from ``scenes`` (the job's, offsets
    checked) without the scenes in ``skipped``."""
    block = job.block
    transform = block.transform @ Affine.translation(0, row_off)
    readable = [s for s in scenes if s.id not in skipped]
    footprints = [*readable, *(s for s in job.nearby if s.id not in skipped)]
    return composite_window(readable, job.bands, block.crs, transform, (rows, block.size_px), job.options,
                            footprints=footprints, indices=job.indices, medoid=MEDOID in job.products)


def _composite_into(job: BlockJob, tmp: Path, scenes: Sequence[Scene]) -> tuple[dict[str, str], int]:
    """Composite the block strip by strip into temporary GeoTIFFs; returns skipped scenes, acquisitions."""
    block, layout = job.block, job.layout
    writers = {}
    skipped: dict[str, str] = {}
    n_acq = 0
    try:
        for band, kind in job.variables:
            spec = _spec(job, band, kind)
            writer = open_strip_writer(tmp / f"{band}_{kind}.strips.tif", block.crs, block.transform,
                                       block.shape, spec.dtype, spec.nodata)
            describe(writer, spec.description, spec.scale, spec.tags)
            writers[band, kind] = writer
        # The scenes left out of each strip's footprints; a scene that fails in a later strip makes
        # the earlier ones stale (their weights counted its footprint): they are composited again.
        excluded: dict[int, frozenset[str]] = {}
        strips = list(row_strips(block.size_px, _strip_rows(job)))
        for attempt in range(2):
            for row_off, rows in strips:
                if attempt and excluded[row_off] == frozenset(skipped):
                    continue
                result = _composite_strip(job, scenes, row_off, rows, skipped)
                skipped.update(result.skipped)
                excluded[row_off] = frozenset(skipped)
                n_acq = max(n_acq, result.n_acquisitions)
                for band in job.bands:
                    for i, kind in enumerate(STATISTICS):
                        write_strip(writers[band, kind], row_off, to_dn(result.stats[band][i]))
                    write_strip(writers[band, COUNT], row_off, result.counts[band])
                for index in job.indices:
                    for i, kind in enumerate(STATISTICS):
                        write_strip(writers[index.name, kind], row_off, to_index(result.stats[index.name][i]))
                if QA_VARIABLE in writers:
                    write_strip(writers[QA_VARIABLE], row_off, result.seen)
                if MEDOID_DOY in writers:
                    for band in BAND_NAMES:
                        write_strip(writers[band, MEDOID], row_off, result.medoid[band])
                    write_strip(writers[MEDOID_DOY], row_off, result.medoid_doy)
            if all(e == frozenset(skipped) for e in excluded.values()):
                break
    finally:
        for writer in writers.values():
            writer.close()
    for (band, kind), writer in writers.items():
        translate_to_cog(Path(writer.name), tmp / layout.block_name(band, kind), resampling=overview_resampling(kind))
        Path(writer.name).unlink()
    return skipped, n_acq


def _write_manifest(job: BlockJob, folder: Path, status: str, skipped: dict[str, str], n_acq: int,
                    corrections: Sequence[OffsetCheck] = (), prefix: str = "") -> None:
    season = job.layout.season
    manifest = {
        "block": job.block.id, "season": season.name, "start_date": season.start.isoformat(),
        "end_date": season.end.isoformat(), "status": status, "grid": grid_record(job.block),
        "bounds": list(job.block.bounds), "bands": sorted(job.bands), "products": list(job.products),
        "indices": {index.name: [index.a, index.b] for index in job.indices},
        "options": job.options.fingerprint(),
        "scenes": sorted(s.id for s in job.scenes), "nearby_scenes": sorted(s.id for s in job.nearby),
        "n_acquisitions": n_acq,
        "failed_scenes": [{"scene": k, "reason": v} for k, v in sorted(skipped.items())],
        "offset_corrections": [c.record() for c in sorted(corrections, key=lambda c: c.scene)],
        "files": sorted(p.name for p in folder.glob("*.tif")),
        "prefix": prefix,  # the folder of the files below the block's (`compositor.index`)
        "software": f"s2seasons {__version__}",
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_manifest(folder, manifest)


def build_block(job: BlockJob, *, force: bool = False) -> BlockResult:
    """Build one block unless an up-to-date one exists; never leaves a partial block in place."""
    started = time.perf_counter()
    block_id, store = job.block.id, job.layout.store
    if not force and is_up_to_date(read_manifest(job.layout, block_id), job):
        return BlockResult(block_id, "skipped", len(job.scenes), reason="already built with the same scenes")
    # Once per scene (cached in this process): a scene whose pixels contradict its offset metadata is corrected,
    # the same way in every block and tile (`compositor.offsets`).
    scenes, corrections = check_offsets(job.scenes, job.options.read_threads)
    records = tuple(c.record() for c in corrections)
    with store.scratch(job.layout.blocks_dir, block_id) as tmp:
        skipped, n_acq = _composite_into(job, tmp, scenes)
        if skipped and (not n_acq or set(skipped) >= {s.id for s in scenes}):  # unread scenes, nothing else to show
            return BlockResult(block_id, "failed", len(job.scenes), time.perf_counter() - started, skipped,
                               reason=unreadable_reason(job, skipped), offset_corrections=records)
        status = "built" if n_acq else "empty"
        prefix = store.new_build_prefix()
        _write_manifest(job, tmp, status, skipped, n_acq, corrections, prefix)
        # Under the block's lock: a builder that finished the same block meanwhile wins.
        final = job.layout.block_dir(block_id)
        # A forced rebuild replaces an up-to-date block too (it was asked for: new software, a repaired scene).
        accept = (lambda current: True) if force else (lambda current: not is_up_to_date(current, job))
        if not store.install_block(tmp, final, accept, prefix):
            return BlockResult(block_id, "skipped", len(job.scenes), reason="built meanwhile by another build")
    return BlockResult(block_id, status, len(job.scenes), time.perf_counter() - started, skipped,
                       offset_corrections=records)


def unreadable_reason(job: BlockJob, skipped: dict[str, str]) -> str:
    """Why a block whose scenes could not be read failed, with the first error."""
    first = next(iter(sorted(skipped.items())))
    return (f"{len(skipped)} of its {len(job.scenes)} scenes could not be read and none of the others had a valid "
            f"observation (first: {first[0]}: {first[1]})")


def clean_stale_temporaries(layout: SeasonLayout, older_than_s: float = 0.0) -> int:
    """Remove temporary folders left by killed builds; returns how many were removed."""
    return layout.store.clean_stale(layout.blocks_dir, older_than_s)
