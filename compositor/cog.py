"""Writing Cloud-Optimized GeoTIFFs: the one place that says how s2seasons writes a COG.

Three callers write COGs: a block build (strips into a tiled GeoTIFF, then GDAL's COG driver), the
season's own rasters (overviews, the byte export: `write_cog_atomically`, put in place by the store
in one step) and the synthetic archive and test scenes (an array at once, `write_cog`). All of them
take their creation options from `cog_options`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

if TYPE_CHECKING:
    from compositor.storage import OutputStore

REFLECTANCE_SCALE = 0.0001
SMALLEST_OVERVIEW_PX = 128  # a built raster's overviews go down to about this size


@dataclass(frozen=True)
class BandSpec:
    """What a raster of one band declares: GDAL type, nodata, scale, description, tags."""

    gdal_type: str
    nodata: int | None
    scale: float | None
    description: str
    tags: dict[str, str] = field(hash=False)
    unit: str | None = None  # of a raster without scale (STAC raster:bands)

    @property
    def dtype(self) -> str:
        return "uint8" if self.gdal_type == "Byte" else self.gdal_type.lower()


def internal_tile_px(size_px: int) -> int:
    """Side of the internal tiles of a built raster this large."""
    return 512 if size_px >= 2048 else 256


def overview_count(size_px: int, smallest_px: int = SMALLEST_OVERVIEW_PX) -> int:
    """Overview levels: halvings while the next level is still at least ``smallest_px`` across; at least one."""
    return max(1, math.floor(math.log2(size_px / smallest_px))) if size_px > smallest_px else 1


def cog_options(size_px: int, *, resampling: str = "average", blocksize: int | None = None,
                overviews: int | str | None = None, predictor: bool = True) -> dict[str, str]:
    """GDAL COG driver creation options: deflate (with the horizontal-differencing predictor unless
    ``predictor`` is off, as for class rasters), internal tiles, ``overviews`` levels (default
    `overview_count`; ``"auto"`` leaves the choice to GDAL) resampled with ``resampling``."""
    options = {"COMPRESS": "DEFLATE", "PREDICTOR": "2" if predictor else "NO", "LEVEL": "6",
               "BLOCKSIZE": str(blocksize or internal_tile_px(size_px)), "OVERVIEW_RESAMPLING": resampling.upper(),
               "BIGTIFF": "IF_SAFER", "NUM_THREADS": "1"}
    if overviews != "auto":
        options["OVERVIEW_COUNT"] = str(overviews if overviews is not None else overview_count(size_px))
    return options


def write_cog(path: Path, data: np.ndarray, crs: str, transform: Affine, *, nodata: float | None = 0,
              resampling: str = "average", blocksize: int | None = None, overviews: int | str | None = None,
              predictor: bool = True, sparse: bool = False) -> int:
    """Write a 2-D array as a single-band COG (`cog_options`); returns the file's size in bytes.

    ``sparse`` leaves out the tiles that hold only nodata (readers see nodata). The same input
    writes the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = cog_options(max(data.shape), resampling=resampling, blocksize=blocksize, overviews=overviews,
                          predictor=predictor)
    if sparse:
        options["SPARSE_OK"] = "TRUE"
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype,
                       crs=crs, transform=transform, nodata=nodata, **options) as dst:
        dst.write(data, 1)
    return path.stat().st_size


def open_strip_writer(path: Path, crs: str, transform: Affine, shape: tuple[int, int], dtype: str,
                      nodata: float | None) -> rasterio.io.DatasetWriter:
    """A tiled GeoTIFF to fill strip by strip before it becomes a COG (`translate_to_cog`)."""
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
    """Copy a GeoTIFF as a COG (`cog_options`)."""
    with rasterio.open(src) as ds:
        size = max(ds.width, ds.height)
    rasterio.shutil.copy(src, dst, driver="COG", **cog_options(size, resampling=resampling))


def write_cog_atomically(path: PurePath, crs: str, transform: Affine, shape: tuple[int, int], spec: BandSpec,
                         fill: Callable[[rasterio.io.DatasetWriter], None], resampling: str,
                         store: OutputStore) -> PurePath:
    """A single-band COG filled by ``fill(writer)`` on a tiled GeoTIFF, then translated and put in place
    in ``store`` (where ``path`` lives) in one step: a reader sees the old file or the new one."""
    with store.writing(path) as tmp:
        strips = tmp.with_name(f"{tmp.stem}.strips{tmp.suffix}")
        try:
            with open_strip_writer(strips, crs, transform, shape, spec.dtype, spec.nodata) as writer:
                describe(writer, spec.description, spec.scale, spec.tags)
                fill(writer)
            translate_to_cog(strips, tmp, resampling=resampling)
        finally:
            strips.unlink(missing_ok=True)
    return path
