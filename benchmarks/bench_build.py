"""Build throughput at the real resolution: blocks per hour per core, and CPU-hours for Europe.

Generates a synthetic archive with real 10 m / 20 m pixels over a small region (every block the
build touches, whole, so that each output pixel has observations), builds one season at 30 m in
EPSG:3035 with one worker process, and measures seconds per block: of the whole run, and of the
blocks alone (without what a run pays once: planning, the season's overview, VRTs and STAC; the
compiled kernels are loaded before timing, as each worker loads them once). From the whole run's
time per output pixel and per scene read it extrapolates to the product's 2048 px blocks and to
one season of Europe (assumptions printed with the figures).

    python -m benchmarks.bench_build [--json out.json] [--archive DIR] [--profile [FILE]]
    python -m benchmarks.bench_build --show-profile FILE      # the table of a profile kept before

``--profile`` prints two views of where the build's time goes:

* CPU by phase: the CPU time of the thread running each phase (reading and warping bands, judging
  SCL footprints, percentiles, blending, writing strips and COGs). These shares add up to the
  build's CPU time: quote them.
* py-spy's samples (native frames included: GDAL, PROJ, sqlite, zlib): the functions with the most
  samples, by their own time and with what they call, to see what happens inside a phase, and the
  library each sample's own frame runs in (libgdal: warping; libtiff, libdeflate: decoding; numpy;
  numba's kernels; Python), overall and inside the band reads. Threads that wait on a lock, a queue
  or the progress bar are left out, but a sample is not CPU: a thread blocked in a file read or on
  PROJ's database counts too.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SEASON = "2022-summer"
BBOX = (11.95, 47.86, 12.05, 47.92)  # about 7.5 x 6.7 km, seen by orbits 22 and 65 (real tracks), two UTM zones
BLOCK_PX = 256
RESOLUTION_M = 30.0

# Europe, for the extrapolation (stated in the README): EU27 + UK + EFTA + Western Balkans + Ukraine
# west of 40 E land area, and the mean number of scenes read per block per season (acquisitions of
# 2-3 overlapping relative orbits every 5 days over an 80-day season, read from 1-2 MGRS tiles).
EUROPE_LAND_KM2 = 6.2e6
SCENES_PER_BLOCK_EUROPE = 75
PRODUCT_BLOCK_PX = 2048


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--archive", type=Path,
                        help="keep the synthetic 10 m archive in this folder and reuse it when it is there "
                             "(generating it takes about 3 minutes); default: a temporary folder")
    parser.add_argument("--profile", nargs="?", type=Path, const=True, default=None, metavar="FILE",
                        help="sample the build with py-spy (pip install py-spy; needs ptrace rights, e.g. root) "
                             "and print the top entries, native frames included; with FILE, also keep the "
                             "collapsed stacks there (for flamegraph.pl, speedscope or --show-profile)")
    parser.add_argument("--show-profile", type=Path, metavar="FILE",
                        help="print the table of a profile kept with --profile FILE, and run nothing")
    parser.add_argument("--top", type=int, default=25, help="entries shown by --profile (default 25)")
    args = parser.parse_args()
    if args.show_profile:
        print_profile(args.show_profile.read_text(), args.top)
        return 0
    if args.profile is not None and not _py_spy():
        print("--profile needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    from compositor.build import run_build
    from compositor.kernels import load_kernels
    from compositor.settings import Settings
    from compositor.testing.synthetic import generate_archive

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = args.archive or root / "archive"
        region = archive_bbox()
        marker = archive / "bench_build.json"
        if (archive / "catalog.json").exists() and (
                not marker.exists() or json.loads(marker.read_text()).get("bbox_4326") != list(region)):
            print(f"{archive} holds another archive than this benchmark's: give an empty folder to --archive",
                  file=sys.stderr)
            return 2
        if not (archive / "catalog.json").exists():
            started = time.perf_counter()
            print(f"generating the synthetic archive at 10 m over {region} (about 3 minutes) ...", flush=True)
            generate_archive(archive, seasons=(SEASON,), bbox_4326=region, pixel_size_m=10.0,
                             truth_resolution_m=RESOLUTION_M, workers=2)
            marker.write_text(json.dumps({"bbox_4326": list(region)}))
            print(f"archive at 10 m written in {time.perf_counter() - started:.0f} s", flush=True)
        settings = Settings(data_dir=root / "data", catalog=str(archive / "catalog.json"),
                            resolution_m=RESOLUTION_M, block_size_px=BLOCK_PX, max_cloud_cover=100)
        profile_out = None if args.profile is None else (
            root / "profile.txt" if args.profile is True else args.profile)
        phases = _phase_clock() if args.profile is not None else contextlib.nullcontext(None)
        load_kernels()
        with phases as clock, _sampled(profile_out, args.top), _block_clock() as blocks_cpu:
            started, cpu_started = time.perf_counter(), time.process_time()
            summary = run_build(settings, SEASON, BBOX, workers=1, progress=False)  # in this process
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        with_data = _share_with_data(root / "data")
    if args.profile is not None:
        clock.report(cpu_seconds, sum(blocks_cpu))
    built = [r for r in summary.results if r.status == "built"]
    if not built or summary.failed:
        print(summary.describe())
        return 1
    # CPU time (all threads of this process: numba and GDAL reads) per block: the figure per core.
    block_seconds = cpu_seconds / len(built)
    scenes = sum(r.n_scenes for r in built) / len(built)

    def per_scene_per_mpx(seconds_per_block: float) -> float:  # s per scene per output megapixel
        return seconds_per_block / scenes / (BLOCK_PX**2 / 1e6)

    per_scene_mpx = per_scene_per_mpx(block_seconds)
    # The same of the blocks alone: without what a run pays once (planning, the season's overview,
    # VRTs and STAC), which this benchmark's four blocks carry and a season of Europe spreads thin.
    blocks_only = sum(blocks_cpu) / len(built)
    per_scene_mpx_blocks = per_scene_per_mpx(blocks_only)
    product_block_s = per_scene_mpx * SCENES_PER_BLOCK_EUROPE * PRODUCT_BLOCK_PX**2 / 1e6
    block_km2 = (PRODUCT_BLOCK_PX * RESOLUTION_M / 1000) ** 2
    n_blocks = EUROPE_LAND_KM2 / block_km2
    figures = {
        "measured": {"blocks": len(built), "block_px": BLOCK_PX, "resolution_m": RESOLUTION_M,
                     "mean_scenes_per_block": round(scenes, 1), "cpu_seconds_per_block": round(block_seconds, 2),
                     "wall_seconds_per_block": round(sum(r.seconds for r in built) / len(built), 2),
                     "blocks_per_hour_per_core": round(3600 / block_seconds, 1),
                     "seconds_per_scene_per_output_mpx": round(per_scene_mpx, 4), "total_seconds": round(seconds, 1),
                     "block_cpu_seconds_per_block": round(blocks_only, 2),
                     "block_seconds_per_scene_per_output_mpx": round(per_scene_mpx_blocks, 4),
                     "run_fixed_cpu_seconds": round(cpu_seconds - sum(blocks_cpu), 2),
                     "share_of_output_pixels_with_data": round(with_data, 3)},
        "europe": {"land_km2": EUROPE_LAND_KM2, "block_px": PRODUCT_BLOCK_PX, "block_km2": round(block_km2),
                   "blocks": round(n_blocks), "scenes_per_block": SCENES_PER_BLOCK_EUROPE,
                   "seconds_per_block": round(product_block_s), "blocks_per_hour_per_core": round(3600 / product_block_s, 2),
                   "cpu_hours_per_season": round(n_blocks * product_block_s / 3600)},
    }
    m, e = figures["measured"], figures["europe"]
    print(f"measured: {m['blocks']} blocks of {BLOCK_PX} px at 30 m, {m['mean_scenes_per_block']} scenes each: "
          f"{m['cpu_seconds_per_block']} CPU-s per block = {m['blocks_per_hour_per_core']} blocks/hour/core "
          f"({m['seconds_per_scene_per_output_mpx']} s per scene per output megapixel; "
          f"{100 * m['share_of_output_pixels_with_data']:.1f} % of the output pixels have observations)")
    print(f"blocks alone: {m['block_cpu_seconds_per_block']} CPU-s per block, "
          f"{m['block_seconds_per_scene_per_output_mpx']} s per scene per output megapixel; the run's own costs "
          f"(planning, season overview, VRTs, STAC): {m['run_fixed_cpu_seconds']} CPU-s in all")
    print(f"Europe: {e['blocks']} blocks of {PRODUCT_BLOCK_PX} px ({e['block_km2']} km2) x {e['scenes_per_block']} scenes: "
          f"{e['seconds_per_block']} s per block, {e['blocks_per_hour_per_core']} blocks/hour/core, "
          f"{e['cpu_hours_per_season']} CPU-hours per season")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


def archive_bbox() -> tuple[float, float, float, float]:
    """The archive's region: every block the build touches, whole (plus 0.002 degrees), so that every
    output pixel has scenes with data under it (the archive holds pixels only inside its region; over
    ``BBOX`` alone, three quarters of the blocks' pixels had none and cost little)."""
    import shapely

    from compositor.grid import OutputGrid

    blocks = OutputGrid("EPSG:3035", RESOLUTION_M, BLOCK_PX).blocks_for_bbox(BBOX)
    west, south, east, north = shapely.union_all([b.footprint_4326() for b in blocks]).bounds
    return (round(west - 0.002, 4), round(south - 0.002, 4), round(east + 0.002, 4), round(north + 0.002, 4))


def _share_with_data(data: Path) -> float:
    """Share of the built blocks' pixels with at least one valid observation (red count > 0)."""
    import rasterio

    counts = [p for p in data.rglob("*_red_count_*.tif") if "blocks" in p.parts]
    total = with_data = 0
    for path in counts:
        with rasterio.open(path) as src:
            count = src.read(1)
        total += count.size
        with_data += int((count > 0).sum())
    return with_data / total if total else 0.0


def _py_spy() -> str | None:
    """py-spy beside this Python (the venv's, when it is not activated), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def _sampled(out: Path | None, top: int) -> Iterator[None]:
    """With ``out``, py-spy samples this process (all threads, native frames) while the block runs."""
    if out is None:
        yield
        return
    spy = subprocess.Popen([_py_spy(), "record", "--pid", str(os.getpid()), "--native", "--rate", "100",
                            "--format", "raw", "--output", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        _, err = spy.communicate(timeout=60)
        if not out.exists():
            print(f"py-spy wrote no profile: {err.strip()[-500:]}", file=sys.stderr)
        else:
            print_profile(out.read_text(), top)


# The build's phases, timed by the CPU time of the thread that runs them (module, function, name).
PHASES = (
    ("compositor.composite", "read_warped_bands", "read and warp bands"),
    ("compositor.composite", "read_warped", "read and warp bands"),  # the code before bands were stacked
    ("compositor.composite", "read_scl_footprint", "read and judge SCL footprints"),
    ("compositor.composite", "percentiles_by_orbit", "percentiles"),
    ("compositor.composite", "percentiles_and_count", "percentiles"),
    ("compositor.composite", "blend_orbits", "blend orbits"),
    ("compositor.composite", "window_weights", "blend weights"),
    ("compositor.composite", "store_masked", "mask and store layers"),
    ("compositor.block", "check_offsets", "offset checks"),
    ("compositor.block", "to_dn", "write strips"),
    ("compositor.block", "write_strip", "write strips"),
    ("compositor.block", "open_strip_writer", "write strips"),
    ("compositor.block", "translate_to_cog", "write COGs"),
)


@contextlib.contextmanager
def _block_clock() -> Iterator[list[float]]:
    """Process CPU seconds of each block build (blocks run one after another in this process)."""
    import compositor.runner as runner

    spent: list[float] = []
    build_block = runner.build_block

    def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        started = time.process_time()
        try:
            return build_block(*args, **kwargs)
        finally:
            spent.append(time.process_time() - started)

    runner.build_block = timed
    try:
        yield spent
    finally:
        runner.build_block = build_block


class _PhaseClock:
    """Thread CPU seconds spent in each phase (wrapped functions; nested calls are not counted twice)."""

    def __init__(self) -> None:
        import threading
        self.seconds: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._inside = threading.local()

    def wrap(self, name: str, fn):  # noqa: ANN001, ANN201
        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if getattr(self._inside, "busy", False):
                return fn(*args, **kwargs)
            self._inside.busy = True
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                self._inside.busy = False
                with self._lock:
                    self.seconds[name] += spent
        return timed

    def report(self, cpu_seconds: float, blocks_seconds: float) -> None:
        print(f"CPU by phase (thread CPU time, {cpu_seconds:.1f} CPU-s in all, {blocks_seconds:.1f} in the blocks; "
              "% of the blocks'):")
        for name, spent in self.seconds.most_common():
            print(f"{100 * spent / blocks_seconds:6.1f} %  {spent:7.2f} s  {name}")
        rest = blocks_seconds - sum(self.seconds.values())
        print(f"{100 * rest / blocks_seconds:6.1f} %  {rest:7.2f} s  everything else in the blocks (Python between "
              "phases, manifests, installing)")
        print(f"          {cpu_seconds - blocks_seconds:7.2f} s  the run's own (planning, season overview, VRTs, STAC)")


@contextlib.contextmanager
def _phase_clock() -> Iterator[_PhaseClock]:
    import importlib
    clock = _PhaseClock()
    originals = []
    for module_name, attr, name in PHASES:
        module = importlib.import_module(module_name)
        if not hasattr(module, attr):  # another version of the code: a phase it does not have
            continue
        originals.append((module, attr, getattr(module, attr)))
        setattr(module, attr, clock.wrap(name, getattr(module, attr)))
    try:
        yield clock
    finally:
        for module, attr, fn in originals:
            setattr(module, attr, fn)


# Frames of a thread that waits, not works: such samples are not busy time.
WAITING = ("Condition.wait", "Event.wait", "_queue_SimpleQueue_get", "lock_PyThread_acquire_lock", "TMonitor.run",
           "pthread_cond_wait", "pthread_cond_timedwait", "Thread.join", "select", "epoll_wait", "poll", "time_sleep")


def print_profile(collapsed: str, top: int) -> None:
    """The busiest functions of a py-spy ``raw`` (collapsed stacks) profile, by self and total samples."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    by_library: collections.Counter[str] = collections.Counter()  # the library of each busy sample's own frame
    in_reads: collections.Counter[str] = collections.Counter()  # the same, of samples inside the band reads
    samples = waiting = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r" \(.*\)$", "", f) for f in stack.split(";")[1:]]  # drop the thread frame
        if not frames:
            continue
        if any(f in WAITING for f in frames):
            waiting += n
            continue
        samples += n
        own[frames[-1]] += n
        library = _library(stack.rpartition(";")[2])
        by_library[library] += n
        if "read_warped_bands" in frames or "read_warped" in frames:
            in_reads[library] += n
        for name in set(frames):
            total[name] += n
    if not samples:
        print("profile: no busy samples")
        return
    print(f"profile: {samples} busy samples (100 per second, all threads; {waiting} samples of waiting threads "
          "left out)")
    print(f"{'own %':>6} {'total %':>8}  function")
    for name, n in own.most_common(top):
        print(f"{100 * n / samples:6.1f} {100 * total[name] / samples:8.1f}  {name}")
    print(f"{'total %':>8}  function (most inclusive, outside the interpreter's own frames)")
    shown = 0
    for name, n in total.most_common():
        if name.startswith(("_Py", "Py", "<module>", "run_build", "main", "_bootstrap", "_PhaseClock")) or n == samples:
            continue
        print(f"{100 * n / samples:8.1f}  {name}")
        shown += 1
        if shown >= top:
            break
    reads = sum(in_reads.values())
    print(f"{'own %':>6} {'in reads %':>11}  where the own time is: library of the innermost frame ('in reads': of "
          f"the samples inside the band reads, {100 * reads / samples:.1f} % of all)")
    for library, n in by_library.most_common(12):
        print(f"{100 * n / samples:6.1f} {100 * in_reads[library] / samples:11.1f}  {library}")


def _library(frame: str) -> str:
    """What a py-spy frame runs in: a shared library without version and hash (``libgdal``, ``libtiff``,
    ``libdeflate``; numpy's and numba's modules by name), Python code, or ``JIT code (numba)`` for
    frames without a symbol or file (numba's compiled kernels)."""
    where = frame.rpartition(" (")[2].rstrip(")") if frame.endswith(")") else ""
    if where in ("", "?"):
        return "JIT code (numba) or unknown"
    if ".so" not in where and "[vdso]" not in where:
        return "Python code"
    name = where.rsplit("/", 1)[-1]
    if "_multiarray_umath" in name:
        return "numpy"
    return re.sub(r"(-[0-9a-f]{8})?\.(cpython|so).*$", "", name)


if __name__ == "__main__":
    sys.exit(main())
