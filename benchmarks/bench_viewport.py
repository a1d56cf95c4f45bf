"""Viewport benchmark: 5 x 4 unbuilt tiles from ``s2seasons serve``, locally and through a slow HTTP link.

On the demo data (``s2seasons demo``: the synthetic archive, the west part of 2022-winter built at 100 m), a
viewport of 5 x 4 WebMercator tiles per zoom is chosen in the UNBUILT east part (centred on ``--centre``,
shifted to keep as many tiles as possible inside the unbuilt part of the archive) and asked from a real
``s2seasons serve`` child process as the viewer asks it (``/seasons/2022-winter/tiles/WebMercatorQuad/{z}/{x}/
{y}.png?preset=true-colour&statistic=p50``), with ``--connections`` keep-alive connections at once (one
httpx client per thread), tiles nearest the viewport's centre first. The server runs with the environment
``prepare_demo`` returns and ``S2SEASONS_TILE_CACHE_SIZE=0`` (rendering is measured, not the tile cache).

Scenarios, per zoom and link:

* ``first``: the first viewport of a server just started (a new server for it, at every zoom; the time
  from start to ``/healthz`` is reported beside it, not counted);
* ``warm``: another new server first serves the neighbouring viewport (``--pan``: the 5 x 4 tiles just west,
  or east, of it: what a user panning sees), then this viewport: new tiles, no rendered tile to reuse;
* ``repeat``: the same viewport again on that server (its composite and GDAL caches answer).

Links: ``local`` reads the archive's files; ``slow`` serves the archive through `benchmarks.slowlink`
(HTTP/1.1, ``--latency-ms`` per request, ``--bandwidth-mbit`` shared by all connections) and points the
server at a copy of the catalog whose hrefs are its URLs; requests, response bytes and new connections
are counted per viewport.

Baseline: the same tiles through rio-tiler's ``mosaic_reader`` + ``MedianMethod`` over the same scenes
(every scene touching the tile, as the server reads every scene of the blocks by default,
red/green/blue assets, no masking), rescaled 0-3000 and encoded as PNG, ``--connections`` tiles at a
time in threads, in a child process started for each scenario (cold GDAL caches as for the server).
Ratios are ours / baseline (below 1: ours is faster).

GDAL (``--gdal-variants``): the server is started with ``compositor.read.GDAL_ENV`` changed as a variant
says and the slow-link scenarios are measured at ``--variant-zooms``. Python's ``http.server`` has no
HTTP/2, so ``GDAL_HTTP_MULTIPLEX`` and ``GDAL_HTTP_VERSION=2`` cannot change anything here.

    .venv/bin/python benchmarks/bench_viewport.py [--link both] [--zooms 9,10,11,12] [--json FILE]
    .venv/bin/python benchmarks/bench_viewport.py --quick           # smoke test: z11-z12, no variants
    .venv/bin/python benchmarks/bench_viewport.py --link slow --zooms 11,12 --gdal-variants all --no-baseline

Timings depend on what else runs on the machine: the load average is recorded with every row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import morecantile

from benchmarks.slowlink import LinkCounts, SlowLinkServer, rewrite_catalog
from compositor.testing.demo import (DEMO_BBOX_4326, DEMO_BLOCK_PX, DEMO_BUILD_BBOX_4326, DEMO_RESOLUTION_M, DEMO_SEASON,
                             prepare_demo)

TMS = morecantile.tms.get("WebMercatorQuad")
VIEWPORT_COLS, VIEWPORT_ROWS = 5, 4
UNBUILT_BBOX_4326 = (DEMO_BUILD_BBOX_4326[2], DEMO_BBOX_4326[1], DEMO_BBOX_4326[2], DEMO_BBOX_4326[3])
TILE_QUERY = "preset=true-colour&statistic=p50"  # the viewer's default layer
BASELINE_BANDS = ("red", "green", "blue")
GOALS_S = {("warm", "local"): 2.0, ("warm", "slow"): 5.0, ("first", "local"): 5.0}

# GDAL variants: keys set (None: removed) in compositor.read.GDAL_ENV of the server (and of the baseline).
GDAL_VARIANTS: dict[str, dict[str, str | int | None]] = {
    "current": {},
    "no-merge": {"GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "NO"},
    "ingest-64k": {"GDAL_INGESTED_BYTES_AT_OPEN": 65536},
    "chunk-64k": {"CPL_VSIL_CURL_CHUNK_SIZE": 65536},
    "caches": {"CPL_VSIL_CURL_CACHE_SIZE": 256 << 20, "VSI_CACHE_SIZE": 64 << 20, "GDAL_CACHEMAX": 512},
    "multirange-serial": {"GDAL_HTTP_MULTIRANGE": "SERIAL"},
    "http2": {"GDAL_HTTP_VERSION": "2", "GDAL_HTTP_MULTIPLEX": "YES"},
}
_PATCHED_CLI = (
    "import json, os, sys\n"
    "import compositor.read as read\n"
    "for key, value in json.loads(os.environ['BENCH_GDAL_ENV_PATCH']).items():\n"
    "    read.GDAL_ENV.pop(key, None) if value is None else read.GDAL_ENV.__setitem__(key, value)\n"
    "from app.cli import run\n"
    "sys.argv[0] = 's2seasons'\n"
    "run()\n"
)


CODE_DIR = Path(__file__).resolve().parent.parent  # the code the server and the baseline run (--code-dir)


def code_env() -> dict[str, str]:
    return {**os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(CODE_DIR), os.environ.get("PYTHONPATH")]))}


def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- viewport tiles

@dataclass(frozen=True)
class Viewport:
    zoom: int
    x0: int  # west column
    y0: int  # north row

    @property
    def tiles(self) -> list[morecantile.Tile]:
        """The 5 x 4 tiles, nearest the viewport's centre first (as Leaflet asks them)."""
        cx, cy = self.x0 + VIEWPORT_COLS / 2, self.y0 + VIEWPORT_ROWS / 2
        tiles = [morecantile.Tile(x, y, self.zoom) for y in range(self.y0, self.y0 + VIEWPORT_ROWS)
                 for x in range(self.x0, self.x0 + VIEWPORT_COLS)]
        return sorted(tiles, key=lambda t: ((t.x + 0.5 - cx) ** 2 + (t.y + 0.5 - cy) ** 2, t.y, t.x))

    def bounds_4326(self) -> tuple[float, float, float, float]:
        west, north = TMS.ul(morecantile.Tile(self.x0, self.y0, self.zoom))
        east, south = TMS.ul(morecantile.Tile(self.x0 + VIEWPORT_COLS, self.y0 + VIEWPORT_ROWS, self.zoom))
        return west, south, east, north

    def neighbour(self, direction: str) -> Viewport:
        step = {"west": -VIEWPORT_COLS, "east": VIEWPORT_COLS}[direction]
        return Viewport(self.zoom, self.x0 + step, self.y0)

    def describe(self) -> str:
        w, s, e, n = self.bounds_4326()
        return (f"z{self.zoom} x {self.x0}-{self.x0 + VIEWPORT_COLS - 1}, y {self.y0}-{self.y0 + VIEWPORT_ROWS - 1} "
                f"(lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f})")


