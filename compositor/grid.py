"""The output grid: a CRS, a pixel size and square blocks aligned to multiples of both.

Block ``(col, row)`` covers x in ``[col * S, (col + 1) * S)`` and y in ``[row * S, (row + 1) * S)``
with ``S = block_size_px * resolution_m`` in grid CRS units. The grid is global and fixed, so two
builds of different regions share their blocks and never disagree about a pixel.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.warp import transform as warp_transform
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from compositor.errors import InvalidBBoxError, InvalidInputError

BBox = tuple[float, float, float, float]


def pixel_lonlat(crs: str, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (EPSG:4326, degrees) of the pixel centres of a grid."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    xs = transform.c + cols * transform.a + rows * transform.b
    ys = transform.f + cols * transform.d + rows * transform.e
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    return np.asarray(lon), np.asarray(lat)


def project_bounds(src_crs: str | object, dst_crs: str | object, bounds: tuple[float, ...],
                   densify_pts: int = 21) -> BBox | None:
    """``bounds`` (left, bottom, right, top) in ``dst_crs``: the box around its edges, each densified with
    ``densify_pts`` points; None when they cannot be projected (no finite point).

    GDAL's point transformation with a cached coordinate operation: about 0.5 ms, where
    ``rasterio.warp.transform_bounds`` sets up a new one (PROJ database searches) at each call, about
    20 ms, which made it a tenth of a build's time when called for every scene and strip."""
    left, bottom, right, top = (float(v) for v in bounds)
    if str(src_crs) == str(dst_crs):
        return left, bottom, right, top
    if isinstance(src_crs, str) and isinstance(dst_crs, str):
        return _project_bounds_kept(src_crs, dst_crs, (left, bottom, right, top), densify_pts)
    return _project_bounds(src_crs, dst_crs, (left, bottom, right, top), densify_pts)


@functools.lru_cache(maxsize=4096)
def _project_bounds_kept(src_crs: str, dst_crs: str, bounds: BBox, densify_pts: int) -> BBox | None:
    """`project_bounds` kept for CRSs given as text: the scenes of a window share one or two CRSs, so a
    window's bounds are projected once per CRS instead of once per scene."""
    return _project_bounds(src_crs, dst_crs, bounds, densify_pts)


def _project_bounds(src_crs: str | object, dst_crs: str | object, bounds: BBox, densify_pts: int) -> BBox | None:
    left, bottom, right, top = bounds
    t = np.linspace(0.0, 1.0, densify_pts + 2)
    xs = np.concatenate([left + (right - left) * t, np.full_like(t, right), right - (right - left) * t,
                         np.full_like(t, left)])
    ys = np.concatenate([np.full_like(t, bottom), bottom + (top - bottom) * t, np.full_like(t, top),
                         top - (top - bottom) * t])
    try:
        px, py = warp_transform(src_crs, dst_crs, xs, ys)
    except Exception:  # noqa: BLE001 - a CRS that GDAL cannot use: nothing projects
        return None
    px, py = np.asarray(px), np.asarray(py)
    ok = np.isfinite(px) & np.isfinite(py)
    if not ok.any():
        return None
    return float(px[ok].min()), float(py[ok].min()), float(px[ok].max()), float(py[ok].max())


_TRANSFORMERS = threading.local()


def _transformer(src_crs: str, dst_crs: str) -> Transformer:
    """A pyproj transformer per CRS pair and thread: creating one searches PROJ's database (~20 ms),
    and a transformer is not shared between threads."""
    cache = getattr(_TRANSFORMERS, "cache", None)
    if cache is None:
        cache = _TRANSFORMERS.cache = {}
    key = (str(src_crs), str(dst_crs))
    if key not in cache:
        if len(cache) > 64:
            cache.clear()
        cache[key] = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    return cache[key]


def reproject_geometry(geometry: BaseGeometry, src_crs: str, dst_crs: str) -> BaseGeometry:
    """A geometry's coordinates transformed between CRSs (axis order x/lon first)."""
    transformer = _transformer(src_crs, dst_crs)
    return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


@dataclass(frozen=True)
class Block:
    """One square block of the grid; the unit of work, parallelism and resumption."""

    col: int
    row: int
    size_px: int
    resolution_m: float
    crs: str

    @property
    def id(self) -> str:
        return f"c{self.col}_r{self.row}"

    @property
    def span_m(self) -> float:
        return self.size_px * self.resolution_m

    @property
    def bounds(self) -> BBox:
        """(xmin, ymin, xmax, ymax) in the grid CRS."""
        s = self.span_m
        return (self.col * s, self.row * s, (self.col + 1) * s, (self.row + 1) * s)

    @property
    def transform(self) -> Affine:
        xmin, _, _, ymax = self.bounds
        return Affine(self.resolution_m, 0.0, xmin, 0.0, -self.resolution_m, ymax)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size_px, self.size_px)

    def footprint_4326(self, densify: int = 16) -> Polygon:
        """The block outline in EPSG:4326, densified so that curved edges are followed."""
        outline = box(*self.bounds).segmentize(self.span_m / densify)
        return reproject_geometry(outline, self.crs, "EPSG:4326")


