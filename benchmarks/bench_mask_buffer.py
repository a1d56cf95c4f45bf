"""Cloud edges: residual cloud in the P50 against observations lost, for several mask buffers.

Generates a small synthetic archive with the real pixel sizes (10 m bands, 20 m SCL; its clouds
have thin fringes that SCL misses, and an unclassified rim), composites one season on the 30 m
EPSG:3035 truth grid for each buffer with the footprint rule (`composite_window`, as the build),
and compares the P50 of the visible bands with the generator's clear-sky truth inside land-cover
patches. Prints one table row per buffer (and with SCL 7 masked too):

* bias: mean (P50 - truth) in DN over blue, green and red (cloud left in makes it positive);
* brighter: share of pixels whose P50 is brighter than truth by more than 200 DN (0.02
  reflectance) in at least one visible band;
* count: mean valid observations per pixel (red), and the change against buffer 0.

    python -m benchmarks.bench_mask_buffer [--json out.json] [--seed 0]

A fresh clone needs only `pip install -e .`. Generating the 10 m archive is most of the time
(whole MGRS-tile COGs are written): 4-6.5 minutes on this project's 2 cores while other jobs ran,
then 2-5 s per composite; the results for seeds 0 and 1 are in README.md, "Cloud edges".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from compositor.testing.synthetic.truth import homogeneous

BBOX = (11.30, 48.00, 11.34, 48.03)  # about 3.0 x 3.3 km west of Munich: orbits 22 and 65, tiles 32UPU and 33UTP
SEASON = "early-summer-2022"
INTERVAL = "2022-06-01/2022-07-15"  # 45 days (about 15 acquisitions, 30 scenes): a few minutes to generate
BUFFERS_M = (0.0, 20.0, 40.0, 60.0, 100.0, 150.0)
VISIBLE = ("blue", "green", "red")
BRIGHTER_DN = 200
RESOLUTION_M = 30.0


def measure(scenes, truth: dict[str, np.ndarray], crs: str, transform, buffer_m: float,
            invalid: tuple[int, ...]) -> dict[str, float]:
    from compositor.composite import CompositeOptions, composite_window

    shape = truth["red"].shape
    options = CompositeOptions(invalid_classes=invalid, mask_buffer_m=buffer_m)
    started = time.perf_counter()
    result = composite_window(scenes, VISIBLE, crs, transform, shape, options)
    seconds = time.perf_counter() - started
    inside = np.ones(shape, dtype=bool)
    for band in VISIBLE:
        inside &= homogeneous(truth[band]) & (truth[band] > 0)
    seen = inside & (result.counts["red"] > 0)
    diffs = np.stack([result.stats[band][1][seen] - truth[band][seen] for band in VISIBLE])
    return {"buffer_m": buffer_m, "bias_dn": float(diffs.mean()),
            **{f"bias_{band}_dn": float(d.mean()) for band, d in zip(VISIBLE, diffs)},
            "brighter_pct": float(100 * (diffs > BRIGHTER_DN).any(axis=0).mean()),
            "mean_count": float(result.counts["red"][inside].mean()),
            "no_observation_pct": float(100 * (result.counts["red"][inside] == 0).mean()),
            "seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from compositor.catalog import SceneQuery
    from compositor.seasons import parse_custom_seasons
    from compositor.settings import DEFAULT_MASK_CLASSES, UNCLASSIFIED_CLASS
    from compositor.testing.synthetic import generate_archive

    season = parse_custom_seasons({SEASON: INTERVAL})[SEASON]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "archive"
        started = time.perf_counter()
        summary = generate_archive(root, seasons=(season,), bbox_4326=BBOX, pixel_size_m=10.0,
                                   truth_resolution_m=RESOLUTION_M, seed=args.seed, workers=2)
        print(f"archive: {summary.n_items} scenes at 10 m / 20 m SCL in {time.perf_counter() - started:.0f} s",
              flush=True)
        truth, crs, transform = {}, None, None
        for band in VISIBLE:
            with rasterio.open(summary.truth_dir / season.name / f"{band}_p50.tif") as src:
                truth[band] = src.read(1).astype(np.float64)
                crs, transform = src.crs.to_string(), src.transform
        scenes = SceneQuery(str(summary.catalog_path)).search(BBOX, season).scenes
        rows = [measure(scenes, truth, crs, transform, b, DEFAULT_MASK_CLASSES) for b in BUFFERS_M]
        with_7 = tuple(sorted({*DEFAULT_MASK_CLASSES, UNCLASSIFIED_CLASS}))
        rows += [{**measure(scenes, truth, crs, transform, b, with_7), "unclassified": True} for b in (0.0, 40.0)]
    base = rows[0]["mean_count"]
    print(f"\n{season.name} ({INTERVAL}), {len(scenes)} scenes, {truth['red'].size} pixels of 30 m (EPSG:3035), "
          f"P50 vs truth inside land-cover patches")
    print("| buffer | SCL 7 | P50 bias blue/green/red (DN) | mean bias (DN) | brighter > 200 DN | "
          "mean count | count vs 0 m | no observation |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        row["count_change_pct"] = 100 * (row["mean_count"] / base - 1)
        print(f"| {row['buffer_m']:g} m | {'masked' if row.get('unclassified') else 'kept'} | "
              f"{row['bias_blue_dn']:+.1f} / {row['bias_green_dn']:+.1f} / {row['bias_red_dn']:+.1f} | "
              f"{row['bias_dn']:+.1f} | {row['brighter_pct']:.2f} % | {row['mean_count']:.2f} | "
              f"{row['count_change_pct']:+.1f} % | {row['no_observation_pct']:.2f} % |")
    if args.json:
        args.json.write_text(json.dumps({"season": INTERVAL, "bbox": BBOX, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