def _inside(tile: morecantile.Tile, bbox: tuple[float, float, float, float]) -> bool:
    b = TMS.bounds(tile)
    return b.left >= bbox[0] and b.bottom >= bbox[1] and b.right <= bbox[2] and b.top <= bbox[3]


def choose_viewport(zoom: int, centre_4326: tuple[float, float],
                    inside_4326: tuple[float, float, float, float] = UNBUILT_BBOX_4326) -> Viewport:
    """The 5 x 4 tiles holding the centre's tile with the most tiles inside ``inside_4326``, then the one
    whose centre is nearest ``centre_4326``."""
    centre = TMS.tile(*centre_4326, zoom)
    cx, cy = TMS.xy(*centre_4326)

    def score(v: Viewport) -> tuple[int, float]:
        w, s, e, n = TMS.xy_bounds(morecantile.Tile(v.x0, v.y0, zoom))
        tile_w, tile_h = e - w, n - s
        mx, my = w + tile_w * VIEWPORT_COLS / 2, n - tile_h * VIEWPORT_ROWS / 2
        return -sum(_inside(t, inside_4326) for t in v.tiles), (mx - cx) ** 2 + (my - cy) ** 2

    candidates = [Viewport(zoom, centre.x - dx, centre.y - dy) for dx in range(VIEWPORT_COLS)
                  for dy in range(VIEWPORT_ROWS)]
    return min(candidates, key=score)


# ---------------------------------------------------------------- demo data and servers

