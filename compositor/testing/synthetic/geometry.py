"""Where things are: the region, the truth grid, tile pixels on the ground, data footprints.

The region is the EPSG:3035 rectangle the scenes hold data for: the truth grid's footprint
plus a margin of a few scene pixels. Tile pixel centres are located on the ground (EPSG:3035)
and in each relative orbit's view coordinates (the time after the orbit's ascending node at
which the pass sees them and their off-nadir angle, from ``reference_orbit``: the real
Sentinel-2 geometry, not the compositor's model) by projecting a coarse lattice of pixels and
interpolating bilinearly, which is exact to well under a metre (and a millisecond).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio.features
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, box, mapping, shape
from shapely.ops import unary_union

from compositor.errors import InvalidBBoxError
from compositor.testing.synthetic.noise import sample_bilinear
from compositor.testing.synthetic.reference_orbit import view_coordinates
from compositor.testing.synthetic.tiles import TILE_SIZE_M, MgrsTile

GROUND_CRS = "EPSG:3035"
_LATTICE_M = 1600.0  # spacing of the projected pixel lattice


@dataclass(frozen=True)
class RasterGrid:
    """A north-up grid: upper-left corner (x0, y0) in ``crs`` units, square pixels of ``res``."""

    crs: str
    x0: float
    y0: float
    res: float
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        return Affine(self.res, 0.0, self.x0, 0.0, -self.res, self.y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.height * self.res, self.x0 + self.width * self.res, self.y0)

    def centres(self, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates (x, y) of the grid's rows ``rows``, 2-D float64."""
        r = np.arange(self.height, dtype=np.float64)[rows]
        c = np.arange(self.width, dtype=np.float64)
        return np.meshgrid(self.x0 + (c + 0.5) * self.res, self.y0 - (r + 0.5) * self.res)


@dataclass(frozen=True)
class Region:
    """The area the archive covers: the user's bbox and the EPSG:3035 data rectangle (m)."""

    bbox_4326: tuple[float, float, float, float]
    bounds_3035: tuple[float, float, float, float]

    @property
    def centre_4326(self) -> tuple[float, float]:
        lon0, lat0, lon1, lat1 = self.bbox_4326
        return (lon0 + lon1) / 2, (lat0 + lat1) / 2

    def polygon_4326(self) -> Polygon:
        ring = _densify_box(self.bounds_3035)
        lon, lat = Transformer.from_crs(GROUND_CRS, 4326, always_xy=True).transform(ring[:, 0], ring[:, 1])
        return Polygon(np.column_stack([lon, lat]))

    def grid_north_deg(self) -> float:
        """Angle of true north, clockwise from EPSG:3035 grid north, at the region centre (deg)."""
        lon, lat = self.centre_4326
        x, y = Transformer.from_crs(4326, GROUND_CRS, always_xy=True).transform([lon, lon], [lat, lat + 0.01])
        return math.degrees(math.atan2(x[1] - x[0], y[1] - y[0]))


