"""A stripe metric: how much a composite steps where an orbit's data end, against steps elsewhere.

Edges are known from the generator's own geometry (``swaths.json`` in the archive's truth
folder): for each relative orbit, the west and east edges of the union of its passes (where the
orbit's last observation ends: where a blend that does not taper to zero there steps), and every
datatake end inside the region. Each edge gives every pixel a signed distance across it (km,
positive on the side without the data).

The jump at an edge is the median of a relative value ``r`` (e.g. P50 / truth - 1) over the
pixels within a few pixels beyond the edge minus its median over those within a few pixels
inside it: the signed difference of the pixels straddling the edge, along the whole edge. An
orbit's swath edge is fuzzy (its passes' edges scatter by a few km), so the pairs straddle the
whole fuzzy band, from its inner line (every pass has data) to its outer line (none has). The
baseline is the same statistic, with the same gap, on lines parallel to the edge up to 25 km
away on both sides: how much neighbouring pixels differ anyway (noise, clouds left in, texture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyproj import Geod

from compositor.testing.synthetic.edges import PassSwath
from compositor.testing.synthetic.reference_orbit import ground_point, view_coordinates

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


def _km_per_deg(orbit: int, t: float, theta: float) -> float:
    lon, lat = ground_point(orbit, np.array([t, t]), np.array([theta - 0.05, theta + 0.05]))
    return float(_GEOD.inv(lon[0], lat[0], lon[1], lat[1])[2]) / 1000.0 / 0.1


def _km_per_s(orbit: int, t: float, theta: float) -> float:
    lon, lat = ground_point(orbit, np.array([t, t + 1.0]), np.array([theta, theta]))
    return float(_GEOD.inv(lon[0], lat[0], lon[1], lat[1])[2]) / 1000.0


def edge_distances_km(
    swaths: list[PassSwath], lon: np.ndarray, lat: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per edge of the passes' data, signed distances (km, > 0 on the side without data) of points (EPSG:4326).

    Each edge gives two distances: to its outer line (beyond it no pass of the orbit has data)
    and to its inner line (within it every pass has data); the passes' own edges scatter between
    the two. Swath edges are those of each orbit's passes; a datatake end is one pass's (NaN
    where that pass's swath does not reach) and its two lines are the same. Exact in view
    coordinates, scaled to km with the local ground spacing of the orbit's view angles and times.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for orbit in sorted({s.relative_orbit for s in swaths}):
        passes = [s for s in swaths if s.relative_orbit == orbit]
        t, theta = view_coordinates(orbit, lon, lat)
        t_mid, theta_mid = float(np.median(t)), float(np.median(theta))
        wests = np.array([s.edge_deg("west", t) for s in passes])
        easts = np.array([s.edge_deg("east", t) for s in passes])
        k_west = _km_per_deg(orbit, t_mid, float(np.median(wests)))
        k_east = _km_per_deg(orbit, t_mid, float(np.median(easts)))
        out[f"R{orbit:03d} west"] = ((wests.min(0) - theta) * k_west, (wests.max(0) - theta) * k_west)
        out[f"R{orbit:03d} east"] = ((theta - easts.max(0)) * k_east, (theta - easts.min(0)) * k_east)
        for s in passes:
            if s.cut is None:
                continue
            beyond_s = (t - s.cut.time_at(theta - s.offset_deg)) * (1.0 if s.cut.ends else -1.0)
            in_swath = (theta >= s.edge_deg("west", t)) & (theta <= s.edge_deg("east", t))
            beyond_km = np.where(in_swath, beyond_s * _km_per_s(orbit, t_mid, theta_mid), np.nan)
            out[f"R{orbit:03d} datatake {s.key}"] = (beyond_km, beyond_km)
    return out


def _median_step(r: np.ndarray, before: np.ndarray, after: np.ndarray) -> float:
    """Median of ``r`` over ``after`` minus its median over ``before``; NaN with too few pixels."""
    if min(int(before.sum()), int(after.sum())) < _MIN_PIXELS:
        return float("nan")
    return float(np.median(r[after]) - np.median(r[before]))


def stripe_jumps(
    r: np.ndarray, distances: dict[str, tuple[np.ndarray, np.ndarray]], pixel_km: float, width_px: int = 3
) -> list[EdgeJump]:
    """The step of ``r`` (2-D, NaN where unknown) across each edge and its parallel-line baseline.

    ``distances``: per edge, (outer, inner) signed distances (km) of each pixel (``edge_distances_km``);
    ``pixel_km``: the pixel size (km). The step is the median of ``r`` over the pixels within
    ``width_px`` pixels beyond the outer line minus its median within ``width_px`` inside the inner
    line (medians: a cloud left in does not make a stripe). The baseline lines are pairs of the
    same widths and the same gap (the median distance between the edge's two lines), every
    ``2 * width_px`` pixels up to 25 km beyond and inside the edge. Edges with fewer than 40
    pixels on a side are left out.
    """
    width = width_px * pixel_km
    found = []
    valid = np.isfinite(r)
    for name, (outer, inner) in distances.items():
        ok = valid & np.isfinite(outer) & np.isfinite(inner)
        rr, out_d, in_d = r[ok], outer[ok], inner[ok]
        jump = _median_step(rr, (in_d < 0) & (in_d >= -width), (out_d > 0) & (out_d <= width))
        if not np.isfinite(jump):
            continue
        gap = max(float(np.median(in_d - out_d)), 0.0)
        baseline = []
        for at in np.arange(width, _BASELINE_KM + 1e-9, 2 * width):
            lo, hi = at + gap, at + gap + width
            beyond = _median_step(rr, (out_d >= at - width) & (out_d < at), (out_d > lo) & (out_d <= hi))
            inside = _median_step(rr, (in_d >= -hi) & (in_d < -lo), (in_d > -at) & (in_d <= -at + width))
            baseline += [b for b in (beyond, inside) if np.isfinite(b)]
        n = int(((in_d < 0) & (in_d >= -width)).sum() + ((out_d > 0) & (out_d <= width)).sum())
        found.append(EdgeJump(name, jump, tuple(baseline), n))
    return found
def relative_error(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``estimate / truth - 1`` where both are positive (DN), NaN elsewhere."""
    ok = (estimate > 0) & (truth > 0)
    return np.where(ok, estimate / np.where(ok, truth, 1.0) - 1.0, np.nan)
