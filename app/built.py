"""Reading built blocks into any target grid (a map tile, a crop, one pixel).

Which pixels are built is decided by geometry, not by data: the outlines of the built blocks are
rasterized into the target grid (pixel centres), so a built pixel with no observation stays empty
instead of being filled from the scenes. Each block file is read with rio-tiler (overviews chosen
by GDAL for the target resolution, as a plain TiTiler tile of that COG would); at coarse
resolutions the season's overview raster (16x the pixel size) is read instead of many blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from rio_tiler.io import Reader

from app.registry import BuiltBlock, SeasonState
from compositor.errors import SourceUnavailableError

OVERVIEW_USE_RATIO = 0.75  # read the season overview when target pixels are at least this fraction of its size


def covering_blocks(state: SeasonState, crs: CRS, transform: Affine, shape: tuple[int, int],
                    bands: Sequence[str]) -> tuple[list[BuiltBlock], np.ndarray, float]:
    """The built blocks (holding ``bands``) under a target grid, its label raster and the grid pixel size.

    Labels are ``(h, w)`` int32: 0 where no such block covers the pixel centre, else 1 + the index
    in the returned list. The pixel size is the target pixel in grid CRS units (for overview choice).
    """
    projected = state.built.projected(crs)
    if projected is None:
        return [], np.zeros(shape, dtype=np.int32), 0.0
    bounds = array_bounds(shape[0], shape[1], transform)
    wanted = set(bands)
    hits = [i for i in projected.query(bounds) if wanted <= state.built.blocks[i].bands]
    if not hits:
        return [], np.zeros(shape, dtype=np.int32), 0.0
    shapes = [(projected.outlines[i], n) for n, i in enumerate(hits, start=1)]
    labels = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32", all_touched=False)
    scale = float(np.mean([projected.scales[i] for i in hits])) or 1.0
    pixel_size_grid = max(abs(transform.a), abs(transform.e)) / scale
    return [state.built.blocks[i] for i in hits], labels, pixel_size_grid


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