@dataclass(frozen=True)
class OutputGrid:
    """CRS (default EPSG:3035), pixel size in CRS units and block size in pixels."""

    crs: str = "EPSG:3035"
    resolution_m: float = 30.0
    block_size_px: int = 2048

    def __post_init__(self) -> None:
        if self.block_size_px <= 0 or self.block_size_px % 256:
            raise InvalidInputError(f"block size {self.block_size_px} px: use a positive multiple of 256")
        if not self.resolution_m > 0:
            raise InvalidInputError(f"resolution {self.resolution_m}: use a positive pixel size in metres")
        try:
            crs = CRS.from_user_input(self.crs)
        except Exception:
            raise InvalidInputError(f"unknown CRS {self.crs!r}: use an EPSG code such as EPSG:3035") from None
        if not crs.is_projected:
            raise InvalidInputError(f"CRS {self.crs} is not projected: use a metric CRS such as EPSG:3035")
        code = crs.to_epsg()
        if code is not None:  # one spelling, so that "epsg:3035" and "EPSG:3035" are the same grid
            object.__setattr__(self, "crs", f"EPSG:{code}")

    @cached_property
    def area_of_use_4326(self) -> BBox | None:
        area = CRS.from_user_input(self.crs).area_of_use
        return (area.west, area.south, area.east, area.north) if area else None

    def block(self, col: int, row: int) -> Block:
        return Block(col, row, self.block_size_px, self.resolution_m, self.crs)

    def block_by_id(self, block_id: str) -> Block:
        try:
            col, row = (int(part[1:]) for part in block_id.split("_"))
        except ValueError:
            raise InvalidInputError(f"block id {block_id!r} is not like c2140_r1595") from None
        return self.block(col, row)

    def bounds_in_grid(self, bbox_4326: BBox) -> BBox:
        """A lon/lat box as (xmin, ymin, xmax, ymax) in the grid CRS (densified edges)."""
        to_grid = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        xmin, ymin, xmax, ymax = to_grid.transform_bounds(*bbox_4326, densify_pts=21)
        if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
            raise InvalidBBoxError(f"bbox {bbox_4326} cannot be projected to {self.crs}: choose an area inside it")
        return (xmin, ymin, xmax, ymax)

    def check_bbox_inside(self, bbox_4326: BBox) -> None:
        """Raise `InvalidBBoxError` when the bbox does not touch the grid CRS's area of use."""
        area = self.area_of_use_4326
        if area and not box(*area).intersects(box(*bbox_4326)):
            raise InvalidBBoxError(
                f"bbox {bbox_4326} lies outside the area of {self.crs} ({area[0]:.1f},{area[1]:.1f},"
                f"{area[2]:.1f},{area[3]:.1f}): choose a bbox inside it or another --crs"
            )

    def block_range(self, bounds_grid: BBox) -> tuple[range, range]:
        """The columns and rows of the blocks overlapping a box in the grid CRS."""
        span = self.block_size_px * self.resolution_m
        xmin, ymin, xmax, ymax = bounds_grid
        return (range(math.floor(xmin / span), math.ceil(xmax / span)),
                range(math.floor(ymin / span), math.ceil(ymax / span)))

    def blocks_in_bounds(self, bounds_grid: BBox, max_blocks: int | None = None) -> list[Block]:
        """Blocks overlapping a box in the grid CRS, row by row from the north-west; `InvalidInputError`
        when there are more than ``max_blocks``."""
        cols, rows = self.block_range(bounds_grid)
        if max_blocks is not None and len(cols) * len(rows) > max_blocks:
            raise InvalidInputError(f"this area spans more than {max_blocks} blocks of the season grid: "
                                    "ask for a smaller area or zoom in")
        return [self.block(c, r) for r in reversed(rows) for c in cols]

    def blocks_for_bbox(self, bbox_4326: BBox) -> list[Block]:
        """Blocks that intersect a lon/lat box, row by row from the north-west."""
        self.check_bbox_inside(bbox_4326)
        area = box(*bbox_4326)
        return [b for b in self.blocks_in_bounds(self.bounds_in_grid(bbox_4326))
                if b.footprint_4326().intersects(area)]
