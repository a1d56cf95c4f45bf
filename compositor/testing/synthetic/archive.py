"""Generate a deterministic, Earth-Search-like Sentinel-2 L2A archive with its truth.

Layout under ``out_dir``::

    catalog.json                                   STAC ItemCollection (hrefs relative to it)
    scenes/<tile>/<year>/<month>/<day>/<item id>/B02.tif ... B12.tif, SCL.tif
    truth/<season>/<band>_p50.tif, truth/<season>/dates.json, truth/<season>/swaths.json

Scenes are whole 109.8 km MGRS tiles (real extents, in their UTM zone) of the relative orbits
that cover the bbox, every 5 days per orbit; they hold data (DN > 0) only where the tile meets
both the pass's data extent (``edges``: the real Sentinel-2 swath from ``reference_orbit``,
with irregular edges and, on some passes, a datatake end) and the region (the truth grid plus
a few pixels), which keeps the default archive under 500 MB. Item footprints outline exactly
that data. Same arguments and seed give byte-identical files, whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyproj import CRS
from pyproj.exceptions import CRSError

from compositor.errors import InvalidInputError
from compositor.seasons import Season, resolve_season
from compositor.testing.synthetic.atmosphere import make_sky_grid
from compositor.testing.synthetic.edges import write_swaths
from compositor.testing.synthetic.geometry import RasterGrid, Region, check_bbox, locate_pixels, region_for, truth_grid_for
from compositor.testing.synthetic.reference_orbit import orbits_seeing, view_coordinates
from compositor.testing.synthetic.scene import (
    ArchiveSpec,
    SceneResult,
    clear_cache,
    ground_for,
    render_acquisition,
    scene_count,
)
from compositor.testing.synthetic.schedule import Acquisition, acquisitions_in
from compositor.testing.synthetic.tiles import check_pixel_size, tiles_covering
from compositor.testing.synthetic.truth import write_truth

logger = logging.getLogger(__name__)

DEFAULT_BBOX_4326 = (11.0, 47.6, 12.9, 48.2)
CATALOG_NAME = "catalog.json"


@dataclass(frozen=True)
class ArchiveSummary:
    """What ``generate_archive`` wrote: counts, the orbits, tiles and seasons, and the total bytes."""

    catalog_path: Path
    n_items: int
    n_files: int
    orbits: tuple[int, ...]
    tiles: tuple[str, ...]
    seasons: tuple[str, ...]
    truth_dir: Path
    bytes_written: int


def generate_archive(
    out_dir: Path,
    *,
    seasons: Sequence[str | Season] = ("2022-winter",),
    bbox_4326: tuple[float, float, float, float] = DEFAULT_BBOX_4326,
    pixel_size_m: float = 100.0,
    seed: int = 0,
    truth_resolution_m: float = 200.0,
    truth_crs: str = "EPSG:3035",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ArchiveSummary:
    """Write a synthetic Sentinel-2 L2A archive over ``bbox_4326`` (lon/lat, EPSG:4326) into ``out_dir``.

    ``seasons``: names like ``2022-winter`` (or ``Season`` values); ``pixel_size_m``: pixel size of
    the "10 m" bands (the "20 m" bands and SCL get twice it), must divide 54900 m;
    ``truth_resolution_m`` and ``truth_crs``: the grid of the truth rasters; ``workers`` > 1
    renders acquisitions in that many spawned processes (0: one per core) (a calling script needs the usual
    ``if __name__ == "__main__":`` guard); ``progress(done, total)`` is called as scenes are
    written. The relative orbits are those whose swath covers part of the bbox. Scenes are whole
    MGRS tiles but hold data only inside the region: the truth grid plus 4 pixels, in the
    swath. Files of an earlier run in ``out_dir`` are overwritten, not removed. Raises
    InvalidBBoxError, SeasonNotFoundError or InvalidInputError (all ValueError) on bad arguments.
    """
    started = time.perf_counter()
    bbox = check_bbox(bbox_4326)
    resolved = _resolve_seasons(seasons)
    check_pixel_size(pixel_size_m)
    _check_truth_grid(truth_crs, truth_resolution_m)
    workers = _check_workers(workers)

    truth = truth_grid_for(bbox, truth_crs, float(truth_resolution_m))
    spec = plan_archive(Path(out_dir), bbox, truth, float(pixel_size_m), int(seed))
    by_season = {season.name: acquisitions_in(season, spec.orbits) for season in resolved}
    acquisitions = sorted({acq for acqs in by_season.values() for acq in acqs})
    total = count_scenes(spec, acquisitions)
    tiles = [t.code for t in spec.tiles]
    logger.info("generating %d scenes of %d passes, orbits %s, tiles %s", total, len(acquisitions), spec.orbits, tiles)

    spec.out_dir.mkdir(parents=True, exist_ok=True)
    results = _render_all(spec, acquisitions, workers, total, progress)
    items = [r.item for r in results]
    catalog_path = write_catalog(spec.out_dir / CATALOG_NAME, items)
    n_files = sum(r.n_files for r in results) + 1
    written = sum(r.bytes_written for r in results) + catalog_path.stat().st_size

    ground, lat = ground_for(spec), spec.region.centre_4326[1]
    for season in resolved:
        dates = sorted({acq.date for acq in by_season[season.name]})
        folder = spec.out_dir / "truth" / season.name
        written += write_truth(folder, ground, truth, season, dates, spec.orbits, lat)
        written += write_swaths(folder / "swaths.json", [spec.swath(acq) for acq in by_season[season.name]])
        n_files += 8
    clear_cache()
    elapsed = time.perf_counter() - started
    logger.info("wrote %d items, %d files, %.1f MB in %.1f s", len(items), n_files, written / 1e6, elapsed)
    return ArchiveSummary(
        catalog_path=catalog_path,
        n_items=len(items),
        n_files=n_files,
        orbits=spec.orbits,
        tiles=tuple(sorted({item["properties"]["grid:code"].removeprefix("MGRS-") for item in items})),
        seasons=tuple(season.name for season in resolved),
        truth_dir=spec.out_dir / "truth",
        bytes_written=written,
    )


def plan_archive(
    out_dir: Path, bbox_4326: tuple[float, float, float, float], truth: RasterGrid, pixel_size_m: float, seed: int
) -> ArchiveSpec:
    """The region (truth grid plus 2 pixels of the "20 m" bands), its orbits, tiles and sky grid."""
    region = region_for(bbox_4326, truth, margin_m=4 * pixel_size_m)
    orbits = choose_orbits(region)
    return ArchiveSpec(
        out_dir=out_dir,
        seed=seed,
        pixel_size_m=pixel_size_m,
        region=region,
        sky_grid=make_sky_grid(region.bounds_3035, region.grid_north_deg()),
        tiles=tiles_covering(region.polygon_4326()),
        orbits=orbits,
        time_ranges=tuple(region_times(region, orbit) for orbit in orbits),
    )


def count_scenes(spec: ArchiveSpec, acquisitions: list[Acquisition]) -> int:
    """How many scenes the acquisitions give: one per tile with data from the pass (as ``render_scene`` decides)."""
    pixels = {
        (tile, orbit): locate_pixels(tile, 2 * spec.pixel_size_m, spec.region, (orbit,))
        for tile in spec.tiles
        for orbit in spec.orbits
    }
    swaths = [(acq.relative_orbit, spec.swath(acq)) for acq in acquisitions]
    return sum(scene_count(pixels[tile, orbit], swath) > 0 for orbit, swath in swaths for tile in spec.tiles)


def write_catalog(path: Path, items: list[dict]) -> Path:
    """The items as a GeoJSON FeatureCollection (STAC ItemCollection), by datetime then id, sorted keys."""
    ordered = sorted(items, key=lambda item: (item["properties"]["datetime"], item["id"]))
    text = json.dumps({"type": "FeatureCollection", "features": ordered}, sort_keys=True, separators=(",", ":"))
    path.write_text(text + "\n")
    return path


def choose_orbits(region: Region) -> tuple[int, ...]:
    """The relative orbits whose real swath (``reference_orbit``) covers some of the region.

    Probed on a lattice of 9 x 5 points over the region's EPSG:4326 bounds.
    """
    lon0, lat0, lon1, lat1 = region.polygon_4326().bounds
    lon, lat = np.meshgrid(np.linspace(lon0, lon1, 9), np.linspace(lat0, lat1, 5))
    return tuple(sorted(orbits_seeing(lon, lat)))


def region_times(region: Region, relative_orbit: int) -> tuple[float, float]:
    """(first, last) time (s after the ANX) at which the orbit's descending pass sees the region."""
    ring = np.asarray(region.polygon_4326().exterior.coords)
    t, _ = view_coordinates(relative_orbit, ring[:, 0], ring[:, 1])
    return round(float(t.min()), 4), round(float(t.max()), 4)


