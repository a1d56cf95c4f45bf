"""Planted scenes: real COG files with chosen values and SCL classes, as `Scene` values."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box

from compositor import cog
from compositor.bands import BAND_NAMES
from compositor.catalog import Scene
from compositor.grid import OutputGrid, reproject_geometry
from compositor.offsets import SOURCE_FLAG


def write_cog(path: Path, data: np.ndarray, crs: str, transform: Affine) -> None:
    """256 px tiles, no predictor, GDAL's own overview choice and resampling (cubic): files as GDAL's COG
    driver writes them by default."""
    cog.write_cog(path, data, crs, transform, blocksize=256, overviews="auto", predictor=False, resampling="cubic")


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
    # Densified, so that the lon/lat polygon follows the raster's straight edges (within centimetres).
    footprint = reproject_geometry(outline.segmentize(max(h, w) * abs(transform.a) / 64), crs, "EPSG:4326")
    return Scene(id=scene_id, datetime=when, relative_orbit=orbit, mgrs_tile=mgrs, crs=crs, footprint=footprint,
                 cloud_cover=None, processing_baseline="04.00" if offset_dn else "03.01",
                 offset_applied=offset_dn == 0 and when >= dt.datetime(2022, 1, 25, tzinfo=dt.UTC),
                 hrefs=hrefs, platform=platform)


# --- one block of scenes over one EPSG:3035 block, for block outcomes and offset checks -------------
SEASON = "2022-summer"
GRID = OutputGrid(resolution_m=100, block_size_px=256)  # EPSG:3035
BLOCK = GRID.block_by_id("c171_r109")
WHEN = dt.datetime(2022, 7, 10, 10, 20, tzinfo=dt.UTC)


def scene_arrays(kind: str, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Reflectance * 10000 (no offset) and SCL over the block: vegetation with a lake, or all cloud."""
    rng = np.random.default_rng(seed)
    shape = BLOCK.shape
    means = {"blue": 300, "green": 600, "red": 400, "nir": 3000, "swir16": 1500, "swir22": 800}
    bands = {b: np.clip(rng.normal(v, 0.2 * v, shape), 50, None) for b, v in means.items()}
    scl = np.full(shape, 4, dtype=np.uint8)
    scl[20:80, 30:130] = 6
    for b in bands:
        bands[b][20:80, 30:130] = rng.uniform(20, 200, (60, 100))
    if kind == "cloud":
        scl[:] = 9
    return bands, scl


def plant(folder: Path, name: str, kind: str = "vegetation", *, data_offset: int = 1000, item_offset: int = 1000,
          day: int = 0):
    """A scene over `BLOCK` stored with ``data_offset`` DN whose item states ``item_offset`` (baseline 04.00,
    the Earth Search flag); returns it and its reflectance * 10000 per band."""
    bands, scl = scene_arrays(kind, seed=day)
    stored = {b: (np.rint(v) + data_offset).astype(np.uint16) for b, v in bands.items()}
    scene = planted_scene(folder, name, WHEN + dt.timedelta(days=day), 22, BLOCK.crs, BLOCK.transform, stored, scl,
                          offset_dn=data_offset, mgrs="32UQU")
    return dataclasses.replace(scene, processing_baseline="04.00", offset_dn=item_offset, offset_source=SOURCE_FLAG,
                               cloud_cover=100.0 if kind == "cloud" else 5.0), bands


def planted_series(folder: Path, kinds: list[str], *, days_apart: int = 2, half_covered_last: bool = True):
    """One planted acquisition per entry of ``kinds`` ("vegetation" or "cloud") over `BLOCK`, one orbit, stored
    without offset; the last one with data on the left half only (SCL 0 and no band values on the right) when
    ``half_covered_last``. Returns the scenes and, per scene, its stored bands and SCL array (the references)."""
    scenes, arrays = [], []
    for day, kind in enumerate(kinds):
        bands, scl = scene_arrays(kind, seed=day)
        if half_covered_last and day == len(kinds) - 1:
            scl = scl.copy()
            scl[:, BLOCK.size_px // 2:] = 0
            bands = {b: np.where(scl == 0, 0, v) for b, v in bands.items()}
        stored = {b: np.rint(v).astype(np.uint16) for b, v in bands.items()}
        scenes.append(planted_scene(folder, f"s{day}", WHEN + dt.timedelta(days=days_apart * day), 22, BLOCK.crs,
                                    BLOCK.transform, stored, scl))
        arrays.append((stored, scl))
    return scenes, arrays
