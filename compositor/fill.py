"""Gap filling (flagged): the ``filled`` variant of a built season, from its neighbouring seasons.

The original product does no gap filling: the count layer marks the pixels whose percentiles rest on
few observations. ``s2seasons fill`` writes, beside the season's own outputs and without touching
them, a variant in which such pixels take their values from a neighbouring season that was built,
and a flag that says, per pixel, where its values came from::

    DATA/<season>/filled/blocks/<id>/s2l2a_red_p50_..._filled.tif     # P25/P50/P75 and count of each band
    DATA/<season>/filled/blocks/<id>/s2l2a_fill_flag_..._filled.tif   # 0, 1, 2 or 255 (`compositor.bands`)
    DATA/<season>/filled/blocks/<id>/manifest.json                    # written last: the sources it used
    DATA/<season>/filled/*.vrt, overview/, catalog/                   # the season outputs, as after a build

The rule (`choose_sources`), per pixel: its observations are the smallest count of its bands (they
differ only where a band's data are missing), and its values (all bands, P25, P50, P75 and count)
come from one source, the best of the season itself, the same season of the year before and after
(flag 1) and the seasons before and after it (flag 2), ranked by

1. the same season (this year or another) before an adjacent season;
2. at least ``min_observations`` observations before fewer (but at least one);
3. this year before another year;
4. more observations; then the year (or season) before the one after.

So a pixel the season observed ``min_observations`` times or more keeps its values bit for bit; a
pixel observed less takes the year before's or after's values where that year has enough, else keeps
its own few; the adjacent seasons fill only what no year of the season observed at all (on the test
archive an adjacent season's values were farther from the season's truth than one or two of its
own observations: the phenology differs, see the README); where no season saw the pixel, it stays
nodata (flag 255). Nothing is averaged or interpolated: a filled value is one that a neighbouring
season measured at that pixel. The count of the variant is the count of the season the value comes
from.

A block is filled in a private folder and installed in one step under its lock, as a build's block
(`compositor.storage`): a fill that stops midway leaves the blocks it finished, and a new run skips
the blocks whose sources did not change since.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from compositor import __version__
from compositor.bands import (BAND_NAMES, COUNT, FILL, FILL_FLAG, FILLED, FLAG_ADJACENT_SEASON, FLAG_NAMES,
                              FLAG_NODATA, FLAG_OBSERVED, FLAG_OTHER_YEAR)
from compositor.block import row_strips
from compositor.catalog import BBox, check_bbox, parse_bbox
from compositor.cog import BandSpec, describe, open_strip_writer, translate_to_cog, write_strip
from compositor.describe import overview_resampling, season_spec
from compositor.errors import CompositorError, InvalidInputError
from compositor.grid import Block, OutputGrid
from compositor.index import (BuiltBlock, built_blocks, grid_record, note_variant, read_manifest, season_grid,
                              season_record, write_manifest)
from compositor.layout import OUTPUT_KINDS, SeasonLayout
from compositor.progress import Progress, phase
from compositor.seasons import Season, calendar_name, calendar_season, resolve_season, season_of
from compositor.settings import Settings
from compositor.storage import output_location

logger = logging.getLogger(__name__)

DEFAULT_STRIP_ROWS = 512
RULE = ("per pixel, all bands from one source, the first by: the same season (this year, the year before or after) "
        "before an adjacent season (the season before or after), at least min_observations valid observations before "
        "fewer, this year before another, more observations, the earlier; flags: 0 this season, 1 same season of "
        "another year, 2 adjacent season, 255 none observed (nodata)")


# --- the rule --------------------------------------------------------------------------------------


def choose_sources(counts: np.ndarray, tiers: Sequence[int], min_observations: int) -> np.ndarray:
    """Per pixel, the index of the source whose values it takes, or -1 where no source observed it.

    ``counts``: ``(n_sources, ...)`` valid observations of each source at each pixel (0 where a source is
    not built); ``tiers``: each source's nearness, `FLAG_OBSERVED` (0) for the season itself,
    `FLAG_OTHER_YEAR`, `FLAG_ADJACENT_SEASON`. Sources rank by: the same season (tiers 0 and 1) before an
    adjacent one, at least ``min_observations`` before fewer, lower tier, more observations, then the order
    given (the module docstring says why).
    """
    counts = np.asarray(counts)
    tier = np.asarray(tiers, dtype=np.int64).reshape((-1,) + (1,) * (counts.ndim - 1))
    observed = np.minimum(counts, 0xFFFF).astype(np.int64)
    same_season = (tier < FLAG_ADJACENT_SEASON).astype(np.int64)
    reliable = (counts >= min_observations).astype(np.int64)
    # one integer per source whose order is the ranking: season, reliability, nearness (2 bits), count (16 bits)
    score = (same_season << 21) + (reliable << 20) + ((FLAG_ADJACENT_SEASON - tier) << 17) + observed
    score = np.where(observed > 0, score, -1)
    best = np.argmax(score, axis=0)  # the first of equal scores: the order given breaks ties
    return np.where(np.max(score, axis=0) >= 0, best, -1)


# --- the neighbours of a season -------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbour:
    season: Season
    tier: int  # FLAG_OTHER_YEAR or FLAG_ADJACENT_SEASON


def neighbour_seasons(season: Season) -> tuple[Neighbour, ...]:
    """The same season of the year before and after, then the calendar seasons just before and after it.

    Only calendar seasons have neighbours (`InvalidInputError` for a custom season)."""
    parts = calendar_name(season)
    if parts is None:
        raise InvalidInputError(f"season {season.name!r} is not a calendar season: fill takes YEAR-winter|spring|"
                                "summer|autumn (e.g. 2022-summer), whose neighbours are the same season of the years "
                                "before and after and the seasons before and after it")
    year, name = parts
    before = season_of(season.start - dt.timedelta(days=1))
    after = season_of(season.end + dt.timedelta(days=1))
    return (Neighbour(calendar_season(year - 1, name), FLAG_OTHER_YEAR),
            Neighbour(calendar_season(year + 1, name), FLAG_OTHER_YEAR),
            Neighbour(before, FLAG_ADJACENT_SEASON), Neighbour(after, FLAG_ADJACENT_SEASON))


# --- one block --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A season a block can take values from: its layout, nearness and its block (None: not usable there)."""

    layout: SeasonLayout
    tier: int
    block: BuiltBlock | None = None

    def path(self, band: str, kind: str):
        return self.block.path(self.layout, band, kind)  # type: ignore[union-attr]

    def record(self) -> dict[str, object]:
        return {"season": self.layout.season.name, "tier": self.tier,
                "built_at": self.block.built_at if self.block else None}


