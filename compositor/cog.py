"""Writing Cloud-Optimized GeoTIFFs: strips into a temporary GeoTIFF, then GDAL's COG driver."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

REFLECTANCE_SCALE = 0.0001


def internal_tile_px(size_px: int) -> int:
    return 512 if size_px >= 2048 else 256


def overview_count(size_px: int) -> int:
    """Overview levels so that the smallest is about 128 px (at least one level)."""
    return max(1, int(math.floor(math.log2(max(size_px, 256) / 128))))


def open_strip_writer(path: Path, crs: str, transform: Affine, shape: tuple[int, int], dtype: str,
                      nodata: float | None) -> rasterio.io.DatasetWriter:
    """A tiled GeoTIFF to fill strip by strip before it becomes a COG."""
    tile = internal_tile_px(max(shape))
    return rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1, dtype=dtype,
                         crs=crs, transform=transform, nodata=nodata, tiled=True, blockxsize=tile,
                         blockysize=tile, compress="lzw")


def describe(dst: rasterio.io.DatasetWriter, description: str, scale: float | None, tags: Mapping[str, str]) -> None:
    dst.set_band_description(1, description)
    if scale is not None:
        dst.scales = (scale,)
        dst.offsets = (0.0,)
    dst.update_tags(**{k: str(v) for k, v in tags.items()})


def write_strip(dst: rasterio.io.DatasetWriter, row_off: int, data: np.ndarray) -> None:
    dst.write(data, 1, window=Window(0, row_off, data.shape[1], data.shape[0]))


def translate_to_cog(src: Path, dst: Path, *, resampling: str = "AVERAGE") -> None:
    """Copy a GeoTIFF as a COG (deflate, predictor 2, internal tiles, overviews)."""
    with rasterio.open(src) as ds:
        size = max(ds.width, ds.height)
    rasterio.shutil.copy(
        src, dst, driver="COG", COMPRESS="DEFLATE", PREDICTOR="2", LEVEL="6",
        BLOCKSIZE=str(internal_tile_px(size)), OVERVIEW_RESAMPLING=resampling,
        OVERVIEW_COUNT=str(overview_count(size)), BIGTIFF="IF_SAFER", NUM_THREADS="1",
    )
