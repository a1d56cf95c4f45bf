"""Planted scenes: real COG files with chosen values and SCL classes, as `Scene` values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box

from compositor.bands import BAND_NAMES
from compositor.catalog import Scene
from compositor.grid import reproject_geometry


def write_cog(path: Path, data: np.ndarray, crs: str, transform: Affine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=0, BLOCKSIZE=256,
                       COMPRESS="DEFLATE") as dst:
        dst.write(data, 1)


def planted_scene(folder: Path, scene_id: str, when: dt.datetime, orbit: int, crs: str, transform: Affine,
                  bands: dict[str, np.ndarray], scl: np.ndarray, *, offset_dn: int = 0,
                  platform: str = "sentinel-2a", mgrs: str = "32UQU", scl_transform: Affine | None = None) -> Scene:
    """Write the bands (uint16 DN as stored, offset included) and SCL as COGs and describe them.

    The SCL is on the bands' grid unless ``scl_transform`` gives its own (e.g. 20 m beside 10 m bands).
    """
    hrefs = {}
    for name in BAND_NAMES:
        write_cog(folder / scene_id / f"{name}.tif", bands[name], crs, transform)
        hrefs[name] = str(folder / scene_id / f"{name}.tif")
    write_cog(folder / scene_id / "scl.tif", scl.astype(np.uint8), crs, scl_transform or transform)
    hrefs["scl"] = str(folder / scene_id / "scl.tif")
    h, w = bands[BAND_NAMES[0]].shape
    outline = box(*rasterio.transform.array_bounds(h, w, transform))
    footprint = reproject_geometry(outline, crs, "EPSG:4326")
    return Scene(id=scene_id, datetime=when, relative_orbit=orbit, mgrs_tile=mgrs, crs=crs, footprint=footprint,
                 cloud_cover=None, processing_baseline="04.00" if offset_dn else "03.01",
                 offset_applied=offset_dn == 0 and when >= dt.datetime(2022, 1, 25, tzinfo=dt.UTC),
                 hrefs=hrefs, platform=platform)
