"""The season overview: one COG per band and kind over the whole mosaic at 16x the pixel size.

The season VRTs name it as their band's explicit ``<Overview>``, so a reader asking for a small image
of a large area (a whole-continent map) reads that one file instead of opening every block::

    DATA/<season>/overview/s2l2a_red_p50_480m_<dates>_epsg3035.tif
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path, PurePath

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from compositor.cog import write_cog_atomically
from compositor.describe import overview_resampling, season_spec
from compositor.errors import InvalidInputError
from compositor.grid import Block, OutputGrid
from compositor.index import MosaicExtent, built_blocks, mosaic_extent, season_rasters
from compositor.layout import SeasonLayout
from compositor.storage import OutputStore

logger = logging.getLogger(__name__)

DEFAULT_OVERVIEW_FACTOR = 16
OVERVIEW_READERS = 16  # block files read at once from an object store for the season overview


def check_overview_factor(grid: OutputGrid, factor: int) -> None:
    if factor < 2 or grid.block_size_px % factor:
        raise InvalidInputError(
            f"overview factor {factor}: use a divisor of the block size ({grid.block_size_px} px) of at least 2, "
            "such as 16"
        )


def _fill_overview(sources: Sequence[tuple[Block, PurePath]], extent: MosaicExtent, factor: int,
                   resampling: str, store: OutputStore) -> Callable[[rasterio.io.DatasetWriter], None]:
    """Each block decimated into its place; an object store's blocks are read side by side (round trips)."""
    size = extent.block_size_px // factor
    options = store.gdal_options()  # GDAL options are per thread: each reader sets them

    def read(path: PurePath) -> np.ndarray:
        with rasterio.Env(**options), rasterio.open(path) as src:
            return src.read(1, out_shape=(size, size), resampling=Resampling[resampling])

    def fill(writer: rasterio.io.DatasetWriter) -> None:
        with ThreadPoolExecutor(store.parallel_reads(OVERVIEW_READERS)) as pool:
            for (block, _), data in zip(sources, pool.map(read, [path for _, path in sources])):
                xoff, yoff = extent.offset_px(block)
                writer.write(data, 1, window=Window(xoff // factor, yoff // factor, size, size))

    return fill


def write_season_overview(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str] | None = None,
                          factor: int = DEFAULT_OVERVIEW_FACTOR) -> list[Path]:
    """A COG per band and kind at ``factor`` times the grid's pixel size over the VRT's extent.

    Each block is read once, decimated by GDAL from the block's own internal overviews, so the
    cost is about one small overview read per block. Reflectance is averaged (nodata 0 is left
    out of the average, as in the blocks' own overviews); counts are sampled with nearest
    neighbour, as in the blocks' own overviews: a count stays the count of a real pixel (an
    integer that was observed, 0 where nothing was) instead of a mean that no pixel has, and the
    overview agrees with what GDAL returns when it zooms out of a single block. (``max`` would
    overstate reliability, and GDAL's RasterIO offers no max/min.) Same dtype, nodata, scale,
    description and tags as the blocks. ``factor`` must divide the block size.
    """
    check_overview_factor(grid, factor)
    blocks = built_blocks(layout, grid, check_files=True)
    if not blocks:
        logger.warning("season %s has no built block: no overview written", layout.season.name)
        return []
    extent = mosaic_extent(blocks)
    resolution_m = grid.resolution_m * factor
    transform = extent.transform @ Affine.scale(factor)
    shape = (extent.height // factor, extent.width // factor)
    written = []
    for band, kind, sources in season_rasters(layout, blocks, bands):
        spec = season_spec(layout.season, band, kind, layout.variant)
        spec = replace(spec, tags={**spec.tags, "resolution_m": f"{resolution_m:g}", "overview_factor": str(factor)})
        resampling = overview_resampling(kind)
        written.append(write_cog_atomically(layout.overview_file(band, kind, resolution_m), grid.crs, transform, shape,
                                            spec, _fill_overview(sources, extent, factor, resampling, layout.store),
                                            resampling, layout.store))
    logger.info("season %s: %d overview rasters at %g m", layout.season.name, len(written), resolution_m)
    return written