def demo_env(folder: Path) -> dict[str, str]:
    """The environment of the demo's server; generates and builds the demo once (reused after)."""
    data, catalog = folder / "data", folder / "archive" / "catalog.json"
    if catalog.exists() and (data / DEMO_SEASON / "season.json").exists():
        return {"S2SEASONS_DATA_DIR": str(data.resolve()), "S2SEASONS_CATALOG": str(catalog.resolve()),
                "S2SEASONS_RESOLUTION_M": str(DEMO_RESOLUTION_M), "S2SEASONS_BLOCK_SIZE_PX": str(DEMO_BLOCK_PX)}
    log(f"preparing the demo data in {folder} (once; about 2 minutes) ...")
    return prepare_demo(folder, echo=log)


def server_cli(variant: str) -> list[str]:
    if variant == "current":
        script = Path(sys.executable).parent / "s2seasons"
        return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
    return [sys.executable, "-c", _PATCHED_CLI]


@contextlib.contextmanager
def server(env: dict[str, str], catalog: str, variant: str, log_file: Path) -> Iterator[tuple[str, float]]:
    """``s2seasons serve`` on a free loopback port; yields its URL and the seconds it took to answer /healthz."""
    from compositor.testing.serving import serve_process

    repo = CODE_DIR
    full_env = {**env, "S2SEASONS_TILE_CACHE_SIZE": "0", "S2SEASONS_CATALOG": catalog,
                "BENCH_GDAL_ENV_PATCH": json.dumps(GDAL_VARIANTS[variant]),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    with serve_process(server_cli(variant), Path(env["S2SEASONS_DATA_DIR"]), catalog, log_file, env=full_env,
                       cwd=repo, start_timeout_s=120) as (base, _process):
        yield base, time.perf_counter() - started


class TileClient:
    """``connections`` threads, each with its own keep-alive HTTP client to one server."""

    def __init__(self, base: str, connections: int) -> None:
        import httpx

        self.base = base
        self._clients: queue.Queue = queue.Queue()
        for _ in range(connections):
            self._clients.put(httpx.Client(base_url=base, timeout=180.0, trust_env=False))
        self._pool = ThreadPoolExecutor(connections, thread_name_prefix="tiles")

    def _get(self, tile: morecantile.Tile) -> tuple[int, str, float]:
        client = self._clients.get()
        try:
            start = time.perf_counter()
            url = f"/seasons/{DEMO_SEASON}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png?{TILE_QUERY}"
            response = client.get(url)
            return response.status_code, response.headers.get("x-s2seasons-source", "-"), time.perf_counter() - start
        except Exception as exc:  # a broken connection is a result too
            return 0, type(exc).__name__, time.perf_counter() - start
        finally:
            self._clients.put(client)

    def viewport(self, tiles: list[morecantile.Tile]) -> dict:
        start = time.perf_counter()
        answers = list(self._pool.map(self._get, tiles))
        wall = time.perf_counter() - start
        statuses = Counter(status for status, _, _ in answers)
        return {"seconds": wall, "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "sources": dict(Counter(source for _, source, _ in answers)),
                "slowest_tile_s": max(s for _, _, s in answers),
                "non_200": [f"{t.z}/{t.x}/{t.y}: {status}" for t, (status, _, _) in zip(tiles, answers) if status != 200]}

    def close(self) -> None:
        self._pool.shutdown()
        while not self._clients.empty():
            self._clients.get().close()


def measured(link: SlowLinkServer | None, call) -> dict:
    before = link.stats.snapshot() if link else LinkCounts()
    result = call()
    if link:
        result["traffic"] = (link.stats.snapshot() - before).as_dict()
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def run_ours(env: dict[str, str], catalog: str, variant: str, view: Viewport, pan: str, connections: int,
             link: SlowLinkServer | None, work: Path) -> dict[str, dict]:
    """first, warm (after the pan viewport) and repeat of ``view`` on new servers."""
    results = {}
    tiles, pan_tiles = view.tiles, view.neighbour(pan).tiles
    with server(env, catalog, variant, work / f"serve-z{view.zoom}-first.log") as (base, start_s):
        client = TileClient(base, connections)
        try:
            results["first"] = {**measured(link, lambda: client.viewport(tiles)), "server_start_s": start_s}
        finally:
            client.close()
    with server(env, catalog, variant, work / f"serve-z{view.zoom}-warm.log") as (base, start_s):
        client = TileClient(base, connections)
        try:
            results["pan"] = measured(link, lambda: client.viewport(pan_tiles))
            results["warm"] = measured(link, lambda: client.viewport(tiles))
            results["repeat"] = measured(link, lambda: client.viewport(tiles))
        finally:
            client.close()
    return results


# ---------------------------------------------------------------- baseline: rio-tiler's mosaic_reader

def run_baseline(catalog: str, variant: str, view: Viewport, pan: str, connections: int, threads: int,
                 link: SlowLinkServer | None) -> dict[str, dict]:
    """The scenarios of `run_ours` through ``mosaic_reader`` + ``MedianMethod`` in new child processes."""
    plans = {"first": [("first", view)], "warm": [("pan", view.neighbour(pan)), ("warm", view), ("repeat", view)]}
    results = {}
    for plan in plans.values():
        job = {"catalog": catalog, "variant": variant, "connections": connections, "threads": threads,
               "viewports": [[name, [list(t) for t in v.tiles]] for name, v in plan]}
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--baseline-worker",
                                    json.dumps(job)], stdout=subprocess.PIPE, text=True, env=code_env(), cwd=CODE_DIR)
        before = LinkCounts()
        for line in process.stdout:
            if line.startswith("START "):
                before = link.stats.snapshot() if link else LinkCounts()
            elif line.startswith("DONE "):
                name, row = json.loads(line[5:])
                if link:
                    row["traffic"] = (link.stats.snapshot() - before).as_dict()
                row["load_average"] = round(os.getloadavg()[0], 2)
                results[name] = row
        if process.wait() != 0:
            raise RuntimeError(f"the baseline worker failed with {process.returncode}")
    return results


