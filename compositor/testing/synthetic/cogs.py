"""How the synthetic archive's files are laid out: single-band COGs as a data provider writes them.

The writing itself is `compositor.cog.write_cog`; what is the provider's here is the layout of its
files: 256 px internal tiles (512 above 1024 px), overviews down to 512-1024 px, nearest-neighbour
overviews and no predictor for the class raster (SCL), sparse tiles where there is no data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine

from compositor.cog import overview_count, write_cog

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
SMALLEST_OVERVIEW_PX = 512  # the smallest overview is 512 to 1024 px across


def write_scene_cog(path: Path, data: np.ndarray, crs: str, transform: Affine, *, categorical: bool = False) -> int:
    """Write ``data`` (2-D, nodata 0) as the provider would; returns bytes. Byte-identical for identical input."""
    side = max(data.shape)
    return write_cog(path, data, crs, transform, nodata=0, resampling="nearest" if categorical else "average",
                     blocksize=512 if side > 1024 else 256, overviews=overview_count(side, SMALLEST_OVERVIEW_PX),
                     predictor=not categorical, sparse=True)
