"""Blending per-orbit statistics with weights that vanish before any of the orbit's data edges.

The weight of orbit ``o`` at a pixel is::

    w_o = max(0, d^-p - h^-p) * taper((s_o - margin) / ramp)

``d`` is the distance (km, at least 1) to the orbit's centre line from `compositor.orbits`, ``h``
its half swath (``SWATH_HALF_WIDTH_M``, 147.7 km, measured on real footprints) and ``p`` the blend
power: inverse distance, zero at the modelled swath edge. ``s_o`` is the signed distance (m, positive inside) from the pixel to the edge of the union
of the footprints (EPSG:4326) of the orbit's scenes near the window, the scenes that failed to read
left out; ``taper(u) = 3u^2 - 2u^3`` on ``[0, 1]`` (0 below, 1 above) rises smoothly from 0 at
``margin`` inside that edge to 1 at ``margin + ramp``. Wherever an orbit's data end, at the swath
edge, at a datatake end or where a scene is missing, its weight is therefore already zero (from
``margin`` inside the footprint edge, less at most one lattice step, see below), and the blend
is continuous there: no stripe.

Invariant (no seam): the weight is a function of the pixel's position and of the footprints near
it only, never of the window it is computed in. ``s`` and ``d`` are computed exactly (``s``
quantised to 1 mm) at the nodes of a lattice fixed in the output CRS (nodes at multiples of
``ramp / LATTICE_STEPS_PER_RAMP``, 625 m by default) and interpolated bilinearly from the four
nodes around each pixel (``d`` is smooth: bilinear errs by well under a metre). Every block, strip
and tile that is given the footprints within `context_distance_m` of it gets the same weight at
the same pixel. The footprints' edge is exact at the nodes and bilinear between them: within a
lattice step of a corner the zero of the weight may move inward by up to one step (625 m).

Where every orbit observing a pixel has weight 0 (all of them within ``margin`` of an edge of
theirs, as at the edge of a region every orbit's data stop at), the untapered inverse-distance
weights are used, and where those are 0 too, equal weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Proj, Transformer
from shapely.geometry.base import BaseGeometry

from compositor.errors import InvalidInputError
from compositor.orbits import SWATH_HALF_WIDTH_M, cross_track_distance_m

MIN_DISTANCE_KM = 1.0
# Footprint edges are straight in lon/lat (GeoJSON); densified at this step before projecting.
FOOTPRINT_STEP_DEG = 0.02
# Lattice step of the footprint distance: ramp / 16 (625 m for the default 10 km ramp). Bilinear
# interpolation is exact along straight edges and errs by less than one step near corners.
LATTICE_STEPS_PER_RAMP = 16
DISTANCE_QUANTUM_M = 1e-3  # node distances rounded to this: float noise of a union never shows
WORKING_CRS_IF_GEOGRAPHIC = "EPSG:3857"


def orbit_weights(orbit: int, lon: np.ndarray, lat: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Inverse-distance weight ``max(0, d^-p - h^-p)`` (float32, >= 0) of a relative orbit at points
    (EPSG:4326): the untapered part of the blend weight, zero beyond the model half swath ``h``."""
    return inverse_distance_weight(cross_track_distance_m(orbit, lon, lat), power)


def check_taper(margin_m: float, ramp_m: float) -> None:
    """Raise `InvalidInputError` unless ``margin_m >= 0`` and ``ramp_m > 0`` (finite metres)."""
    if not (math.isfinite(margin_m) and margin_m >= 0):
        raise InvalidInputError(f"blend edge margin {margin_m} m: use a distance >= 0 in metres")
    if not (math.isfinite(ramp_m) and ramp_m > 0):
        raise InvalidInputError(f"blend edge ramp {ramp_m} m: use a length > 0 in metres")


def context_distance_m(margin_m: float, ramp_m: float) -> float:
    """How far (m) around a window the footprints that shape its weights must be known.

    The taper reaches ``margin + ramp``; lattice nodes lie up to one step beyond the outer pixel
    centres; a quarter more covers the scale error of a projected CRS (EPSG:3035 < 1 % in Europe)."""
    return 1.25 * (margin_m + ramp_m) + 2.0 * ramp_m / LATTICE_STEPS_PER_RAMP


def edge_taper(inside_m: np.ndarray, margin_m: float, ramp_m: float) -> np.ndarray:
    """Smooth step (float64 in [0, 1]) of the distance inside a footprint edge: 0 up to ``margin_m``,
    ``3u^2 - 2u^3`` with ``u = (inside - margin) / ramp`` on the ramp, 1 beyond ``margin_m + ramp_m``."""
    inside = np.asarray(inside_m, dtype=np.float64)
    u = np.clip((inside - margin_m) / ramp_m, 0.0, 1.0)
    return np.where(inside >= margin_m + ramp_m, 1.0, u * u * (3.0 - 2.0 * u))


