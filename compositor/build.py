"""The batch build: plan, run the block jobs (locally or on Dask), then the season-level outputs."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import rasterio

from compositor.block import BlockResult, clean_stale_temporaries, is_up_to_date
from compositor.index import (claim_season, note_outputs_updated, read_manifests, remove_replaced_builds,
                              season_grid)
from compositor.errors import BuildError
from compositor.layout import SeasonLayout
from compositor.plan import BuildPlan, make_request, plan_build
from compositor.progress import Progress, phase
from compositor.runner import BuildSummary, run_local
from compositor.seasons import resolve_season
from compositor.settings import Settings
from compositor.storage import open_store, output_location

logger = logging.getLogger(__name__)


def _echo_none(_: str) -> None:
    return None


def run_build(settings: Settings, season: str, bbox: str | Sequence[float], *, catalog: str | None = None,
              data_dir: Path | None = None, bands: str | Sequence[str] | None = None,
              resolution_m: float | None = None, crs: str | None = None, block_size_px: int | None = None,
              workers: int = 0, scheduler: str | None = None, blend: bool = True, force: bool = False,
              retry_failed: bool = False, echo: Callable[[str], None] = _echo_none,
              progress: bool = True, collection: str | None = None,
              products: str | Sequence[str] | None = None) -> BuildSummary:
    """Build a season over a region; returns what happened to every block.

    Up-to-date blocks are skipped (unless ``force``); blocks whose scene set changed are rebuilt.
    Inputs are validated before any search or write (`InvalidInputError`). ``progress`` shows each step
    and the blocks done on stdout (`compositor.progress`: a bar on a terminal, lines in a log).
    """
    from compositor.catalog import parse_bbox

    bbox_4326 = parse_bbox(bbox) if isinstance(bbox, str) else tuple(bbox)
    request = make_request(settings, season, bbox_4326, bands=bands, catalog=catalog, data_dir=data_dir,
                           resolution_m=resolution_m, crs=crs, block_size_px=block_size_px, blend=blend,
                           collection=collection, products=products)
    store = open_store(request.data_dir)
    with removed_if_failing(request.data_dir):  # a wrong catalog leaves no empty new --out folder behind
        store.check()  # a wrong folder, bucket, endpoint or credentials: said before the catalog is searched
        with phase(f"searching {request.query.catalog} for {request.season.name} scenes", enabled=progress):
            plan = plan_build(request)
    echo(f"{plan.request.season.name} ({plan.request.season.start}..{plan.request.season.end}): "
         f"{len(plan.jobs)} blocks of {request.grid.block_size_px} px at {request.grid.resolution_m:g} m "
         f"({request.grid.crs}), {plan.n_scenes} scenes from {request.query.catalog}")
    echo(plan.describe_scenes())
    claim_season(plan.layout, request.grid, request.bbox_4326, request.options.fingerprint(), request.products,
                 request.indices)
    clean_stale_temporaries(plan.layout, older_than_s=3600.0)
    remove_replaced_builds(plan.layout)  # an object store's replaced block builds, once readers moved on
    summary = BuildSummary(scenes_line=plan.describe_scenes())
    with phase(f"checking which of {len(plan.jobs)} blocks are up to date", enabled=progress):
        manifests = read_manifests(plan.layout, [job.block.id for job in plan.jobs])
    todo = []
    for job in plan.jobs:
        manifest = manifests.get(job.block.id)
        retry = retry_failed and bool(manifest and manifest.get("failed_scenes"))
        if not force and not retry and is_up_to_date(manifest, job):
            summary.results.append(BlockResult(job.block.id, "skipped", len(job.scenes), reason="up to date"))
        else:
            todo.append(job)
    bar = Progress("blocks", len(plan.jobs), initial=len(plan.jobs) - len(todo), unit="block", enabled=progress)
    bar.set_postfix(built=0, failed=0, scenes=0)
    scenes_read = 0

    def on_result(result: BlockResult) -> None:
        nonlocal scenes_read
        summary.results.append(result)
        scenes_read += result.n_scenes if result.status in ("built", "empty") else 0
        counts = summary.counts
        bar.set_postfix(built=counts["built"], failed=counts["failed"], scenes=scenes_read)
        bar.update(1)

    try:
        if scheduler:
            from compositor.distributed import run_dask

            run_dask(todo, scheduler, progress=on_result, force=force or retry_failed)
        else:
            run_local(todo, workers, progress=on_result, force=force or retry_failed)
    finally:
        bar.close()
    if any(r.status in ("built", "empty") for r in summary.results) or not _season_outputs_exist(plan):
        with phase("writing the season outputs (overview rasters, VRTs, STAC catalog)", enabled=progress,
                   say_end=True):
            finish_season(plan.layout, plan)
    return summary


@contextlib.contextmanager
def removed_if_failing(location: Path | str) -> Iterator[None]:
    """Remove the folders of a local ``location`` that did not exist before, if the block raises (they
    can then only be the empty ones ``store.check`` made)."""
    if not isinstance(location, Path):
        yield
        return
    new: list[Path] = []
    folder = location.absolute()
    while not folder.exists() and folder != folder.parent:
        new.append(folder)
        folder = folder.parent
    try:
        yield
    except BaseException:
        for path in new:  # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise


def _season_outputs_exist(plan: BuildPlan) -> bool:
    return all(plan.layout.store.is_file(plan.layout.vrt_file(b, "p50")) for b in plan.request.bands)


def finish_season(layout: SeasonLayout, plan: BuildPlan) -> None:
    """Season VRTs, the overview raster and the STAC catalog over every built block; then ``season.json``
    records when, which tells servers watching an object store that blocks may have been replaced."""
    from compositor.mosaic import update_season_outputs

    layout.store.forget_cached_reads(layout.root)  # blocks this process read may have been rebuilt
    with rasterio.Env(**layout.store.gdal_options()):
        update_season_outputs(layout, plan.request.grid)
    note_outputs_updated(layout)


def export_season(settings: Settings, season: str, out: Path, *, data_dir: Path | str | None = None,
                  bands: str | Sequence[str] | None = None, progress: bool = True) -> list[Path]:
    """The byte-scaled export of a built season (see `compositor.export.export_byte`); ``progress``
    counts the files written on stdout."""
    from compositor.bands import resolve_bands
    from compositor.export import export_byte

    resolved = resolve_season(season, settings.seasons)
    root = output_location(data_dir or settings.data_dir)
    grid = season_grid(SeasonLayout(root, resolved, settings.crs, settings.resolution_m))
    if grid is None:
        raise BuildError(f"season {resolved.name} has no built block under {root}: run s2seasons build first")
    layout = SeasonLayout(root, resolved, grid.crs, grid.resolution_m)
    resolved_bands = resolve_bands(bands)
    with rasterio.Env(**layout.store.gdal_options()), Progress("files", unit="file", enabled=progress) as bar:
        return export_byte(layout, grid, out, resolved_bands, progress=bar.report)
