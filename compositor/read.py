"""Reading scene assets warped into a target grid (a block, a strip of it, or a map tile)."""

from __future__ import annotations

import logging
import math

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from compositor.errors import SourceUnavailableError

logger = logging.getLogger(__name__)

# GDAL options for reading COGs over HTTP: no directory listings, bounded time, retries.
GDAL_ENV: dict[str, str | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
    "GDAL_HTTP_TIMEOUT": 30,
    "GDAL_HTTP_CONNECTTIMEOUT": 10,
    "GDAL_HTTP_MAX_RETRY": 3,
    "GDAL_HTTP_RETRY_DELAY": 1,
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    "AWS_NO_SIGN_REQUEST": "YES",
}


def _pick_overview(src: rasterio.io.DatasetReader, dst_crs: str, dst_transform: Affine) -> int | None:
    """Index of the coarsest overview still at least as fine as the target pixel, or None."""
    factors = src.overviews(1)
    if not factors:
        return None
    # Target pixel size expressed in source units, from the size of one target pixel's diagonal.
    x0, y0 = dst_transform.c, dst_transform.f
    x1, y1 = dst_transform.c + dst_transform.a + dst_transform.b, dst_transform.f + dst_transform.d + dst_transform.e
    xs, ys = rasterio.warp.transform(dst_crs, src.crs, [x0, x1], [y0, y1])
    target = math.hypot(xs[1] - xs[0], ys[1] - ys[0]) / math.sqrt(2)
    level = None
    for i, factor in enumerate(factors):
        if src.res[0] * factor <= target * 1.0001:
            level = i
    return level


def read_warped(href: str, dst_crs: str, dst_transform: Affine, dst_shape: tuple[int, int],
                resampling: Resampling, *, use_overviews: bool = False, window: Window | None = None) -> np.ndarray:
    """Band 1 of ``href`` resampled into the grid ``(dst_crs, dst_transform, dst_shape)``.

    Nodata (0) stays 0 and is ignored by averaging. With ``use_overviews`` the coarsest
    overview that is still finer than the target pixel is read (for map tiles); batch builds
    read full resolution so that 10 m pixels are averaged exactly. ``window`` reads part of the
    grid. Raises `SourceUnavailableError` naming the file when it cannot be read.
    """
    height, width = dst_shape
    try:
        with rasterio.open(href) as src:
            level = _pick_overview(src, dst_crs, dst_transform) if use_overviews else None
            if level is None:  # full resolution: warp from the dataset already open
                return _warp(src, dst_crs, dst_transform, width, height, resampling, window)
        with rasterio.open(href, overview_level=level) as src:
            return _warp(src, dst_crs, dst_transform, width, height, resampling, window)
    except (RasterioError, OSError) as exc:
        raise SourceUnavailableError(f"cannot read {href}: {exc}") from None


def _warp(src: rasterio.io.DatasetReader, dst_crs: str, dst_transform: Affine, width: int, height: int,
          resampling: Resampling, window: Window | None) -> np.ndarray:
    # A 0.01 px transformer tolerance (GDAL's default is 0.125) keeps nearest-neighbour picks of
    # SCL independent of the window, so blocks of any size and tiles agree on every pixel.
    with WarpedVRT(src, crs=dst_crs, transform=dst_transform, width=width, height=height, resampling=resampling,
                   src_nodata=0, nodata=0, tolerance=0.01) as vrt:
        return vrt.read(1, window=window)
