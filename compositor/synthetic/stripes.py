"""A stripe metric: how much a composite steps where an orbit's data end, against steps elsewhere.

Edges are known from the generator's own geometry (``swaths.json`` in the archive's truth
folder): for each relative orbit, the west and east edges of the union of its passes (where the
orbit's last observation ends: where a blend that does not taper to zero there steps), and every
datatake end inside the region. Each edge gives every pixel a signed distance across it (km,
positive on the side without the data).

The jump at an edge is the mean of a relative value ``r`` (e.g. P50 / truth - 1) over the pixels
within ``width_px`` pixels outside the edge minus its mean over those within ``width_px`` inside
it: the signed mean difference of pixels straddling the edge, averaged along it. The baseline is
the same statistic on lines parallel to the edge, every ``2 * width_px`` pixels up to 25 km away
on both sides (where neither side of the pair holds the edge): how much neighbouring pixels
differ anyway (noise, clouds left in, texture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import Geod, Transformer

from compositor.synthetic.edges import PassSwath
from compositor.synthetic.reference_orbit import ground_point, view_coordinates

_GEOD = Geod(ellps="WGS84")
_MIN_PIXELS = 40
_BASELINE_KM = 25.0


@dataclass(frozen=True)
class EdgeJump:
    """The step of ``r`` across one edge and on lines parallel to it (same units as ``r``)."""

    name: str  # "R065 east", "R022 datatake 20220207-R022"...
    jump: float
    baseline: tuple[float, ...]  # the same statistic on parallel lines elsewhere
    n_pixels: int  # pixels on the two sides of the edge

    @property
    def baseline_max(self) -> float:
        return max((abs(b) for b in self.baseline), default=float("nan"))

    @property
    def baseline_rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.baseline)))) if self.baseline else float("nan")


def pixel_lonlat(crs: str, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (EPSG:4326, deg) of the pixel centres of a north-up grid."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    x = transform.c + cols * transform.a + rows * transform.b
    y = transform.f + cols * transform.d + rows * transform.e
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def _km_per_deg(orbit: int, t: float, theta: float) -> float:
    lon, lat = ground_point(orbit, np.array([t, t]), np.array([theta - 0.05, theta + 0.05]))
    return float(_GEOD.inv(lon[0], lat[0], lon[1], lat[1])[2]) / 1000.0 / 0.1


def _km_per_s(orbit: int, t: float, theta: float) -> float:
    lon, lat = ground_point(orbit, np.array([t, t + 1.0]), np.array([theta, theta]))
    return float(_GEOD.inv(lon[0], lat[0], lon[1], lat[1])[2]) / 1000.0


def edge_distances_km(swaths: list[PassSwath], lon: np.ndarray, lat: np.ndarray) -> dict[str, np.ndarray]:
    """Per edge of the passes' data, the signed distance (km, > 0 on the side without data) of points (EPSG:4326).

    Swath edges are those of the union of each orbit's passes; datatake ends are per pass
    (NaN where the pass's swath does not reach). Distances are exact in view coordinates and
    scaled to km with the local ground spacing of the orbit's view angles and times.
    """
    out: dict[str, np.ndarray] = {}
    for orbit in sorted({s.relative_orbit for s in swaths}):
        passes = [s for s in swaths if s.relative_orbit == orbit]
        t, theta = view_coordinates(orbit, lon, lat)
        t_mid, theta_mid = float(np.median(t)), float(np.median(theta))
        west = np.min([s.edge_deg("west", t) for s in passes], axis=0)
        east = np.max([s.edge_deg("east", t) for s in passes], axis=0)
        out[f"R{orbit:03d} west"] = (west - theta) * _km_per_deg(orbit, t_mid, float(np.median(west)))
        out[f"R{orbit:03d} east"] = (theta - east) * _km_per_deg(orbit, t_mid, float(np.median(east)))
        for s in passes:
            if s.cut is None:
                continue
            beyond_s = (t - s.cut.time_at(theta - s.offset_deg)) * (1.0 if s.cut.ends else -1.0)
            in_swath = (theta >= s.edge_deg("west", t)) & (theta <= s.edge_deg("east", t))
            out[f"R{orbit:03d} datatake {s.key}"] = np.where(in_swath, beyond_s * _km_per_s(orbit, t_mid, theta_mid), np.nan)
    return out


def _pair_jump(r: np.ndarray, d_km: np.ndarray, at_km: float, width_km: float) -> tuple[float, int]:
    outside = (d_km > at_km) & (d_km <= at_km + width_km)
    inside = (d_km < at_km) & (d_km >= at_km - width_km)
    n_out, n_in = int(outside.sum()), int(inside.sum())
    if min(n_out, n_in) < _MIN_PIXELS:
        return float("nan"), n_out + n_in
    return float(r[outside].mean() - r[inside].mean()), n_out + n_in


def stripe_jumps(r: np.ndarray, distances: dict[str, np.ndarray], pixel_km: float, width_px: int = 2) -> list[EdgeJump]:
    """The jump of ``r`` (2-D, NaN where unknown) across each edge and its parallel-line baseline.

    ``distances``: per edge, the signed distance (km) of each pixel (from ``edge_distances_km``);
    ``pixel_km``: the pixel size (km). Edges with fewer than 40 pixels on a side are left out.
    """
    width = width_px * pixel_km
    found = []
    valid = np.isfinite(r)
    for name, d in distances.items():
        ok = valid & np.isfinite(d)
        rr, dd = r[ok], d[ok]
        jump, n = _pair_jump(rr, dd, 0.0, width)
        if not np.isfinite(jump):
            continue
        steps = np.arange(2 * width, _BASELINE_KM + 1e-9, 2 * width)
        baseline = [b for at in np.concatenate([-steps, steps]) if np.isfinite(b := _pair_jump(rr, dd, at, width)[0])]
        found.append(EdgeJump(name, jump, tuple(baseline), n))
    return found


def relative_error(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``estimate / truth - 1`` where both are positive (DN), NaN elsewhere."""
    ok = (estimate > 0) & (truth > 0)
    return np.where(ok, estimate / np.where(ok, truth, 1.0) - 1.0, np.nan)
