"""Reading built blocks into any target grid (a map tile, a crop, one pixel).

Which pixels are built is decided by geometry, not by data: the outlines of the built blocks are
rasterized into the target grid (pixel centres), so a built pixel with no observation stays empty
instead of being filled from the scenes. Each block file is read with rio-tiler (overviews chosen
by GDAL for the target resolution, as a plain TiTiler tile of that COG would); at coarse
resolutions the season's overview raster (16x the pixel size) is read instead of many blocks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from rio_tiler.io import Reader
from shapely.geometry import box

from app.registry import BuiltBlock, SeasonState
from compositor.errors import SourceUnavailableError

OVERVIEW_USE_RATIO = 0.75  # read the season overview when target pixels are at least this fraction of its size


@functools.lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def crs_key(crs: CRS | str) -> str:
    return crs if isinstance(crs, str) else (crs.to_string() or crs.to_wkt())


def block_labels(state: SeasonState, blocks: Sequence[BuiltBlock], crs: CRS, transform: Affine,
                 shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` int32: 0 where no built block covers the pixel centre, else 1 + the block's index."""
    if not blocks:
        return np.zeros(shape, dtype=np.int32)
    polygons = [box(*b.block.bounds).segmentize(b.block.span_m / 16) for b in blocks]
    src, dst = crs_key(state.grid.crs), crs_key(crs)
    if CRS.from_user_input(src) != crs:
        transformer = _transformer(src, dst)

        def project(coords: np.ndarray) -> np.ndarray:
            x, y = transformer.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        polygons = list(shapely.transform(np.array(polygons, dtype=object), project))
    shapes = [(p, i + 1) for i, p in enumerate(polygons) if p.is_valid and np.isfinite(p.bounds).all()]
    if not shapes:
        return np.zeros(shape, dtype=np.int32)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32", all_touched=False)


def read_file(path: Path, crs: CRS, transform: Affine, shape: tuple[int, int], resampling: str = "nearest",
              reproject: str = "nearest") -> np.ndarray:
    """Band 1 of a built COG on the target grid (uint16; values outside the file are meaningless)."""
    bounds = array_bounds(shape[0], shape[1], transform)
    west, south, east, north = bounds
    try:
        with Reader(str(path)) as src:
            image = src.part((west, south, east, north), dst_crs=crs, bounds_crs=crs, height=shape[0],
                             width=shape[1], max_size=None, resampling_method=resampling,
                             reproject_method=reproject)
    except Exception as exc:  # a block file removed or replaced under us, or corrupt
        raise SourceUnavailableError(f"cannot read built file {path.name}: {exc}") from None
    return image.array.data[0]


def grid_pixel_size(state: SeasonState, bounds_grid: tuple[float, float, float, float], shape: tuple[int, int]) -> float:
    """Approximate size (grid CRS units) of one target pixel."""
    return max((bounds_grid[2] - bounds_grid[0]) / shape[1], (bounds_grid[3] - bounds_grid[1]) / shape[0])


def read_built(state: SeasonState, blocks: Sequence[BuiltBlock], labels: np.ndarray, band: str, kind: str,
               crs: CRS, transform: Affine, shape: tuple[int, int], *, pixel_size_grid: float,
               resampling: str = "nearest", reproject: str = "nearest") -> np.ndarray:
    """uint16 values of ``band``/``kind`` where ``labels`` > 0 (0 elsewhere)."""
    out = np.zeros(shape, dtype=np.uint16)
    layout = state.layout
    overview = layout.overview_file(band, kind, state.overview_resolution_m())
    if pixel_size_grid >= OVERVIEW_USE_RATIO * state.overview_resolution_m() and overview.is_file():
        data = read_file(overview, crs, transform, shape, resampling, reproject)
        inside = labels > 0
        out[inside] = data[inside]
        return out
    for index, built in enumerate(blocks, start=1):
        inside = labels == index
        if not inside.any():
            continue
        data = read_file(layout.block_file(built.block.id, band, kind), crs, transform, shape, resampling, reproject)
        out[inside] = data[inside]
    return out