def baseline_worker(job: dict) -> int:
    """In a child process: each viewport of ``job`` through mosaic_reader; prints START/DONE lines."""
    import rasterio
    from rio_tiler.errors import EmptyMosaicError
    from rio_tiler.io import Reader
    from rio_tiler.models import ImageData
    from rio_tiler.mosaic import mosaic_reader
    from rio_tiler.mosaic.methods.defaults import MedianMethod
    from shapely.geometry import box

    import compositor.read as read
    from compositor.catalog import load_scenes
    from compositor.seasons import resolve_season

    warnings.simplefilter("ignore")
    for key, value in GDAL_VARIANTS[job["variant"]].items():
        read.GDAL_ENV.pop(key, None) if value is None else read.GDAL_ENV.__setitem__(key, value)
    scenes = load_scenes(job["catalog"], DEMO_BBOX_4326, resolve_season(DEMO_SEASON, {}))

    def read_scene(scene, x, y, z, **kwargs) -> ImageData:
        with rasterio.Env(**read.GDAL_ENV):
            images = []
            for band in BASELINE_BANDS:
                with Reader(scene.hrefs[band]) as src:
                    images.append(src.tile(x, y, z))
        return ImageData.create_from_list(images)

    def one_tile(xyz: list[int]) -> tuple[str, int]:
        x, y, z = xyz
        area = box(*TMS.bounds(morecantile.Tile(x, y, z)))
        touching = sorted((s for s in scenes if s.footprint.intersects(area)),
                          key=lambda s: (s.cloud_cover if s.cloud_cover is not None else 101.0, s.datetime, s.id))
        chosen = touching
        if not chosen:
            return "no scene", 0
        try:
            image, _ = mosaic_reader(chosen, read_scene, x, y, z, pixel_selection=MedianMethod(), threads=job["threads"])
        except EmptyMosaicError:
            return "empty", len(chosen)
        image.rescale(((0, 3000),)).render(img_format="PNG")
        return "ok", len(chosen)

    with ThreadPoolExecutor(job["connections"]) as pool:
        for name, tiles in job["viewports"]:
            print("START", flush=True)
            start = time.perf_counter()
            answers = list(pool.map(one_tile, tiles))
            wall = time.perf_counter() - start
            row = {"seconds": wall, "tiles": dict(Counter(a for a, _ in answers)),
                   "scenes_per_tile": max(n for _, n in answers)}
            print("DONE " + json.dumps([name, row]), flush=True)
    return 0


# ---------------------------------------------------------------- the run

def _fmt_link(row: dict) -> str:
    counts = row.get("traffic")
    if not counts:
        return ""
    return f"{counts['requests']} req, {counts['bytes'] / 1e6:.1f} MB, {counts['connections']} conn"