@dataclass(frozen=True)
class FillJob:
    """One block of the filled variant: its sources (the season itself first), bands and threshold."""

    variant: SeasonLayout
    block: Block
    sources: tuple[Source, ...]
    bands: tuple[str, ...]
    min_observations: int
    strip_rows: int = DEFAULT_STRIP_ROWS

    def record(self) -> dict[str, object]:
        """What the block was filled from (its manifest's ``fill``): a new build of a source refills it."""
        return {"min_observations": self.min_observations, "bands": list(self.bands),
                "sources": [s.record() for s in self.sources]}


@dataclass(frozen=True)
class FillResult:
    """``status``: filled, skipped (up to date) or failed; ``pixels``: how many of each flag (`FLAG_NAMES`)."""

    block_id: str
    status: str
    pixels: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str = ""


def is_fill_up_to_date(manifest: dict | None, job: FillJob) -> bool:
    return bool(manifest) and manifest.get("fill") == job.record() and manifest.get("grid") == grid_record(job.block)


def _spec(job: FillJob, band: str, kind: str) -> BandSpec:
    spec = season_spec(job.variant.season, band, kind, FILLED)
    return replace(spec, tags={**spec.tags, "block": job.block.id, "fill_min_observations": str(job.min_observations)})


def _fill_into(job: FillJob, tmp: Path) -> dict[int, int]:
    """Write the block's filled rasters into ``tmp`` strip by strip; returns the pixels of each flag."""
    block, bands = job.block, job.bands
    tiers = np.array([s.tier for s in job.sources])
    variables = [(band, kind) for band in bands for kind in OUTPUT_KINDS] + [FILL_FLAG]
    tally = np.zeros(256, dtype=np.int64)
    paths = {}
    with contextlib.ExitStack() as stack:
        writers = {}
        for band, kind in variables:
            spec = _spec(job, band, kind)
            writer = stack.enter_context(open_strip_writer(tmp / f"{band}_{kind}.strips.tif", block.crs,
                                                           block.transform, block.shape, spec.dtype, spec.nodata))
            describe(writer, spec.description, spec.scale, spec.tags)
            writers[band, kind] = writer
            paths[band, kind] = Path(writer.name)
        datasets: dict[tuple[int, str, str], rasterio.io.DatasetReader] = {}

        def read(i: int, band: str, kind: str, window: Window) -> np.ndarray:
            if job.sources[i].block is None:
                return np.zeros((window.height, window.width), dtype=np.uint16)
            if (i, band, kind) not in datasets:
                datasets[i, band, kind] = stack.enter_context(rasterio.open(job.sources[i].path(band, kind)))
            return datasets[i, band, kind].read(1, window=window)

        for row_off, rows in row_strips(block.size_px, job.strip_rows):
            window = Window(0, row_off, block.size_px, rows)
            band_counts = np.stack([np.stack([read(i, b, COUNT, window) for b in bands])
                                    for i in range(len(job.sources))])  # (source, band, rows, cols)
            chosen = choose_sources(band_counts.min(axis=1), tiers, job.min_observations)
            own = band_counts[0].max(axis=0) > 0  # the season's own values where no source has every band
            pick = np.maximum(chosen, 0)
            flag = np.where(chosen >= 0, tiers[pick], np.where(own, FLAG_OBSERVED, FLAG_NODATA)).astype(np.uint8)
            used = np.unique(pick)
            for band in bands:
                for kind in OUTPUT_KINDS:
                    out = np.zeros((rows, block.size_px), dtype=np.uint16)
                    for i in used:
                        out = np.where(pick == i, band_counts[i, bands.index(band)] if kind == COUNT
                                       else read(int(i), band, kind, window), out)
                    write_strip(writers[band, kind], row_off, out)
            write_strip(writers[FILL_FLAG], row_off, flag)
            tally += np.bincount(flag.ravel(), minlength=256)
    for (band, kind), strips in paths.items():
        translate_to_cog(strips, tmp / job.variant.block_name(band, kind), resampling=overview_resampling(kind))
        strips.unlink()
    return {int(value): int(n) for value, n in enumerate(tally) if n}


