"""The library's commands of ``s2seasons``: sample data, scene search, builds, exports.

The commands that start the server (``serve``, ``demo``) are the app's (`app.cli`), which adds them to
this Typer application and is the ``s2seasons`` entry point: the library never names the app."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from compositor import __version__
from compositor.errors import CompositorError

cli = typer.Typer(
    name="s2seasons",
    help="Seasonal cloud-free Sentinel-2 mosaics: build them as COGs, serve them as map tiles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: Typer's rich panels print every flag with a value (``--force <bool>``, even
    # ``--help``) in recent Typer versions, and draw boxes into logs and pipes.
    rich_markup_mode=None,
)

SeasonOpt = Annotated[str, typer.Option("--season", "-s", help="Season: YEAR-winter|spring|summer|autumn (GLAD ARD calendar, e.g. 2019-summer) or a custom season from S2SEASONS_CUSTOM_SEASONS.")]
BBoxOpt = Annotated[str, typer.Option("--bbox", "-b", help="Region as west,south,east,north in degrees (EPSG:4326), e.g. 11.0,47.6,12.9,48.2.")]
CatalogOpt = Annotated[Optional[str], typer.Option("--catalog", "-c", help="STAC API URL (default Earth Search v1) or a local STAC ItemCollection file or folder. (env S2SEASONS_CATALOG)")]
DataOpt = Annotated[Optional[str], typer.Option("--out", "--data", "-o", help="Where built seasons are written: a folder (local, or shared by every Dask worker) or an object store URL s3://BUCKET/PREFIX (credentials and endpoint from the AWS_* environment, AWS_ENDPOINT_URL for MinIO and other S3-compatible servers). (env S2SEASONS_DATA_DIR, default ./data)")]
CollectionOpt = Annotated[Optional[str], typer.Option("--collection", help="STAC collection searched on a STAC API: sentinel-2-l2a (Earth Search, default) or sentinel-2-c1-l2a (Collection 1). (env S2SEASONS_COLLECTION)")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log every step (INFO) instead of warnings only.")]


def _settings():
    from compositor.settings import read_settings

    try:
        return read_settings()
    except CompositorError as exc:
        raise fail(exc) from None


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"s2seasons {__version__}")
        raise typer.Exit()


@cli.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    """Seasonal cloud-free Sentinel-2 mosaics (P25/P50/P75 and valid-observation counts of six bands)."""


@cli.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write the synthetic archive into (catalog.json, scenes/, truth/).")],
    season: Annotated[list[str], typer.Option("--season", "-s", help="Season(s) to generate scenes for; repeat for several.")] = ["2022-winter"],
    bbox: Annotated[Optional[str], typer.Option("--bbox", "-b", help="Region west,south,east,north in degrees; default: 11.0,47.6,12.9,48.2 (two orbits, two UTM zones).")] = None,
    pixel_size: Annotated[float, typer.Option("--pixel-size", help="Pixel size (m) of the '10 m' bands; '20 m' bands and SCL get twice it.")] = 100.0,
    truth_resolution: Annotated[float, typer.Option("--truth-resolution", help="Pixel size (m, EPSG:3035) of the true clear-sky median rasters.")] = 200.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed writes the same bytes.")] = 0,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Processes to use (0: one per core).")] = 0,
    verbose: VerboseOpt = False,
) -> None:
    """Generate a deterministic synthetic Earth-Search-like Sentinel-2 L2A archive for tests and demos."""
    setup_logging(verbose)
    from compositor.catalog import parse_bbox
    from compositor.progress import Progress
    from compositor.testing.synthetic import DEFAULT_BBOX_4326, generate_archive

    try:
        region = parse_bbox(bbox) if bbox else DEFAULT_BBOX_4326
        with Progress("scenes", unit="scene") as bar:
            summary = generate_archive(out, seasons=tuple(season), bbox_4326=region, pixel_size_m=pixel_size,
                                       truth_resolution_m=truth_resolution, seed=seed,
                                       workers=workers, progress=bar.report)
    except (CompositorError, ValueError) as exc:
        raise fail(exc) from None
    typer.echo(f"wrote {summary.n_items} scenes of orbits {', '.join(map(str, summary.orbits))} over tiles "
               f"{', '.join(summary.tiles)} ({summary.bytes_written / 1e6:.0f} MB) to {out}")
    typer.echo(f"catalog: {summary.catalog_path}")


@cli.command()
def scenes(season: SeasonOpt, bbox: BBoxOpt, catalog: CatalogOpt = None, collection: CollectionOpt = None,
           max_cloud_cover: Annotated[Optional[float], typer.Option("--max-cloud-cover", help="Skip whole scenes cloudier than this (percent); default: no filter (SCL masks clouds pixel by pixel). (env S2SEASONS_MAX_CLOUD_COVER)")] = None,
           check_offsets: Annotated[bool, typer.Option("--check-offsets", help="Also check each scene's offset against its pixels, as a build does (reads a 256 px overview of its SCL and swir22).")] = False,
           verbose: VerboseOpt = False) -> None:
    """List the Sentinel-2 L2A scenes a build of this season and region would read, with the offset each
    carries and the rule that decided it, and how many scenes each filter dropped."""
    setup_logging(verbose)
    from compositor.catalog import SceneQuery, parse_bbox
    from compositor.seasons import resolve_season

    settings = _settings()
    try:
        query = SceneQuery.from_settings(settings, catalog=catalog, collection=collection,
                                         max_cloud_cover=max_cloud_cover)
        found = query.search(parse_bbox(bbox), resolve_season(season, settings.seasons))
    except CompositorError as exc:
        raise fail(exc) from None
    listed = found.scenes
    if check_offsets:
        import rasterio

        from compositor.offsets import check_offsets as check
        from compositor.progress import phase
        from compositor.read import GDAL_ENV

        checking = f"checking the offsets of {len(found.scenes)} scenes against their pixels"
        with rasterio.Env(**GDAL_ENV), phase(checking, stream=sys.stderr):  # stderr, as the corrections
            listed, corrections = check(found.scenes)
        for c in corrections:
            typer.echo(f"{c.scene}: item offset {c.item_offset_dn} ({c.item_offset_source}) -> {c.used_offset_dn}: "
                       f"{c.reason}", err=True)
    for s in listed:
        cloud = f"{s.cloud_cover:5.1f}%" if s.cloud_cover is not None else "    ?"
        typer.echo(f"{s.datetime:%Y-%m-%d %H:%M}  R{s.relative_orbit:03d}  {s.mgrs_tile:6s} cloud {cloud}  "
                   f"baseline {s.processing_baseline or '?':5s} offset {s.offset_dn:4d} ({s.offset_source})  {s.id}")
    typer.echo(f"{len(found.scenes)} scenes, {len({s.acquisition for s in found.scenes})} acquisitions, "
               f"orbits {sorted({s.relative_orbit for s in found.scenes})}")
    typer.echo(f"scenes: {found.describe_filters()}")
    if not check_offsets:
        typer.echo("offsets are also checked against each scene's pixels when it is composited (--check-offsets)")


@cli.command()
def build(
    season: SeasonOpt,
    bbox: BBoxOpt,
    catalog: CatalogOpt = None,
    collection: CollectionOpt = None,
    out: DataOpt = None,
    bands: Annotated[Optional[str], typer.Option("--bands", help="Comma-separated bands among blue,green,red,nir,swir16,swir22 (default: all six).")] = None,
    products: Annotated[Optional[str], typer.Option("--products", help="Comma-separated products: bands (P25/P50/P75 and counts, always made), indices (P25/P50/P75 of NDVI, NBR, NDWI and S2SEASONS_CUSTOM_INDICES computed per observation, int16 scale 0.0001), medoid (per pixel the one observation closest to all others: its six bands and day of year) and qa (observations seen per pixel, valid or masked, beside the counts). Default: bands.")] = None,
    resolution: Annotated[Optional[float], typer.Option("--resolution", "-r", help="Output pixel size in CRS units (m). (env S2SEASONS_RESOLUTION_M, default 30)")] = None,
    crs: Annotated[Optional[str], typer.Option("--crs", help="Output CRS. (env S2SEASONS_CRS, default EPSG:3035)")] = None,
    block_size: Annotated[Optional[int], typer.Option("--block-size", help="Block side in pixels, a multiple of 256. (env S2SEASONS_BLOCK_SIZE_PX, default 2048)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Local build processes (0: one per core). (env S2SEASONS_WORKERS)")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Dask scheduler address (tcp://HOST:8786): run the blocks on that cluster instead of local processes.")] = None,
    no_blend: Annotated[bool, typer.Option("--no-blend", help="Pool all orbits into one percentile instead of blending per-orbit statistics (shows orbit stripes; for comparison).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild blocks even when they are up to date.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Rebuild blocks whose manifest records scenes that could not be read.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build a season's P25/P50/P75 and count mosaics for a region, block by block (resumable)."""
    setup_logging(verbose)
    from compositor.build import run_build

    settings = _settings()
    try:
        summary = run_build(settings, season, bbox, catalog=catalog, data_dir=out, bands=bands,
                            resolution_m=resolution, crs=crs, block_size_px=block_size,
                            workers=settings.workers if workers is None else workers, scheduler=scheduler,
                            blend=not no_blend, force=force, retry_failed=retry_failed, echo=typer.echo,
                            collection=collection, products=products)
    except CompositorError as exc:
        raise fail(exc) from None
    typer.echo(summary.describe())
    if summary.failed:
        typer.secho(f"error: {len(summary.failed)} of {len(summary.results)} blocks failed (see above)",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


@cli.command()
def fill(
    season: SeasonOpt,
    bbox: BBoxOpt,
    out: DataOpt = None,
    min_observations: Annotated[Optional[int], typer.Option("--min-observations", "-n", help="Fill the pixels with fewer valid observations than this (in any band); a neighbour season is used where it has at least this many. (env S2SEASONS_FILL_MIN_OBSERVATIONS, default 3)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Fill blocks again even when their filled block is up to date (same sources, same minimum).")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Write the gap-filled variant of a built season (flagged): where the season has fewer than
    --min-observations valid observations, P25/P50/P75 come from the same season of the year before or after,
    else from the season before or after, where those are built; a fill flag says per pixel where the values
    came from (0 observed, 1 same season of another year, 2 adjacent season, 255 no value). The season's own
    files are not touched; the variant is served with variant=filled."""
    setup_logging(verbose)
    from compositor.fill import run_fill

    settings = _settings()
    try:
        summary = run_fill(settings, season, bbox, data_dir=out, min_observations=min_observations, force=force,
                           echo=typer.echo)
    except CompositorError as exc:
        raise fail(exc) from None
    typer.echo(summary.describe())
    if summary.failed:
        typer.secho(f"error: {len(summary.failed)} of {len(summary.results)} blocks failed (see above); run the same "
                    "command again to fill them", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


@cli.command()
def export(
    season: SeasonOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the exported files.")],
    data: Annotated[Optional[str], typer.Option("--data", help="Where the season was built: a folder or s3://BUCKET/PREFIX. (env S2SEASONS_DATA_DIR)")] = None,
    byte: Annotated[bool, typer.Option("--byte", help="Write the byte-scaled variant of the original product (reflectance*250, nodata 255).")] = False,
    bands: Annotated[Optional[str], typer.Option("--bands", help="Comma-separated bands (default: all built).")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Export a built season; with --byte, as the original product's byte-scaled COGs."""
    setup_logging(verbose)
    from compositor.build import export_season

    if not byte:
        raise fail(ValueError("only the byte-scaled export exists: add --byte"))
    settings = _settings()
    try:
        written = export_season(settings, season, out, data_dir=data, bands=bands)
    except CompositorError as exc:
        raise fail(exc) from None
    typer.echo(f"wrote {len(written)} files to {out}")


def run() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    run()