def print_table(rows: list[dict]) -> None:
    header = (f"{'zoom':>4} {'scenario':8} {'link':5} {'variant':17} {'ours s':>7} {'answers':22} "
              f"{'link traffic (ours)':30} {'mosaic_reader s':>15} {'ours/base':>9}")
    log("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        base = r.get("baseline_s")
        ratio = f"{r['seconds'] / base:9.2f}" if base else f"{'':9}"
        answers = ",".join(f"{k}x{v}" for k, v in r["statuses"].items()) + " " + \
            ",".join(f"{k[:5]}{v}" for k, v in sorted(r["sources"].items()))
        log(f"{r['zoom']:>4} {r['scenario']:8} {r['link']:5} {r['variant']:17} {r['seconds']:7.2f} {answers:22.22} "
            f"{_fmt_link(r):30} {(f'{base:15.2f}' if base else ''):>15} {ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Viewport benchmark: 5 x 4 unbuilt tiles per zoom from `s2seasons serve` (first view, warm, "
                    "repeat), locally and through a slow HTTP link, against rio-tiler's mosaic_reader + MedianMethod.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="GDAL variants (keys set in compositor.read.GDAL_ENV of the server and baseline):\n"
               + "".join(f"  {name}: {json.dumps(keys)}\n" for name, keys in GDAL_VARIANTS.items())
               + "Timings depend on the other load of the machine (the load average is recorded per row).")
    parser.add_argument("--demo-dir", type=Path, default=Path(".bench/demo"),
                        help="demo data folder: reused when it holds the archive and the built season, else "
                             "generated there (`s2seasons demo --no-serve --dir`; default .bench/demo)")
    parser.add_argument("--zooms", default="9,10,11,12", help="comma-separated WebMercator zooms (default 9,10,11,12)")
    parser.add_argument("--link", choices=("local", "slow", "both"), default="both",
                        help="read the archive's files directly (local), through the slow HTTP link, or both")
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="slow link: added before every HTTP answer (default 50)")
    parser.add_argument("--bandwidth-mbit", type=float, default=100.0,
                        help="slow link: Mbit/s shared by all connections, 0 for no cap (default 100)")
    parser.add_argument("--connections", type=int, default=6, help="concurrent tile requests (default 6, as a browser)")
    parser.add_argument("--centre", default="12.4,47.9", help="lon,lat the viewport is centred on (default 12.4,47.9)")
    parser.add_argument("--pan", choices=("west", "east"), default="west",
                        help="where the viewport served before 'warm' lies (default west: panning east from the "
                             "built part)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip rio-tiler's mosaic_reader baseline")
    parser.add_argument("--baseline-zooms", default="",
                        help="zooms where the baseline runs (default: every zoom of --zooms; it is slow: about "
                             "35 s per viewport locally on 2 cores)")
    parser.add_argument("--baseline-threads", type=int, default=10,
                        help="mosaic_reader threads per tile (default 10, rio-tiler's MAX_THREADS on 2 cores)")
    parser.add_argument("--gdal-variants", default="",
                        help="comma-separated GDAL variants measured through the slow link at --variant-zooms, or "
                             f"'all' ({', '.join(GDAL_VARIANTS)}); 'current' is compositor.read.GDAL_ENV as it is")
    parser.add_argument("--variant-zooms", default="12,11", help="zooms of the GDAL variants (default 12,11)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: zooms 11 and 12, no GDAL variants (other options still apply)")
    parser.add_argument("--work-dir", type=Path,
                        help="server logs and the rewritten catalog (default: a temporary folder)")
    parser.add_argument("--code-dir", type=Path,
                        help="run the server and the baseline from this copy of the code (e.g. `git archive HEAD | "
                             "tar -x -C DIR` to measure a commit while the work tree changes); default: this one")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write every result as JSON")
    parser.add_argument("--baseline-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_worker:
        return baseline_worker(json.loads(args.baseline_worker))

    global CODE_DIR
    if args.code_dir:
        CODE_DIR = args.code_dir.resolve()
    zooms = [11, 12] if args.quick else [int(z) for z in args.zooms.split(",")]
    names = list(GDAL_VARIANTS) if args.gdal_variants == "all" else [v for v in args.gdal_variants.split(",") if v]
    if args.quick:
        names = []
    unknown = [v for v in names if v not in GDAL_VARIANTS]
    if unknown:
        parser.error(f"unknown GDAL variants {unknown}; known: {', '.join(GDAL_VARIANTS)}")
    baseline_zooms = [int(z) for z in args.baseline_zooms.split(",") if z] or zooms
    links = ["local", "slow"] if args.link == "both" else [args.link]
    centre = tuple(float(v) for v in args.centre.split(","))
    env = demo_env(args.demo_dir)
    archive = Path(env["S2SEASONS_CATALOG"]).parent

    views = {z: choose_viewport(z, centre) for z in zooms}
    for z, v in views.items():
        inside = sum(_inside(t, UNBUILT_BBOX_4326) for t in v.tiles)
        log(f"viewport {v.describe()}: {inside}/20 tiles inside the unbuilt part {UNBUILT_BBOX_4326}; "
            f"pan viewport ({args.pan}) {v.neighbour(args.pan).describe()}")
        log("  tiles: " + " ".join(f"{t.x}/{t.y}" for t in v.tiles))

    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-viewport-")))
        work.mkdir(parents=True, exist_ok=True)
        work = work.resolve()
        for link_name in links:
            link = None
            catalog = env["S2SEASONS_CATALOG"]
            if link_name == "slow":
                link = stack.enter_context(SlowLinkServer(archive, latency_ms=args.latency_ms,
                                                          bandwidth_mbit=args.bandwidth_mbit))
                catalog = str(work / "catalog-http.json")
                n = rewrite_catalog(Path(env["S2SEASONS_CATALOG"]), Path(catalog), link.url, archive)
                log(f"slow link on {link.url}: {args.latency_ms:g} ms per request, {args.bandwidth_mbit:g} Mbit/s "
                    f"shared by all connections, HTTP/1.1 (no HTTP/2); {n} hrefs rewritten into {catalog}")
            variants = ["current"] + ([v for v in names if v != "current"] if link_name == "slow" else [])
            for variant in variants:
                variant_zooms = zooms if variant == "current" else [int(z) for z in args.variant_zooms.split(",")]
                for z in variant_zooms:
                    view = views.get(z) or choose_viewport(z, centre)
                    log(f"[{link_name}, {variant}] z{z}: our server ...")
                    ours = run_ours(env, catalog, variant, view, args.pan, args.connections, link, work)
                    base = {}
                    if args.baseline and variant == "current" and z in baseline_zooms:
                        log(f"[{link_name}, {variant}] z{z}: mosaic_reader + MedianMethod ...")
                        base = run_baseline(catalog, variant, view, args.pan, args.connections,
                                            args.baseline_threads, link)
                    for scenario, row in ours.items():
                        b = base.get(scenario, {})
                        row.update(zoom=z, scenario=scenario, link=link_name, variant=variant,
                                   baseline_s=b.get("seconds"), baseline=b or None,
                                   tiles=[list(t) for t in (view.neighbour(args.pan) if scenario == "pan" else view).tiles])
                        rows.append(row)
                        extra = f", start {row['server_start_s']:.1f} s" if "server_start_s" in row else ""
                        log(f"  z{z} {scenario:6s} {link_name:5s} {variant}: {row['seconds']:.2f} s{extra}, "
                            f"{row['statuses']} {row['sources']} {_fmt_link(row)}"
                            + (f"; mosaic_reader {b['seconds']:.2f} s {b['tiles']} {_fmt_link(b)}" if b else "")
                            + (f"; NON-200: {row['non_200']}" if row["non_200"] else ""))
    print_table(rows)
    failures = [f"z{r['zoom']} {r['scenario']} {r['link']} {r['variant']}: {r['non_200']}" for r in rows if r["non_200"]]
    for (scenario, link_name), goal in GOALS_S.items():
        for r in rows:
            if r["scenario"] == scenario and r["link"] == link_name and r["variant"] == "current" and r["seconds"] > goal:
                log(f"goal missed: z{r['zoom']} {scenario} {link_name} {r['seconds']:.2f} s > {goal:g} s")
    if failures:
        log("non-200 answers:\n  " + "\n  ".join(failures))
    if args.json:
        args.json.write_text(json.dumps({
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k != "baseline_worker"},
            "viewports": {str(z): v.describe() for z, v in views.items()},
            "gdal_variants": {v: GDAL_VARIANTS[v] for v in ["current", *names]},
            "cpu_count": os.cpu_count(), "rows": rows}, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
