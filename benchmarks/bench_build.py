"""Build throughput at the real resolution: blocks per hour per core, and CPU-hours for Europe.

Generates a synthetic archive with real 10 m / 20 m pixels over a small region, builds one season
at 30 m in EPSG:3035 with one worker process, and measures seconds per block. From the time per
output pixel and per scene read it extrapolates to the product's 2048 px blocks and to one season
of Europe (assumptions printed with the figures).

    python -m benchmarks.bench_build [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
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
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from compositor.build import run_build
    from compositor.settings import Settings
    from compositor.synthetic import generate_archive

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate_archive(root / "archive", seasons=(SEASON,), bbox_4326=BBOX, pixel_size_m=10.0,
                         truth_resolution_m=RESOLUTION_M, workers=2)
        print(f"archive at 10 m written in {time.perf_counter() - started:.0f} s", flush=True)
        settings = Settings(data_dir=root / "data", catalog=str(root / "archive" / "catalog.json"),
                            resolution_m=RESOLUTION_M, block_size_px=BLOCK_PX, max_cloud_cover=100)
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = run_build(settings, SEASON, BBOX, workers=1, progress=False)  # in this process
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    built = [r for r in summary.results if r.status == "built"]
    if not built or summary.failed:
        print(summary.describe())
        return 1
    # CPU time (all threads of this process: numba and GDAL reads) per block: the figure per core.
    block_seconds = cpu_seconds / len(built)
    scenes = sum(r.n_scenes for r in built) / len(built)
    per_scene_mpx = block_seconds / scenes / (BLOCK_PX**2 / 1e6)  # s per scene per output megapixel
    product_block_s = per_scene_mpx * SCENES_PER_BLOCK_EUROPE * PRODUCT_BLOCK_PX**2 / 1e6
    block_km2 = (PRODUCT_BLOCK_PX * RESOLUTION_M / 1000) ** 2
    n_blocks = EUROPE_LAND_KM2 / block_km2
    figures = {
        "measured": {"blocks": len(built), "block_px": BLOCK_PX, "resolution_m": RESOLUTION_M,
                     "mean_scenes_per_block": round(scenes, 1), "cpu_seconds_per_block": round(block_seconds, 2),
                     "wall_seconds_per_block": round(sum(r.seconds for r in built) / len(built), 2),
                     "blocks_per_hour_per_core": round(3600 / block_seconds, 1),
                     "seconds_per_scene_per_output_mpx": round(per_scene_mpx, 4), "total_seconds": round(seconds, 1)},
        "europe": {"land_km2": EUROPE_LAND_KM2, "block_px": PRODUCT_BLOCK_PX, "block_km2": round(block_km2),
                   "blocks": round(n_blocks), "scenes_per_block": SCENES_PER_BLOCK_EUROPE,
                   "seconds_per_block": round(product_block_s), "blocks_per_hour_per_core": round(3600 / product_block_s, 2),
                   "cpu_hours_per_season": round(n_blocks * product_block_s / 3600)},
    }
    m, e = figures["measured"], figures["europe"]
    print(f"measured: {m['blocks']} blocks of {BLOCK_PX} px at 30 m, {m['mean_scenes_per_block']} scenes each: "
          f"{m['cpu_seconds_per_block']} CPU-s per block = {m['blocks_per_hour_per_core']} blocks/hour/core "
          f"({m['seconds_per_scene_per_output_mpx']} s per scene per output megapixel)")
    print(f"Europe: {e['blocks']} blocks of {PRODUCT_BLOCK_PX} px ({e['block_km2']} km2) x {e['scenes_per_block']} scenes: "
          f"{e['seconds_per_block']} s per block, {e['blocks_per_hour_per_core']} blocks/hour/core, "
          f"{e['cpu_hours_per_season']} CPU-hours per season")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
