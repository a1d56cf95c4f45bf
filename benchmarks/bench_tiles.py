"""Benchmark of the tile server: built tiles against plain TiTiler, on-the-fly tiles against rio-tiler's mosaic.

Both measured in one run on the same synthetic data (generated into a temporary folder, or ``--archive``):

1. Built. Tiles of a built block from the season app (rendered-tile cache off), ``bands=red`` (p50) and
   ``rescale=0,3000``, against the same tiles from a plain TiTiler ``TilerFactory`` serving that block's red
   P50 COG (``?url=...``). Both in process through TestClient, every tile of zooms 12 and 13 inside the block,
   whole passes over the tiles in turn (ours, plain, ours, ...), median per tile. Goal: ours / plain <= 1.2.
   For information, true colour (3 COGs) against the plain factory on a 3-band VRT of the same COGs.
2. On the fly. One WebMercator tile, cold: red/green/blue, SCL masking, P25/P50/P75 and counts, orbits
   blended, over every scene (as the build: no cap), rendered as PNG through the app (tile and chunk caches
   off, catalog search cached). On the fly composites the chunks of the season grid the tile covers (here
   a whole 256 px block, 25.6 km, for a 6.5 km z12 tile: what the neighbouring tiles then share), against
   ``rio_tiler.mosaic.mosaic_reader`` with ``MedianMethod`` over the scenes touching the tile and 3 bands
   (masks nothing, renders nothing, the tile's area only), with its default thread count and with one
   thread; the faster counts. Goal: mosaic / ours >= 2 (a tile alone; the viewport is
   ``benchmarks/bench_viewport.py``).

    PYTHONPATH=. python -m benchmarks.bench_tiles [--archive DIR] [--json PATH] [--check]

Exits 2 with ``--check`` when a goal is not met.
"""

from __future__ import annotations

import argparse
import os
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import morecantile
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rio_tiler.constants import MAX_THREADS
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader
from rio_tiler.mosaic.methods.defaults import MedianMethod
from shapely.geometry import box
from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from titiler.core.factory import TilerFactory

from app.main import create_app
from app.services import make_services
from compositor.grid import OutputGrid
from app.settings import ServerSettings

SEASON = "2022-winter"
ARCHIVE_BBOX = (11.33, 47.85, 11.55, 47.95)
GRID = {"crs": "EPSG:3035", "resolution_m": 100.0, "block_size_px": 256}
BUILT_BLOCK = "c172_r107"
ONTHEFLY_LONLAT = (11.44, 47.90)  # where the two MGRS tiles of the archive overlap: > 40 scenes
ONTHEFLY_ZOOMS = (12, 11)  # both read the 100 m blocks at full resolution
BANDS = ("red", "green", "blue")
TMS = morecantile.tms.get("WebMercatorQuad")


def settings_for(data: Path, catalog: Path, **overrides) -> ServerSettings:
    values = dict(data_dir=data, catalog=str(catalog), **GRID, tile_cache_size=0, onthefly_budget_s=600.0)
    values.update(overrides)
    return ServerSettings(**values)


def prepare(archive: Path | None, work: Path) -> tuple[Path, Path]:
    """The synthetic archive's catalog and a data folder with BUILT_BLOCK built."""
    from app.queue import block_bbox_4326
    from compositor.build import run_build
    from compositor.testing.synthetic import generate_archive

    if archive is None or not (archive / "catalog.json").exists():
        archive = archive or work / "archive"
        print(f"generating the synthetic archive in {archive} ...", flush=True)
        generate_archive(archive, seasons=(SEASON,), bbox_4326=ARCHIVE_BBOX, pixel_size_m=100.0, seed=4)
    catalog = archive / "catalog.json"
    data = work / "data"
    block = OutputGrid(**GRID).block_by_id(BUILT_BLOCK)
    run_build(settings_for(data, catalog), SEASON, block_bbox_4326(block), workers=1, progress=False)
    return catalog, data