def check_bbox(bbox_4326: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The bbox as floats; raises InvalidBBoxError with what to change if it is not usable."""
    try:
        lon0, lat0, lon1, lat1 = (float(v) for v in bbox_4326)
    except (TypeError, ValueError):
        raise InvalidBBoxError(
            f"bbox_4326 {bbox_4326!r} must be four numbers: (west, south, east, north) in degrees"
        ) from None
    if not all(math.isfinite(v) for v in (lon0, lat0, lon1, lat1)):
        raise InvalidBBoxError(f"bbox_4326 {bbox_4326!r} has non-finite values")
    if not (lon0 < lon1 and lat0 < lat1):
        raise InvalidBBoxError(
            f"bbox_4326 {bbox_4326!r} is empty: give (west, south, east, north) with west < east, south < north"
        )
    if not (-30.0 <= lon0 and lon1 <= 45.0 and 30.0 <= lat0 and lat1 <= 72.0):
        raise InvalidBBoxError(
            f"bbox_4326 {bbox_4326!r} is outside Europe (lon -30..45, lat 30..72), where EPSG:3035 holds"
        )
    if lon1 - lon0 > 6.0 or lat1 - lat0 > 4.0:
        raise InvalidBBoxError(
            f"bbox_4326 {bbox_4326!r} is too large for a synthetic archive: keep it within 6 x 4 degrees"
        )
    return lon0, lat0, lon1, lat1


def truth_grid_for(bbox_4326: tuple[float, float, float, float], crs: str, res: float) -> RasterGrid:
    """The grid in ``crs`` at ``res`` aligned to multiples of ``res`` that covers the bbox."""
    ring = _densify_box(bbox_4326, steps=64)
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(ring[:, 0], ring[:, 1])
    x0, x1 = math.floor(min(x) / res) * res, math.ceil(max(x) / res) * res
    y0, y1 = math.floor(min(y) / res) * res, math.ceil(max(y) / res) * res
    return RasterGrid(crs, x0, y1, res, int(round((x1 - x0) / res)), int(round((y1 - y0) / res)))


def region_for(bbox_4326: tuple[float, float, float, float], truth: RasterGrid, margin_m: float) -> Region:
    """The region: the EPSG:3035 envelope of the truth grid plus ``margin_m``, on whole 100 m."""
    ring = _densify_box(truth.bounds, steps=64)
    x, y = Transformer.from_crs(truth.crs, GROUND_CRS, always_xy=True).transform(ring[:, 0], ring[:, 1])
    step = 100.0
    bounds = (
        math.floor((min(x) - margin_m) / step) * step,
        math.floor((min(y) - margin_m) / step) * step,
        math.ceil((max(x) + margin_m) / step) * step,
        math.ceil((max(y) + margin_m) / step) * step,
    )
    return Region(tuple(bbox_4326), bounds)


def _densify_box(bounds: tuple[float, float, float, float], steps: int = 32) -> np.ndarray:
    return np.asarray(box(*bounds).segmentize((bounds[2] - bounds[0]) / steps).exterior.coords)


@dataclass(frozen=True)
class TilePixels:
    """The pixels of a tile grid that fall in the region, and where they are.

    The window is rows ``row0:row1``, columns ``col0:col1`` of the full tile grid; every array
    has the window's shape: EPSG:3035 centres (m), the region mask, and for each requested
    relative orbit the view coordinates: seconds after its ANX at which the descending pass sees
    the pixel (float64) and the signed off-nadir angle (deg, east > 0, float32).
    """

    tile: MgrsTile
    pixel_size_m: float
    size: int
    row0: int
    row1: int
    col0: int
    col1: int
    x_m: np.ndarray
    y_m: np.ndarray
    in_region: np.ndarray
    view_time_s: dict[int, np.ndarray]
    view_deg: dict[int, np.ndarray]


def locate_pixels(tile: MgrsTile, pixel_size_m: float, region: Region, orbits: tuple[int, ...]) -> TilePixels | None:
    """Locate the tile's pixels inside the region; None when the tile misses the region."""
    size = int(round(TILE_SIZE_M / pixel_size_m))
    to_utm = Transformer.from_crs(GROUND_CRS, tile.epsg, always_xy=True)
    ring = _densify_box(region.bounds_3035)
    ux, uy = to_utm.transform(ring[:, 0], ring[:, 1])
    col0 = max(0, int(math.floor((min(ux) - tile.left_m) / pixel_size_m)))
    col1 = min(size, int(math.ceil((max(ux) - tile.left_m) / pixel_size_m)))
    row0 = max(0, int(math.floor((tile.top_m - max(uy)) / pixel_size_m)))
    row1 = min(size, int(math.ceil((tile.top_m - min(uy)) / pixel_size_m)))
    if col0 >= col1 or row0 >= row1:
        return None
    step = max(1, int(round(_LATTICE_M / pixel_size_m)))
    n_rows, n_cols = (row1 - row0 - 1) // step + 2, (col1 - col0 - 1) // step + 2
    lat_r = row0 + step * np.arange(n_rows, dtype=np.float64)
    lat_c = col0 + step * np.arange(n_cols, dtype=np.float64)
    lx, ly = np.meshgrid(tile.left_m + (lat_c + 0.5) * pixel_size_m, tile.top_m - (lat_r + 0.5) * pixel_size_m)
    gx, gy = Transformer.from_crs(tile.epsg, GROUND_CRS, always_xy=True).transform(lx, ly)
    lon, lat = Transformer.from_crs(tile.epsg, 4326, always_xy=True).transform(lx, ly)

    fi = (np.arange(row0, row1, dtype=np.float64) - row0) / step
    fj = (np.arange(col0, col1, dtype=np.float64) - col0) / step
    fi, fj = np.meshgrid(fi, fj, indexing="ij")
    x = sample_bilinear(np.asarray(gx), fi, fj)
    y = sample_bilinear(np.asarray(gy), fi, fj)
    xmin, ymin, xmax, ymax = region.bounds_3035
    inside = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
    fi32, fj32 = fi.astype(np.float32), fj.astype(np.float32)
    times, angles = {}, {}
    for orbit in orbits:
        t, theta = view_coordinates(orbit, np.asarray(lon), np.asarray(lat))
        t_ref = float(t[0, 0])  # interpolated as float32 offsets from the corner: exact to 1 ms
        times[orbit] = t_ref + sample_bilinear((t - t_ref).astype(np.float32), fi32, fj32).astype(np.float64)
        angles[orbit] = sample_bilinear(theta.astype(np.float32), fi32, fj32)
    return TilePixels(tile, pixel_size_m, size, row0, row1, col0, col1, x, y, inside, times, angles)


def footprint_4326(
    valid: np.ndarray, tile: MgrsTile, pixel_size_m: float
) -> tuple[dict, tuple[float, float, float, float]]:
    """The outline of the True pixels of a full-tile mask as GeoJSON in EPSG:4326, and its bbox.

    Simplified by one pixel; coordinates rounded to 1e-9 deg. ``valid`` must hold a True pixel.
    """
    transform = Affine(*tile.transform(pixel_size_m))
    polygons = rasterio.features.shapes(valid.astype(np.uint8), mask=valid, transform=transform)
    parts = [shape(geom) for geom, _ in polygons]
    outline = unary_union(parts).simplify(pixel_size_m, preserve_topology=True)
    to_4326 = Transformer.from_crs(tile.epsg, 4326, always_xy=True)

    def project(poly: Polygon) -> Polygon:
        rings = [np.asarray(poly.exterior.coords)] + [np.asarray(r.coords) for r in poly.interiors]
        moved = [np.round(np.column_stack(to_4326.transform(r[:, 0], r[:, 1])), 9) for r in rings]
        return Polygon(moved[0], moved[1:])

    polys = [outline] if outline.geom_type == "Polygon" else list(outline.geoms)
    projected = [project(p) for p in polys if not p.is_empty]
    geometry = projected[0] if len(projected) == 1 else unary_union(projected)
    return _plain(mapping(geometry)), tuple(float(v) for v in geometry.bounds)


def _plain(obj):
    """GeoJSON mapping with lists instead of tuples (for stable JSON)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