def _resolve_seasons(seasons: Sequence[str | Season]) -> list[Season]:
    if isinstance(seasons, (str, Season)):
        seasons = [seasons]
    resolved = [s if isinstance(s, Season) else resolve_season(s) for s in seasons]
    if not resolved:
        raise InvalidInputError("seasons is empty: give at least one season, e.g. ('2022-winter',)")
    if len({s.name for s in resolved}) != len(resolved):
        raise InvalidInputError(f"seasons {[s.name for s in resolved]} repeat a name: give each season once")
    return resolved


def _check_workers(workers: int) -> int:
    """The number of processes: ``workers``, or one per available core for 0."""
    if int(workers) < 0:
        raise InvalidInputError(f"workers={workers}: use 1 or more processes, or 0 for one per core")
    if int(workers) == 0:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return int(workers)


def _check_truth_grid(truth_crs: str, truth_resolution_m: float) -> None:
    try:
        crs = CRS.from_user_input(truth_crs)
    except CRSError:
        raise InvalidInputError(f"truth_crs {truth_crs!r} is not a CRS: use e.g. 'EPSG:3035'") from None
    if not crs.is_projected:
        raise InvalidInputError(f"truth_crs {truth_crs!r} is not projected: use a metric CRS such as EPSG:3035")
    if not 10.0 <= float(truth_resolution_m) <= 2000.0:
        raise InvalidInputError(f"truth_resolution_m={truth_resolution_m}: use 10 to 2000 m")


def _render_all(
    spec: ArchiveSpec,
    acquisitions: list[Acquisition],
    workers: int,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> list[SceneResult]:
    """Render every acquisition, in this process or in ``workers`` spawned ones, reporting scenes done."""
    done = 0
    results: list[SceneResult] = []
    if progress:
        progress(0, total)
    if workers == 1 or len(acquisitions) <= 1:
        for acq in acquisitions:
            batch = render_acquisition(spec, acq)
            results.extend(batch)
            done += len(batch)
            if progress:
                progress(done, total)
        return results
    context = multiprocessing.get_context("spawn")  # no fork: callers may run threads (progress bars)
    with ProcessPoolExecutor(max_workers=min(workers, len(acquisitions)), mp_context=context) as pool:
        futures = [pool.submit(render_acquisition, spec, acq) for acq in acquisitions]
        try:
            for future in as_completed(futures):
                batch = future.result()
                results.extend(batch)
                done += len(batch)
                if progress:
                    progress(done, total)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # stop at the first failure or interrupt
            raise
    return results