def tiles_inside(block_id: str, zooms: tuple[int, ...]) -> list[morecantile.Tile]:
    block = OutputGrid(**GRID).block_by_id(block_id)
    outline = block.footprint_4326()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [t for z in zooms for t in TMS.tiles(*outline.bounds, zooms=[z])
                if outline.contains(box(*TMS.bounds(t)))]


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def cpu_timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads): CPU time does not depend on other load."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def get_ok(client: TestClient, url: str, source: str | None = None):
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    if source and response.headers.get("x-s2seasons-source") != source:
        raise RuntimeError(f"{url}: source {response.headers.get('x-s2seasons-source')}, expected {source}")
    return response


def write_stack_vrt(path: Path, files: list[Path]) -> Path:
    """A 3-band VRT of single-band COGs of one block (same grid), for the plain factory."""
    import rasterio

    with rasterio.open(files[0]) as src:
        width, height, crs, gt = src.width, src.height, src.crs.to_wkt(), src.transform.to_gdal()
    bands = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{i}"><NoDataValue>0</NoDataValue><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{f}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>'
        f"</VRTRasterBand>" for i, f in enumerate(files, start=1))
    path.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{crs}</SRS>'
                    f'<GeoTransform>{", ".join(map(repr, gt))}</GeoTransform>{bands}</VRTDataset>')
    return path