class _Workspace:
    """A metric CRS to measure footprint distances in: the output CRS, or Web Mercator for a
    geographic one; with its unit (m) and the transforms to and from lon/lat."""

    def __init__(self, crs: str) -> None:
        parsed = CRS.from_user_input(crs)
        self.same = parsed.is_projected
        self.crs = parsed if self.same else CRS.from_user_input(WORKING_CRS_IF_GEOGRAPHIC)
        self.unit_m = float(self.crs.axis_info[0].unit_conversion_factor)
        self.from_output = None if self.same else Transformer.from_crs(parsed, self.crs, always_xy=True)
        self.to_lonlat = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        self.from_lonlat = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        self.proj = Proj(self.crs)

    def units_per_m(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """CRS units per ground metre at points of the working CRS (mean of the meridian and parallel
        scales: exact for conformal projections, within 1 % for EPSG:3035 over Europe)."""
        lon, lat = self.to_lonlat.transform(x, y)
        factors = self.proj.get_factors(lon, lat)
        scale = (np.asarray(factors.meridional_scale) + np.asarray(factors.parallel_scale)) / 2.0
        return scale / self.unit_m


@lru_cache(maxsize=16)
def _workspace(crs: str) -> _Workspace:
    return _Workspace(crs)


@lru_cache(maxsize=64)
def _footprint_union(crs: str, footprints_wkb: tuple[bytes, ...]) -> BaseGeometry:
    """Union of footprints (WKB, EPSG:4326) in the working CRS of ``crs``, densified, prepared."""
    work = _workspace(crs)
    geoms = shapely.make_valid(shapely.from_wkb(np.array(footprints_wkb, dtype=object)))
    geoms = shapely.segmentize(geoms, FOOTPRINT_STEP_DEG)
    projected = shapely.transform(geoms, lambda xy: np.column_stack(work.from_lonlat.transform(xy[:, 0], xy[:, 1])))
    union = shapely.union_all(projected)
    shapely.prepare(union)
    shapely.contains_xy(union, 0.0, 0.0)  # builds the point-in-area index before threads share it
    return union


def footprint_union(footprints: Sequence[BaseGeometry], crs: str) -> BaseGeometry:
    """The union of footprints (EPSG:4326) in the metric working CRS of output ``crs`` (cached)."""
    wkbs = tuple(sorted(set(shapely.to_wkb(np.array(list(footprints), dtype=object)).tolist())))
    return _footprint_union(crs, wkbs)


def _boundary_segments(union: BaseGeometry) -> np.ndarray:
    """(n, 4) x0, y0, x1, y1 of the segments of the union's rings, each ordered (x0, y0) < (x1, y1)
    so that a segment has one spelling whatever the ring it came from."""
    parts = shapely.get_parts(union)
    rings = shapely.get_rings(parts[shapely.get_type_id(parts) == 3])  # polygons only (make_valid may add lines)
    parts = []
    for ring in rings:
        xy = shapely.get_coordinates(ring)
        if len(xy) >= 2:
            parts.append(np.hstack([xy[:-1], xy[1:]]))
    if not parts:
        return np.zeros((0, 4))
    seg = np.vstack(parts)
    swap = (seg[:, 0] > seg[:, 2]) | ((seg[:, 0] == seg[:, 2]) & (seg[:, 1] > seg[:, 3]))
    seg[swap] = seg[swap][:, [2, 3, 0, 1]]
    return seg


def _segment_distance(px: np.ndarray, py: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Euclidean distance from points to segments, pairwise (same length arrays)."""
    ax, ay, bx, by = seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3]
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(length2 > 0, ((px - ax) * dx + (py - ay) * dy) / length2, 0.0)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy))


def signed_edge_distance_m(union: BaseGeometry, crs: str, x: np.ndarray, y: np.ndarray, reach_m: float) -> np.ndarray:
    """Signed distance (m, positive inside) from points (working CRS of ``crs``) to the edge of
    ``union``, clipped to ``[-reach_m, reach_m]`` and rounded to `DISTANCE_QUANTUM_M`."""
    work = _workspace(crs)
    q = work.units_per_m(x, y)
    reach_units = reach_m * float(q.max()) * 1.01
    inside = shapely.contains_xy(union, x, y)
    s = np.full(x.shape, reach_m, dtype=np.float64)
    seg = _boundary_segments(union)
    lo_x, hi_x, lo_y, hi_y = x.min() - reach_units, x.max() + reach_units, y.min() - reach_units, y.max() + reach_units
    near = (seg[:, 0] <= hi_x) & (seg[:, 2] >= lo_x) & (np.minimum(seg[:, 1], seg[:, 3]) <= hi_y) \
        & (np.maximum(seg[:, 1], seg[:, 3]) >= lo_y)
    seg = seg[near]
    if len(seg):
        tree = shapely.STRtree(shapely.linestrings(seg.reshape(-1, 2, 2)))
        points = shapely.points(x, y)
        node, which = tree.query(points, predicate="dwithin", distance=reach_units)
        if len(node):
            d = _segment_distance(x[node], y[node], seg[which]) / q[node]
            np.minimum.at(s, node, d)
    s = np.round(np.where(inside, s, -s) / DISTANCE_QUANTUM_M) * DISTANCE_QUANTUM_M
    return np.clip(s, -reach_m, reach_m)  # after rounding: full reach is exactly reach_m


def _pixel_offset(origin: float, size: float) -> float:
    """``origin / size`` (pixels from the CRS origin) rounded to a multiple of 2^-20."""
    return round(origin / size * 2.0**20) / 2.0**20


def _pixel_xy(work: _Workspace, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in the working CRS: 1-D x (w,) and y (h,) for a north-up projected grid, else 2-D."""
    h, w = shape
    if work.same and transform.b == 0 and transform.d == 0:
        # In pixel units from the CRS origin, the window's offset rounded to 2^-20 px: a strip's
        # transform (origin + row * size, rounded) then gives its pixels the very coordinates
        # the whole window gives them, so no float noise reaches the weights.
        xs = (_pixel_offset(transform.c, transform.a) + np.arange(w) + 0.5) * transform.a
        ys = (_pixel_offset(transform.f, transform.e) + np.arange(h) + 0.5) * transform.e
        return xs, ys
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    xs = transform.c + cols * transform.a + rows * transform.b
    ys = transform.f + cols * transform.d + rows * transform.e
    if work.from_output is not None:
        xs, ys = work.from_output.transform(xs, ys)
    return np.asarray(xs), np.asarray(ys)


class Lattice:
    """The nodes at multiples of ``step`` (working CRS units) around a grid's pixel centres, and
    each pixel's place among its four nodes. A node is the same point whatever the window."""

    def __init__(self, crs: str, transform: Affine, shape: tuple[int, int], step: float) -> None:
        work = _workspace(crs)
        xs, ys = _pixel_xy(work, transform, shape)
        gx, gy = xs / step, ys / step
        i0, j0 = math.floor(float(gx.min())), math.floor(float(gy.min()))
        i1, j1 = math.floor(float(gx.max())) + 1, math.floor(float(gy.max())) + 1
        self.x, self.y = np.meshgrid(np.arange(i0, i1 + 1) * step, np.arange(j0, j1 + 1) * step)
        ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        self.fx, self.fy = gx - ix, gy - iy
        self.ix, self.iy = ix - i0, iy - j0
        self.separable = gx.ndim == 1

    def interpolate(self, nodes: np.ndarray) -> np.ndarray:
        """(h, w) bilinear interpolation of values at the nodes (same shape as ``x``) to the pixels.

        Written ``a + f * (b - a)``: where the nodes around a pixel are equal, the pixel gets
        exactly their value (so a window far from every edge needs no per-pixel taper)."""
        ix, iy, fx, fy = self.ix, self.iy, self.fx, self.fy
        if self.separable:  # along x on every lattice row, then along y: the same sums as below
            left = nodes[:, ix]
            along_x = left + fx * (nodes[:, ix + 1] - left)
            lower = along_x[iy]
            return lower + fy[:, None] * (along_x[iy + 1] - lower)
        lower = nodes[iy, ix] + fx * (nodes[iy, ix + 1] - nodes[iy, ix])
        upper = nodes[iy + 1, ix] + fx * (nodes[iy + 1, ix + 1] - nodes[iy + 1, ix])
        return lower + fy * (upper - lower)


def lattice_step(crs: str, ramp_m: float) -> float:
    """The lattice step (working CRS units) of a grid in ``crs``: ``ramp / LATTICE_STEPS_PER_RAMP`` metres."""
    return ramp_m / LATTICE_STEPS_PER_RAMP / _workspace(crs).unit_m


def edge_distance_nodes_m(footprints: Sequence[BaseGeometry], crs: str, lattice: Lattice, reach_m: float) -> np.ndarray:
    """Signed distance (m, positive inside, clipped to ``reach_m``) from the lattice nodes (shape of
    ``lattice.x``) to the edge of the union of ``footprints`` (EPSG:4326); ``-reach_m`` without any."""
    if not footprints:
        return np.full(lattice.x.shape, -reach_m)
    union = footprint_union(footprints, crs)
    return signed_edge_distance_m(union, crs, lattice.x.ravel(), lattice.y.ravel(), reach_m).reshape(lattice.x.shape)


def edge_taper_pixels(nodes_m: np.ndarray, lattice: Lattice, margin_m: float, ramp_m: float) -> np.ndarray | float:
    """The taper at the pixels from the edge distances at the nodes: 1.0 (a float) when every node
    is at full reach, 0.0 when every node is more than a metre short of the margin (the per-pixel
    result would be exactly that too), else (h, w) float64."""
    if (nodes_m >= margin_m + ramp_m).all():
        return 1.0
    if (nodes_m <= margin_m - 1.0).all():
        return 0.0
    return edge_taper(lattice.interpolate(nodes_m), margin_m, ramp_m)


def inverse_distance_weight(cross_track_m: np.ndarray, power: float) -> np.ndarray:
    """``max(0, d^-p - h^-p)`` (float32) of signed centre-line distances (m); ``d`` in km, at least 1."""
    half_km = SWATH_HALF_WIDTH_M / 1000.0
    d_km = np.maximum(np.abs(cross_track_m) / 1000.0, MIN_DISTANCE_KM)
    inverse = 1.0 / (d_km * d_km) if power == 2.0 else d_km**-power
    return np.maximum(inverse - half_km**-power, 0.0).astype(np.float32)


def window_weights(footprints: Mapping[int, Sequence[BaseGeometry]], crs: str, transform: Affine,
                   shape: tuple[int, int], *, power: float = 2.0, margin_m: float, ramp_m: float,
                   ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Blend weights of each orbit on a grid: ``(tapered, untapered)``, both ``{orbit: (h, w) float32}``.

    ``footprints[o]`` are the footprints (EPSG:4326) of orbit ``o``'s readable scenes within
    `context_distance_m` of the window. Tapered is ``max(0, d^-p - h^-p) * taper(s)`` (module
    docstring); untapered is its first factor, for `blend_orbits`' fallback. Both the centre-line
    distance (smooth: bilinear errs by micrometres) and the edge distance are computed at the
    lattice nodes and interpolated to the pixels.
    """
    check_taper(margin_m, ramp_m)
    lattice = Lattice(crs, transform, shape, lattice_step(crs, ramp_m))
    lon, lat = _workspace(crs).to_lonlat.transform(lattice.x, lattice.y)
    reach = margin_m + ramp_m
    tapered, untapered = {}, {}
    for orbit, prints in footprints.items():
        base = inverse_distance_weight(lattice.interpolate(cross_track_distance_m(orbit, lon, lat)), power)
        taper = edge_taper_pixels(edge_distance_nodes_m(prints, crs, lattice, reach), lattice, margin_m, ramp_m)
        untapered[orbit] = base
        full = isinstance(taper, float) and taper == 1.0
        tapered[orbit] = base if full else (base * taper).astype(np.float32)
    return tapered, untapered


def blend_orbits(stats: Mapping[int, np.ndarray], counts: Mapping[int, np.ndarray],
                 weights: Mapping[int, np.ndarray], fallback: Mapping[int, np.ndarray] | None = None) -> np.ndarray:
    """Weighted mean of per-orbit statistics, over the orbits with observations at each pixel.

    ``stats[o]`` is (k, h, w) float (NaN where orbit ``o`` saw nothing), ``counts[o]``,
    ``weights[o]`` and ``fallback[o]`` are (h, w). Where every observing orbit has weight 0, the
    ``fallback`` weights are used (the untapered inverse distance), and where those are all 0 too
    (a pixel outside the model swath of all of them), the observing orbits get equal weights.
    Returns (k, h, w) float32, NaN where no orbit has an observation.
    """
    orbits = sorted(stats)
    if not orbits:
        raise ValueError("blend_orbits needs the statistics of at least one orbit")
    k, h, w = stats[orbits[0]].shape
    total = np.zeros((k, h, w), dtype=np.float64)
    wsum = np.zeros((h, w), dtype=np.float64)
    fb_total = np.zeros((k, h, w), dtype=np.float64)
    fb_sum = np.zeros((h, w), dtype=np.float64)
    present_sum = np.zeros((k, h, w), dtype=np.float64)
    n_present = np.zeros((h, w), dtype=np.int32)
    for orbit in orbits:
        seen = counts[orbit] > 0
        value = np.where(seen, stats[orbit], 0.0)
        wo = np.where(seen, weights[orbit], 0.0)
        total += value * wo
        wsum += wo
        if fallback is not None:
            fo = np.where(seen, fallback[orbit], 0.0)
            fb_total += value * fo
            fb_sum += fo
        present_sum += value
        n_present += seen
    with np.errstate(invalid="ignore", divide="ignore"):
        blended = np.where(wsum > 0, total / wsum, np.where(fb_sum > 0, fb_total / fb_sum, present_sum / n_present))
    blended[:, n_present == 0] = np.nan
    return blended.astype(np.float32)
