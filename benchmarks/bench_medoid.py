"""Benchmark of ``compositor.medoid.medoid_choice`` (numba) against its numpy reference.

A seeded stack of observations x 6 bands x size x size uint16 with a share of observations masked (0 in
every band, as the SCL mask leaves them); both must choose the same observation at every pixel.

    PYTHONPATH=. python -m benchmarks.bench_medoid [--observations 40] [--size 128] [--json PATH]

Exits 1 if the two choices differ anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from benchmarks.bench_stats import best_time
from compositor.medoid import medoid_choice, medoid_choice_numpy


def make_stack(n: int, size: int, masked: float, seed: int = 0) -> np.ndarray:
    """Reflectance-like observations: a pixel's surface plus noise, some observations masked whole."""
    rng = np.random.default_rng(seed)
    surface = rng.integers(200, 4000, size=(1, 6, size, size))
    values = np.clip(surface + rng.normal(0, 150, size=(n, 6, size, size)), 1, 10_000).astype(np.uint16)
    values *= (rng.random((n, 1, size, size)) >= masked).astype(np.uint16)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=40, help="observations per pixel (default 40)")
    parser.add_argument("--size", type=int, default=128, help="side of the window in pixels (default 128)")
    parser.add_argument("--masked", type=float, default=0.45, help="share of observations masked (default 0.45)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; the best counts (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    values = make_stack(args.observations, args.size, args.masked)
    medoid_choice(values[:, :, :4, :4])  # numba compile / cache load
    t_ours, ours = best_time(lambda: medoid_choice(values), args.repeats)
    t_numpy, reference = best_time(lambda: medoid_choice_numpy(values), max(1, args.repeats - 1))
    equal = bool(np.array_equal(ours, reference))
    pixels = args.size * args.size
    figures = {"shape": list(values.shape), "masked": args.masked, "seconds": {"numba": t_ours, "numpy": t_numpy},
               "ratio_numpy_over_numba": t_numpy / t_ours, "ns_per_pixel_numba": t_ours / pixels * 1e9,
               "equal": equal}
    print(f"stack {values.shape} uint16, {args.masked:.0%} of the observations masked")
    print(f"numba {t_ours:.4f} s ({figures['ns_per_pixel_numba']:.0f} ns per pixel), numpy reference "
          f"{t_numpy:.4f} s: numpy / numba = {figures['ratio_numpy_over_numba']:.1f}; equal choices: {equal}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if not equal:
        print("ERROR: the kernel and the numpy reference chose differently", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