def bench_built(catalog: Path, data: Path, repeats: int) -> dict:
    ours = TestClient(create_app(settings_for(data, catalog)))
    plain_app = FastAPI()
    plain_app.include_router(TilerFactory(router_prefix="/cog").router, prefix="/cog")
    add_exception_handlers(plain_app, DEFAULT_STATUS_CODES)
    plain = TestClient(plain_app)
    block_dir = data / SEASON / "blocks" / BUILT_BLOCK
    red = next(block_dir.glob("*_red_p50_*.tif"))
    stack = write_stack_vrt(data / "rgb.vrt", [next(block_dir.glob(f"*_{b}_p50_*.tif")) for b in BANDS])
    tiles = tiles_inside(BUILT_BLOCK, (12, 13))
    cases = {
        "1 band": ("bands=red&rescale=0,3000", f"url={red}&rescale=0,3000"),
        "3 bands": ("bands=red,green,blue&rescale=0,3000", f"url={stack}&rescale=0,3000"),
    }
    figures = {}
    for name, (our_query, plain_query) in cases.items():
        our_urls = [f"/seasons/{SEASON}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?{our_query}" for t in tiles]
        plain_urls = [f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?{plain_query}" for t in tiles]
        for our_url, plain_url in zip(our_urls, plain_urls):
            get_ok(ours, our_url, "built"), get_ok(plain, plain_url)  # warm up (GDAL, caches of the OS)
        # Whole passes in turn (ours, plain, ours, plain ...), not tile by tile: both servers share this
        # process's GDAL caches, and alternating single tiles let one server's reads change the other's cost.
        mine: list[list[float]] = [[] for _ in tiles]
        theirs: list[list[float]] = [[] for _ in tiles]
        for _ in range(repeats):
            for i, url in enumerate(our_urls):
                mine[i].append(timed(lambda: get_ok(ours, url)))
            for i, url in enumerate(plain_urls):
                theirs[i].append(timed(lambda: get_ok(plain, url)))
        ours_s = [statistics.median(m) for m in mine]
        plain_s = [statistics.median(t) for t in theirs]
        figures[name] = {"tiles": len(tiles), "ours_ms": 1000 * statistics.mean(ours_s),
                         "plain_titiler_ms": 1000 * statistics.mean(plain_s),
                         "ratio_ours_over_plain": sum(ours_s) / sum(plain_s)}
    return figures


def bench_onthefly(catalog: Path, work: Path, repeats: int, zoom: int) -> dict:
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    settings = settings_for(empty, catalog)
    services = make_services(settings, chunk_cache_bytes=0)
    client = TestClient(create_app(settings, services))
    tile = TMS.tile(*ONTHEFLY_LONLAT, zoom)
    url = f"/seasons/{SEASON}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png?bands={','.join(BANDS)}"
    get_ok(client, url, "on-the-fly")  # warm up: catalog search (then cached), numba, GDAL
    ours_runs = [cpu_timed(lambda: get_ok(client, url, "on-the-fly")) for _ in range(repeats)]
    ours = [wall for wall, _ in ours_runs]

    bbox = tuple(TMS.bounds(tile))
    touching = [s for s in services.scenes.find(SEASON, bbox) if s.footprint.intersects(box(*bbox))]
    scenes = touching

    def read_scene(scene, x, y, z, **kwargs) -> ImageData:
        images = []
        for band in BANDS:
            with Reader(scene.hrefs[band]) as src:
                images.append(src.tile(x, y, z))
        return ImageData.create_from_list(images)

    baseline, baseline_cpu = {}, {}
    for threads in (MAX_THREADS, 1):
        def run() -> None:
            image, used = mosaic_reader(scenes, read_scene, tile.x, tile.y, tile.z, pixel_selection=MedianMethod(),
                                        threads=threads)
            assert len(used) == len(scenes) and image.count == len(BANDS)

        run()
        runs = [cpu_timed(run) for _ in range(repeats)]
        baseline[threads] = statistics.median(wall for wall, _ in runs)
        baseline_cpu[threads] = statistics.median(cpu for _, cpu in runs)
    best_threads = min(baseline, key=baseline.get)
    ours_cpu = statistics.median(cpu for _, cpu in ours_runs)
    return {
        "tile": [tile.z, tile.x, tile.y], "scenes": len(scenes), "scenes_touching_tile": len(touching),
        "bands": list(BANDS), "workers": settings.onthefly_workers, "load_average": list(os.getloadavg()),
        "ours_ms": 1000 * statistics.median(ours),
        "mosaic_reader_median_ms": {str(k): 1000 * v for k, v in baseline.items()},
        "mosaic_reader_threads_used": best_threads,
        "ratio_mosaic_over_ours": baseline[best_threads] / statistics.median(ours),
        "ours_cpu_ms": 1000 * ours_cpu,
        "mosaic_reader_cpu_ms": {str(k): 1000 * v for k, v in baseline_cpu.items()},
        "cpu_ratio_mosaic_over_ours": min(baseline_cpu.values()) / ours_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="reuse (or create) the synthetic archive in this folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit 2 unless built <= 1.2x and on-the-fly >= 2x")
    args = parser.parse_args(argv)
    logging.getLogger("app.requests").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")

    with tempfile.TemporaryDirectory(prefix="bench-tiles-") as tmp:
        catalog, data = prepare(args.archive, Path(tmp))
        built = bench_built(catalog, data, args.repeats)
        onthefly = {f"z{z}": bench_onthefly(catalog, Path(tmp), args.repeats, z) for z in ONTHEFLY_ZOOMS}
    figures = {"built": built, "on_the_fly": onthefly}

    for name, row in built.items():
        print(f"built tile, {name:7s} ({row['tiles']} tiles z12-13): ours {row['ours_ms']:.1f} ms, plain TiTiler "
              f"{row['plain_titiler_ms']:.1f} ms -> ours / plain = {row['ratio_ours_over_plain']:.2f}")
    for row in onthefly.values():
        mosaic = row["mosaic_reader_median_ms"]
        print(f"on-the-fly tile z{row['tile'][0]}, {row['scenes']} scenes (of {row['scenes_touching_tile']}), 3 bands: "
              f"ours {row['ours_ms']:.0f} ms; mosaic_reader+MedianMethod "
              + ", ".join(f"{v:.0f} ms with {k} threads" for k, v in mosaic.items())
              + f" -> mosaic / ours = {row['ratio_mosaic_over_ours']:.2f} (CPU time: ours {row['ours_cpu_ms']:.0f} ms, "
              f"mosaic {min(row['mosaic_reader_cpu_ms'].values()):.0f} ms, ratio {row['cpu_ratio_mosaic_over_ours']:.2f}; "
              f"load average {row['load_average'][0]:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if args.check:
        ok = (built["1 band"]["ratio_ours_over_plain"] <= 1.2
              and all(row["ratio_mosaic_over_ours"] >= 2.0 for row in onthefly.values()))
        if not ok:
            print("ERROR: a goal is not met (built <= 1.2x plain TiTiler, on-the-fly >= 2x mosaic_reader)",
                  file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
