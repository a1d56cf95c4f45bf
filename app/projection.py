"""Built block outlines in a target CRS, and bounds transformations, for the request path.

A tile must learn which built blocks cover it without projecting anything per request: the
outlines of a season snapshot's blocks are projected once per target CRS (one vectorised GDAL
transformation for all of them) and indexed; a tile then queries that index with its own bounds.
(pyproj transformers are not shared between threads without being rebuilt, which costs tens of
milliseconds in a fresh worker thread; GDAL's transformations cost about a millisecond.)
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.warp import transform as transform_points
from shapely.geometry import Polygon, box

from compositor.grid import Block

SEGMENTS_PER_SIDE = 16


def crs_key(crs: CRS | str) -> str:
    """A string naming ``crs`` (its EPSG code when it has one)."""
    if isinstance(crs, str):
        return crs
    return crs.to_string() or crs.to_wkt()


def project_squares(blocks: list[Block], dst: str) -> list[Polygon]:
    """Each block's square, densified, in ``dst`` (empty polygons where it cannot be projected)."""
    if not blocks:
        return []
    squares = [box(*b.bounds).segmentize(b.span_m / SEGMENTS_PER_SIDE) for b in blocks]
    if crs_key(blocks[0].crs) == dst:
        return squares
    coords = shapely.get_coordinates(squares)
    xs, ys = transform_points(blocks[0].crs, dst, coords[:, 0].tolist(), coords[:, 1].tolist())
    projected = shapely.set_coordinates(np.array(squares, dtype=object), np.column_stack([xs, ys]))
    return [p if p.is_valid and np.isfinite(p.bounds).all() else Polygon() for p in projected]


@dataclass
class ProjectedBlocks:
    """Block outlines in one CRS with a spatial index, and each block's scale (target units per grid unit)."""

    outlines: list[Polygon]
    scales: list[float]
    tree: shapely.STRtree | None

    @classmethod
    def of(cls, blocks: list[Block], dst: str) -> ProjectedBlocks:
        outlines = project_squares(blocks, dst)
        scales = [math.sqrt(o.area) / b.span_m if not o.is_empty else 0.0 for o, b in zip(outlines, blocks)]
        return cls(outlines, scales, shapely.STRtree(outlines) if outlines else None)

    def query(self, bounds: tuple[float, float, float, float]) -> list[int]:
        """Indexes of the outlines that overlap ``bounds`` (in this CRS)."""
        if self.tree is None:
            return []
        area = box(*bounds)
        return [int(i) for i in sorted(self.tree.query(area, predicate="intersects"))
                if not self.outlines[i].is_empty]


@dataclass
class ProjectionCache:
    """`ProjectedBlocks` per target CRS, computed once each (thread-safe)."""

    blocks: list[Block]
    _by_crs: dict[str, ProjectedBlocks] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, dst: CRS | str) -> ProjectedBlocks:
        key = crs_key(dst)
        found = self._by_crs.get(key)
        if found is None:
            with self._lock:
                found = self._by_crs.get(key)
                if found is None:
                    found = self._by_crs[key] = ProjectedBlocks.of(self.blocks, key)
        return found