def _write_manifest(job: FillJob, folder: Path, pixels: dict[int, int], prefix: str) -> None:
    season = job.variant.season
    manifest = {
        "block": job.block.id, "season": season.name, "variant": FILLED, "start_date": season.start.isoformat(),
        "end_date": season.end.isoformat(), "status": "built" if set(pixels) - {FLAG_NODATA} else "empty",
        "grid": grid_record(job.block), "bounds": list(job.block.bounds), "bands": sorted(job.bands),
        "products": ["bands", FILL], "fill": job.record(),
        "pixels": {FLAG_NAMES.get(value, "no value"): n for value, n in sorted(pixels.items())},
        "files": sorted(p.name for p in folder.glob("*.tif")), "prefix": prefix,
        "software": f"s2seasons {__version__}", "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_manifest(folder, manifest)


def fill_block(job: FillJob, *, force: bool = False) -> FillResult:
    """Fill one block unless its filled block is up to date; never leaves a partial block in place."""
    started = time.perf_counter()
    block_id, store = job.block.id, job.variant.store
    if not force and is_fill_up_to_date(read_manifest(job.variant, block_id), job):
        return FillResult(block_id, "skipped", reason="up to date")
    with rasterio.Env(**store.gdal_options()), store.scratch(job.variant.blocks_dir, block_id) as tmp:
        pixels = _fill_into(job, tmp)
        prefix = store.new_build_prefix()
        _write_manifest(job, tmp, pixels, prefix)
        store.install_block(tmp, job.variant.block_dir(block_id), lambda current: True, prefix)
    return FillResult(block_id, "filled", pixels, time.perf_counter() - started)


# --- a fill over a region ----------------------------------------------------------------------------


@dataclass
class FillSummary:
    season: str
    results: list[FillResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FillResult]:
        return [r for r in self.results if r.status == "failed"]

    def describe(self) -> str:
        """Blocks by outcome, pixels by flag, and the reason of each failed block."""
        counts = {s: sum(r.status == s for r in self.results) for s in ("filled", "skipped", "failed")}
        pixels: dict[int, int] = {}
        for result in self.results:
            for value, n in result.pixels.items():
                pixels[value] = pixels.get(value, 0) + n
        lines = [f"blocks: {counts['filled']} filled, {counts['skipped']} skipped (up to date), "
                 f"{counts['failed']} failed"]
        if pixels:
            names = {**FLAG_NAMES, FLAG_NODATA: "no value"}
            lines.append("pixels of the blocks filled: " + ", ".join(
                f"{pixels.get(v, 0)} {names[v]} (flag {v})" for v in (*FLAG_NAMES, FLAG_NODATA)))
        lines += [f"  block {r.block_id} failed: {r.reason}" for r in self.failed]
        return "\n".join(lines)


def _build_hint(season: str, bbox: BBox) -> str:
    return f"s2seasons build --season {season} --bbox {','.join(f'{v:g}' for v in bbox)}"


def _usable(blocks: Sequence[BuiltBlock], layout: SeasonLayout, bands: Sequence[str]) -> dict[str, BuiltBlock]:
    """Blocks holding every file of ``bands`` (p25, p50, p75, count), by id."""
    found = {}
    for built in blocks:
        names = {built.path(layout, band, kind).name for band in bands for kind in OUTPUT_KINDS}
        if set(bands) <= built.bands and names <= built.files:
            found[built.block.id] = built
    return found


@dataclass(frozen=True)
class FillPlan:
    layout: SeasonLayout  # the season's own outputs
    grid: OutputGrid
    jobs: tuple[FillJob, ...]
    details: dict  # what season.json records of the fill


def plan_fill(settings: Settings, season: str, bbox: str | Sequence[float], *, data_dir: Path | str | None = None,
              min_observations: int | None = None) -> FillPlan:
    """The fill's block jobs and what ``season.json`` records of it; every user error is an `InvalidInputError`
    saying what to change, raised before anything is written."""
    resolved = resolve_season(season, settings.seasons)
    bbox_4326 = parse_bbox(bbox) if isinstance(bbox, str) else check_bbox(bbox)
    threshold = settings.fill_min_observations if min_observations is None else min_observations
    if threshold < 1:
        raise InvalidInputError(f"--min-observations {threshold}: give 1 or more (pixels with fewer valid "
                                "observations are filled)")
    neighbours = neighbour_seasons(resolved)
    root = output_location(data_dir or settings.data_dir)
    grid = season_grid(SeasonLayout(root, resolved, settings.crs, settings.resolution_m))
    if grid is None:
        raise InvalidInputError(f"season {resolved.name} is not built under {root}: build it first "
                                f"({_build_hint(resolved.name, bbox_4326)}) or give the --out it was built into")
    layout = SeasonLayout(root, resolved, grid.crs, grid.resolution_m)
    wanted = [b.id for b in grid.blocks_for_bbox(bbox_4326)]
    own = {b.block.id: b for b in built_blocks(layout, grid, check_files=True) if b.block.id in wanted}
    bbox_text = ",".join(f"{v:g}" for v in bbox_4326)
    if not own:
        raise InvalidInputError(f"season {resolved.name} has no built block in bbox {bbox_text}: build it there first "
                                f"({_build_hint(resolved.name, bbox_4326)}) or give a bbox where it is built (see "
                                "/seasons or its season outputs)")
    built: dict[Season, list[BuiltBlock]] = {}  # each neighbour's built blocks in the bbox (none: not built there)
    other_grid = []
    for neighbour in neighbours:
        their_grid = season_grid(SeasonLayout(root, neighbour.season, grid.crs, grid.resolution_m))
        if their_grid is not None and their_grid != grid:
            other_grid.append(f"{neighbour.season.name} ({their_grid.crs}, {their_grid.resolution_m:g} m, "
                              f"{their_grid.block_size_px} px blocks)")
        elif their_grid is not None:
            probe = SeasonLayout(root, neighbour.season, grid.crs, grid.resolution_m)
            built[neighbour.season] = [b for b in built_blocks(probe, grid, check_files=True) if b.block.id in wanted]
    if not any(built.values()):
        names = [n.season.name for n in neighbours]
        hint = "" if not other_grid else (
            f"; built on another grid, so not usable: {', '.join(other_grid)} (build them with --crs {grid.crs} "
            f"--resolution {grid.resolution_m:g} --block-size {grid.block_size_px})")
        raise InvalidInputError(
            f"no neighbour season of {resolved.name} is built in bbox {bbox_text}: build "
            f"the same season of another year ({names[0]} or {names[1]}) or an adjacent season ({names[2]} or "
            f"{names[3]}) there first, e.g. {_build_hint(names[0], bbox_4326)}{hint}")
    for name in other_grid:
        logger.warning("not used for the fill: %s is built on another grid", name)
    variant = layout.with_variant(FILLED)
    jobs = []
    for block_id in wanted:
        target = own.get(block_id)
        if target is None:
            continue
        bands = tuple(b for b in BAND_NAMES if b in target.bands)
        mine = _usable([target], layout, bands).get(block_id)
        if mine is None:
            logger.warning("block %s of %s lacks some of its files: not filled (build it again)", block_id,
                           resolved.name)
            continue
        block_sources = [Source(layout, FLAG_OBSERVED, mine)]
        for neighbour in neighbours:  # each in its place, built there or not (the job's record says which)
            probe = SeasonLayout(root, neighbour.season, grid.crs, grid.resolution_m)
            usable = _usable(built.get(neighbour.season, []), probe, bands)
            block_sources.append(Source(probe, neighbour.tier, usable.get(block_id)))
        jobs.append(FillJob(variant, target.block, tuple(block_sources), bands, threshold))
    if not jobs:
        raise InvalidInputError(f"the blocks of {resolved.name} in the bbox lack some of their files: build them again "
                                f"({_build_hint(resolved.name, bbox_4326)} --force)")
    if not any(source.block is not None for job in jobs for source in job.sources[1:]):
        # neighbours are built there, but none with every band the season's blocks hold: the fill would change nothing
        needed = sorted({band for job in jobs for band in job.bands})
        raise InvalidInputError(
            f"no neighbour season of {resolved.name} built in bbox {bbox_text} has all the bands of its blocks "
            f"({', '.join(needed)}): build a neighbour with them, e.g. {_build_hint(neighbours[0].season.name, bbox_4326)}"
            f" --bands {','.join(needed)}")
    used = sorted({s.layout.season.name for job in jobs for s in job.sources[1:] if s.block is not None})
    details = {
        "min_observations": threshold, "rule": RULE,
        "neighbours": {"same_season_other_year": [n.season.name for n in neighbours if n.tier == FLAG_OTHER_YEAR],
                       "adjacent_season": [n.season.name for n in neighbours if n.tier == FLAG_ADJACENT_SEASON]},
        "used": used, "bbox_4326": list(bbox_4326),  # of this fill; "bboxes_4326": of every fill
        "flags": {str(v): name for v, name in {**FLAG_NAMES, FLAG_NODATA: "no value"}.items()},
    }
    return FillPlan(layout, grid, tuple(jobs), details)


def run_fill(settings: Settings, season: str, bbox: str | Sequence[float], *, data_dir: Path | str | None = None,
             min_observations: int | None = None, force: bool = False, echo: Callable[[str], None] = lambda _: None,
             progress: bool = True) -> FillSummary:
    """Fill a built season's blocks in a region from its neighbouring seasons (the module docstring), then write
    the variant's season outputs and record it in ``season.json``; returns what happened to every block."""
    plan = plan_fill(settings, season, bbox, data_dir=data_dir, min_observations=min_observations)
    layout, jobs, details = plan.layout, plan.jobs, plan.details
    variant = layout.with_variant(FILLED)
    summary = FillSummary(layout.season.name)
    echo(f"{layout.season.name}: {len(jobs)} built blocks to fill where fewer than {details['min_observations']} "
         f"valid observations, from {', '.join(details['used']) or 'no neighbour'}")
    variant.store.check()
    variant.store.clean_stale(variant.blocks_dir, older_than_s=3600.0)  # blocks of a fill that was killed
    bar = Progress("blocks", len(jobs), unit="block", enabled=progress)
    bar.set_postfix(filled=0, failed=0)
    try:
        for job in jobs:
            try:
                result = fill_block(job, force=force)
            except (CompositorError, rasterio.errors.RasterioError, OSError) as exc:
                logger.error("block %s failed: %s", job.block.id, exc)
                result = FillResult(job.block.id, "failed", reason=f"{type(exc).__name__}: {exc}")
            summary.results.append(result)
            bar.set_postfix(filled=sum(r.status == "filled" for r in summary.results), failed=len(summary.failed))
            bar.update(1)
    finally:
        bar.close()
    outputs = variant.vrt_file(*FILL_FLAG)
    if any(r.status == "filled" for r in summary.results) or not variant.store.is_file(outputs):
        from compositor.mosaic import update_season_outputs

        with phase("writing the filled season outputs (overview rasters, VRTs, STAC catalog)", enabled=progress,
                   say_end=True):
            variant.store.forget_cached_reads(variant.root)
            with rasterio.Env(**variant.store.gdal_options()):
                update_season_outputs(variant, plan.grid)
            earlier = (season_record(layout) or {}).get(FILLED) or {}
            bboxes = [b for b in earlier.get("bboxes_4326", []) if b != details["bbox_4326"]] + [details["bbox_4326"]]
            note_variant(layout, FILLED, {**details, "bboxes_4326": bboxes,
                                          "filled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    return summary
