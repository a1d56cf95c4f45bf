"""Benchmark of ``compositor.stats.percentiles_and_count``.

Compares the numba kernel with ``numbagg.nanquantile`` and ``numpy.nanpercentile``
on a seeded 40 x 512 x 512 uint16 stack with 45 % of the values masked (0).
The libraries get the float64 stack with NaN for masked values, as they need.

    PYTHONPATH=. python -m benchmarks.bench_stats [--json PATH] [--check-ratio 50]

Exits 1 if the three results disagree, 2 if ``--check-ratio`` is not met.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable

import numbagg
import numpy as np

from compositor.stats import PERCENTILES, percentiles_and_count


def make_stack(n: int, h: int, w: int, masked: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 10_000, size=(n, h, w), dtype=np.uint16)
    values[rng.random(values.shape) < masked] = 0
    return values


def best_time(func: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--masked", type=float, default=0.45)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--numpy-repeats", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--check-ratio", type=float, metavar="R",
                        help="exit 2 if numpy / ours < R")
    args = parser.parse_args(argv)

    values = make_stack(args.scenes, args.size, args.size, args.masked)
    as_float = np.where(values == 0, np.nan, values.astype(np.float64))
    quantiles = [p / 100 for p in PERCENTILES]

    percentiles_and_count(values[:, :8, :8])  # numba compile / cache load
    numbagg.nanquantile(as_float[:, :8, :8], quantiles, axis=0)

    t_ours, (ours, count) = best_time(lambda: percentiles_and_count(values), args.repeats)
    t_numbagg, by_numbagg = best_time(
        lambda: numbagg.nanquantile(as_float, quantiles, axis=0), args.repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        t_numpy, by_numpy = best_time(
            lambda: np.nanpercentile(as_float, list(PERCENTILES), axis=0), args.numpy_repeats)

    agree = {
        "ours_vs_numpy": bool(np.array_equal(ours, by_numpy, equal_nan=True)),
        "numbagg_vs_numpy": bool(np.array_equal(by_numbagg, by_numpy, equal_nan=True)),
        "count": bool(np.array_equal(count, (values != 0).sum(axis=0))),
    }
    figures = {
        "shape": list(values.shape),
        "masked_fraction": float((values == 0).mean()),
        "percentiles": list(PERCENTILES),
        "seconds": {"ours": t_ours, "numbagg": t_numbagg, "numpy": t_numpy},
        "ratio_numpy_over_ours": t_numpy / t_ours,
        "ratio_numbagg_over_ours": t_numbagg / t_ours,
        "agree": agree,
    }

    print(f"stack {values.shape} uint16, {figures['masked_fraction']:.1%} masked, "
          f"percentiles {PERCENTILES}")
    print(f"{'method':<22}{'seconds':>10}{'t / t_ours':>16}")
    for name, key in [("ours (numba)", "ours"), ("numbagg.nanquantile", "numbagg"),
                      ("numpy.nanpercentile", "numpy")]:
        seconds = figures["seconds"][key]
        print(f"{name:<22}{seconds:>10.4f}{seconds / t_ours:>15.1f}x")
    print(f"numpy / ours = {figures['ratio_numpy_over_ours']:.1f}, "
          f"numbagg / ours = {figures['ratio_numbagg_over_ours']:.1f}")
    print("agreement:", ", ".join(f"{k}={v}" for k, v in agree.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)

    if not all(agree.values()):
        print("ERROR: results disagree", file=sys.stderr)
        return 1
    if args.check_ratio is not None and figures["ratio_numpy_over_ours"] < args.check_ratio:
        print(f"ERROR: numpy / ours = {figures['ratio_numpy_over_ours']:.1f} "
              f"< {args.check_ratio}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
