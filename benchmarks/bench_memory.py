"""Peak memory of one block job: a 4096 x 4096 block over 80 scenes (issue: under 4 GB).

Writes 80 planted scenes (two orbits, 120 m pixels, random clouds in SCL) covering the block,
builds the block in a child process and reports that process's peak resident memory.

    python -m benchmarks.bench_memory [--scenes 80] [--size 4096] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine

LIMIT_GB = 4.0


def write_scenes(folder: Path, n_scenes: int, size_px: int, resolution_m: float) -> tuple[list, object]:
    from compositor.grid import OutputGrid
    from compositor.testing.planted import planted_scene

    grid = OutputGrid("EPSG:3035", resolution_m, size_px)
    block = grid.blocks_for_bbox((11.6, 47.9, 11.61, 47.91))[0]
    src_res = resolution_m * 4  # like 10 m bands read at 30 m... coarser here to keep the files small
    n = int(size_px * resolution_m / src_res) + 8
    x0, _, _, y1 = block.bounds
    transform = Affine(src_res, 0, x0 - 4 * src_res, 0, -src_res, y1 + 4 * src_res)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:n, 0:n]
    base = (1500 + 800 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.uint16)
    scenes = []
    start = dt.datetime(2021, 6, 25, 10, 30, tzinfo=dt.UTC)
    for i in range(n_scenes):
        cloud = (np.sin(xx / (9.0 + i % 7) + i) * np.cos(yy / (11.0 + i % 5) - i)) > 0.6
        scl = np.where(cloud, 9, 4).astype(np.uint8)
        bands = {b: (base + 50 * k + rng.integers(0, 3, dtype=np.uint16)).astype(np.uint16)
                 for k, b in enumerate(("blue", "green", "red", "nir", "swir16", "swir22"))}
        scenes.append(planted_scene(folder, f"S{i:03d}", start + dt.timedelta(days=i), (65, 22)[i % 2],
                                    "EPSG:3035", transform, bands, scl, platform=f"p{i}"))
    return scenes, block


def child(args: argparse.Namespace) -> None:
    """Build the block in this process and print the peak RSS (GB) and seconds as JSON."""
    import pickle

    job = pickle.loads(Path(args.job).read_bytes())
    from compositor.block import build_block

    started = time.perf_counter()
    result = build_block(job)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"status": result.status, "seconds": time.perf_counter() - started, "peak_rss_gb": peak_gb}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=80)
    parser.add_argument("--size", type=int, default=4096, help="block side in pixels")
    parser.add_argument("--resolution", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", dest="job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        child(args)
        return 0
    import pickle

    from compositor.block import BlockJob
    from compositor.layout import SeasonLayout
    from compositor.seasons import resolve_season

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"writing {args.scenes} scenes ...", flush=True)
        scenes, block = write_scenes(folder / "scenes", args.scenes, args.size, args.resolution)
        layout = SeasonLayout(folder / "data", resolve_season("2021-summer"), block.crs, block.resolution_m)
        job = BlockJob(layout, block, tuple(scenes), ("blue", "green", "red", "nir", "swir16", "swir22"))
        (folder / "job.pkl").write_bytes(pickle.dumps(job))
        print(f"building one {args.size} x {args.size} block over {args.scenes} scenes ...", flush=True)
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--child", str(folder / "job.pkl")],
                             capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures.update(scenes=args.scenes, size_px=args.size, limit_gb=LIMIT_GB)
    print(f"block {args.size}x{args.size} px, {args.scenes} scenes: {figures['seconds']:.0f} s, "
          f"peak RSS {figures['peak_rss_gb']:.2f} GB (limit {LIMIT_GB} GB)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0 if figures["peak_rss_gb"] < LIMIT_GB else 1


if __name__ == "__main__":
    sys.exit(main())
