"""Blending per-orbit statistics with inverse-distance weights to each orbit's centre line.

The weight of orbit ``o`` at a pixel is ``max(0, d^-p - h^-p)`` where ``d`` is the distance (km)
to its centre line from `compositor.orbits` and ``h`` the half swath (``SWATH_HALF_WIDTH_M``,
147.7 km, measured on real footprints): inverse distance, tapered to reach zero at the swath
edge. Where an orbit's data stop at the edge its weight is already zero, so the blend is
continuous there: no stripe. The distance is a function of the pixel's position only, so every
block and tile computes the same weights: no seam.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from affine import Affine
from pyproj import Transformer

from compositor.orbits import SWATH_HALF_WIDTH_M, cross_track_distance_m

MIN_DISTANCE_KM = 1.0


def pixel_lonlat(crs: str, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (EPSG:4326, degrees) of the pixel centres of a grid."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    xs = transform.c + cols * transform.a + rows * transform.b
    ys = transform.f + cols * transform.d + rows * transform.e
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    return np.asarray(lon), np.asarray(lat)


def orbit_weights(orbit: int, lon: np.ndarray, lat: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Blend weight (float32, >= 0) of a relative orbit at points (EPSG:4326)."""
    half_km = SWATH_HALF_WIDTH_M / 1000.0
    d_km = np.maximum(np.abs(cross_track_distance_m(orbit, lon, lat)) / 1000.0, MIN_DISTANCE_KM)
    return np.maximum(d_km**-power - half_km**-power, 0.0).astype(np.float32)


def blend_orbits(stats: Mapping[int, np.ndarray], counts: Mapping[int, np.ndarray],
                 weights: Mapping[int, np.ndarray]) -> np.ndarray:
    """Weighted mean of per-orbit statistics, over the orbits with observations at each pixel.

    ``stats[o]`` is (k, h, w) float (NaN where orbit ``o`` saw nothing), ``counts[o]`` and
    ``weights[o]`` are (h, w). Where every observing orbit has weight 0 (a pixel outside the
    model swath of all of them), the observing orbits get equal weights. Returns (k, h, w)
    float32, NaN where no orbit has an observation.
    """
    orbits = sorted(stats)
    if not orbits:
        raise ValueError("blend_orbits needs the statistics of at least one orbit")
    k, h, w = stats[orbits[0]].shape
    total = np.zeros((k, h, w), dtype=np.float64)
    wsum = np.zeros((h, w), dtype=np.float64)
    present_sum = np.zeros((k, h, w), dtype=np.float64)
    n_present = np.zeros((h, w), dtype=np.int32)
    for orbit in orbits:
        seen = counts[orbit] > 0
        value = np.where(seen, stats[orbit], 0.0)
        wo = np.where(seen, weights[orbit], 0.0)
        total += value * wo
        wsum += wo
        present_sum += value
        n_present += seen
    with np.errstate(invalid="ignore", divide="ignore"):
        blended = np.where(wsum > 0, total / wsum, present_sum / n_present)
    blended[:, n_present == 0] = np.nan
    return blended.astype(np.float32)
