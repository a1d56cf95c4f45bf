"""Writing single-band Cloud-Optimized GeoTIFFs, byte-identical for identical input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def write_cog(path: Path, data: np.ndarray, crs: str, transform: Affine, *, categorical: bool = False) -> int:
    """Write ``data`` (2-D, nodata 0) as a deflate COG with internal tiles and overviews; returns bytes.

    One overview level for tiles up to 2048 pixels across (a "10 m" band at 100 m: 1098 -> 549),
    more for larger ones, down to about 1000 pixels.

    Overviews average reflectance and take the nearest class for categorical rasters (SCL).
    Blocks that hold only nodata are not stored (sparse), which readers see as 0.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    side = max(data.shape)
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype,
        "crs": crs,
        "transform": transform,
        "nodata": 0,
        "compress": "deflate",
        "predictor": "NO" if categorical else "YES",
        "blocksize": 512 if side > 1024 else 256,
        "overview_count": overview_count(side),
        "overview_resampling": "nearest" if categorical else "average",
        "sparse_ok": True,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path.stat().st_size


def overview_count(side: int) -> int:
    """Halvings until the smallest overview is at most 1024 pixels across (at least one)."""
    return max(1, math.ceil(math.log2(side / 1024))) if side > 1024 else 1
