"""Rendering scenes: one acquisition over every tile it sees, as COGs plus a STAC item.

Runs in worker processes. Each worker keeps the ground of the region and the located pixels
of every tile it has rendered, so that only the day's surface, the sky and the noise are
computed per scene. A scene is: the clear-sky surface of the day at the pixel centres, times
the orbit's view-angle brightness, inside the pass's data extent (``edges``: the real swath
geometry with irregular edges and datatake ends), seen through the acquisition's sky, plus sensor noise,
coded as DN (with the baseline 04.00 offset unless the item says it was removed). The "10 m"
bands are computed at the 10 m-grid pixel centres, the "20 m" bands and the SCL at the 20 m
grid's, each from the same ground and sky.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from compositor.testing.synthetic import stac
from compositor.testing.synthetic.atmosphere import Sky, SkyGrid, apply_sky, classify_scl, make_sky, sample_sky
from compositor.testing.synthetic.cogs import write_scene_cog
from compositor.testing.synthetic.edges import PassSwath, pass_swath
from compositor.testing.synthetic.geometry import Region, TilePixels, footprint_4326, locate_pixels
from compositor.testing.synthetic.landcover import WATER, Ground, GroundPoints, build_ground, describe_ground
from compositor.testing.synthetic.noise import seeded_rng
from compositor.testing.synthetic.schedule import BOA_ADD_OFFSET_DN, Acquisition, has_boa_offset, sun_position
from compositor.testing.synthetic.sensor import add_noise, encode_dn, orbit_brightness
from compositor.testing.synthetic.surface import BANDS, band_indices, low_sun, snow_fraction, surface_reflectance
from compositor.testing.synthetic.tiles import TILE_SIZE_M, MgrsTile

logger = logging.getLogger(__name__)

FINE_BANDS = ("blue", "green", "red", "nir")


@dataclass(frozen=True)
class ArchiveSpec:
    """Everything a worker needs to render any scene of the archive (small, picklable)."""

    out_dir: Path
    seed: int
    pixel_size_m: float
    region: Region
    sky_grid: SkyGrid
    tiles: tuple[MgrsTile, ...]
    orbits: tuple[int, ...]
    time_ranges: tuple[tuple[float, float], ...]  # per orbit (same order): s after the ANX it sees the region

    def swath(self, acq: Acquisition) -> PassSwath:
        """The data extent of the pass ``acq`` (deterministic from the seed and the pass)."""
        times = self.time_ranges[self.orbits.index(acq.relative_orbit)]
        return pass_swath(self.seed, acq.relative_orbit, acq.key, times)


@dataclass(frozen=True)
class GridView:
    """The pixels of one tile grid inside the region (window rows/cols of the full grid)."""

    size: int
    rows: slice
    cols: slice
    in_region: np.ndarray
    view_time_s: dict[int, np.ndarray]
    view_deg: dict[int, np.ndarray]
    ground: GroundPoints
    sky_i: np.ndarray
    sky_j: np.ndarray


@dataclass(frozen=True)
class SceneResult:
    item: dict
    n_files: int
    bytes_written: int


_CACHE: dict[tuple, object] = {}


def clear_cache() -> None:
    """Forget the grounds and tile pixels kept by this process."""
    _CACHE.clear()


def ground_for(spec: ArchiveSpec) -> Ground:
    key = ("ground", spec.seed, spec.region.bounds_3035)
    if key not in _CACHE:
        _CACHE[key] = build_ground(spec.region.bounds_3035, spec.seed)
    return _CACHE[key]


def view_for(spec: ArchiveSpec, tile: MgrsTile, pixel_size_m: float) -> GridView | None:
    """The tile's grid at ``pixel_size_m`` within the region, located and described (cached)."""
    key = ("view", spec.seed, spec.region.bounds_3035, spec.orbits, tile, pixel_size_m)
    if key not in _CACHE:
        _CACHE[key] = _build_view(spec, tile, pixel_size_m)
    return _CACHE[key]


def _build_view(spec: ArchiveSpec, tile: MgrsTile, pixel_size_m: float) -> GridView | None:
    pixels = locate_pixels(tile, pixel_size_m, spec.region, spec.orbits)
    if pixels is None:
        return None
    ground = describe_ground(ground_for(spec), pixels.x_m, pixels.y_m)
    sky_i, sky_j = spec.sky_grid.indices(pixels.x_m, pixels.y_m)
    return GridView(
        pixels.size,
        slice(pixels.row0, pixels.row1),
        slice(pixels.col0, pixels.col1),
        pixels.in_region,
        pixels.view_time_s,
        pixels.view_deg,
        ground,
        sky_i,
        sky_j,
    )


def swath_mask(view: GridView | TilePixels, swath: PassSwath) -> np.ndarray:
    """Window pixels that are in the region and hold data on the pass (its swath and datatake)."""
    orbit = swath.relative_orbit
    return view.in_region & swath.covers(view.view_time_s[orbit], view.view_deg[orbit])


def scene_count(pixels: TilePixels | None, swath: PassSwath) -> int:
    """Number of 20 m-grid pixels with data in the scene of a pass on a tile (0: no scene).

    ``pixels``: the tile's "20 m" grid located with ``locate_pixels`` (None: the tile misses the region).
    """
    return 0 if pixels is None else int(swath_mask(pixels, swath).sum())


def sky_for(spec: ArchiveSpec, acq: Acquisition) -> Sky:
    lon, lat = spec.region.centre_4326
    azimuth, elevation = sun_position(acq.sensing_time(lat), lon, lat)
    return make_sky(spec.sky_grid, spec.seed, acq.key, azimuth, elevation)


def render_acquisition(spec: ArchiveSpec, acq: Acquisition) -> list[SceneResult]:
    """Every scene of one acquisition (tiles without data in the swath give none)."""
    sky = sky_for(spec, acq)
    results = []
    for tile in spec.tiles:
        result = render_scene(spec, tile, acq, sky)
        if result is not None:
            results.append(result)
    logger.debug("rendered %s: %d scenes", acq.key, len(results))
    return results


def render_scene(spec: ArchiveSpec, tile: MgrsTile, acq: Acquisition, sky: Sky) -> SceneResult | None:
    """Write the COGs of one scene and return its STAC item; None when the tile has no data."""
    coarse = view_for(spec, tile, 2 * spec.pixel_size_m)
    swath = spec.swath(acq)
    if coarse is None or not swath_mask(coarse, swath).any():
        return None
    has_offset = has_boa_offset(acq.baseline)
    removed = stac.offset_removed(tile, acq, has_offset)
    offset_dn = BOA_ADD_OFFSET_DN if has_offset and not removed else 0
    arrays = coarse_arrays(spec, coarse, tile, acq, sky, offset_dn, swath)
    arrays.update(fine_arrays(spec, view_for(spec, tile, spec.pixel_size_m), tile, acq, sky, offset_dn, swath))
    written = write_scene(spec.out_dir / stac.scene_dir(tile, acq), arrays, tile, spec.pixel_size_m)

    geometry, bbox = footprint_4326(arrays["SCL"] > 0, tile, 2 * spec.pixel_size_m)
    centre = tile.centre_4326()
    when = acq.sensing_time(centre[1])
    item = stac.scene_item(
        tile,
        acq,
        when=when,
        sun=sun_position(when, *centre),
        geometry=geometry,
        bbox=bbox,
        pixel_size_m=spec.pixel_size_m,
        n_pixels=arrays["B02"].shape[0],
        boa_offset_applied=removed,
        has_offset=has_offset,
        scl_props=stac.scl_properties(arrays["SCL"]),
    )
    return SceneResult(item, len(arrays), written)


def coarse_arrays(
    spec: ArchiveSpec, view: GridView, tile: MgrsTile, acq: Acquisition, sky: Sky, offset_dn: int, swath: PassSwath
) -> dict[str, np.ndarray]:
    """The full-tile SCL (uint8) and "20 m" bands B11, B12 (uint16 DN) of a scene."""
    valid = swath_mask(view, swath)
    rows, cols, refl, layers, ground = observe(spec, view, valid, tile, acq, sky, BANDS)
    lat = spec.region.centre_4326[1]
    snow = snow_fraction(ground, acq.date, spec.seed)
    dark = ground.terrain_dark & low_sun(acq.date, lat)
    inside = valid[rows, cols]
    scl = classify_scl(refl, layers, ground.cover == WATER, snow, dark, inside)
    arrays = {"SCL": _place(view, rows, cols, scl)}
    for stem, band in (("B11", "swir16"), ("B12", "swir22")):
        arrays[stem] = _place(view, rows, cols, encode_dn(refl[BANDS.index(band)], inside, offset_dn))
    return arrays


def fine_arrays(
    spec: ArchiveSpec, view: GridView, tile: MgrsTile, acq: Acquisition, sky: Sky, offset_dn: int, swath: PassSwath
) -> dict[str, np.ndarray]:
    """The full-tile "10 m" bands B02, B03, B04, B08 (uint16 DN) of a scene."""
    valid = swath_mask(view, swath)
    stems = ("B02", "B03", "B04", "B08")
    if not valid.any():  # the swath clips a sliver that only the coarser grid catches
        return {stem: np.zeros((view.size, view.size), np.uint16) for stem in stems}
    rows, cols, refl, _, _ = observe(spec, view, valid, tile, acq, sky, FINE_BANDS)
    inside = valid[rows, cols]
    return {stem: _place(view, rows, cols, encode_dn(refl[k], inside, offset_dn)) for k, stem in enumerate(stems)}


def observe(
    spec: ArchiveSpec,
    view: GridView,
    valid: np.ndarray,
    tile: MgrsTile,
    acq: Acquisition,
    sky: Sky,
    bands: tuple[str, ...],
) -> tuple[slice, slice, np.ndarray, np.ndarray, GroundPoints]:
    """Reflectance as observed, (bands, h, w) float32, over the bounding box (rows, cols) of ``valid``.

    Also returns the sky layers and the ground traits of that box. The surface of the day, times
    the orbit's view-angle brightness, through the sky, plus noise seeded by (seed, acquisition, tile).
    """
    rows_any = np.flatnonzero(valid.any(axis=1))
    cols_any = np.flatnonzero(valid.any(axis=0))
    rows = slice(int(rows_any[0]), int(rows_any[-1]) + 1)
    cols = slice(int(cols_any[0]), int(cols_any[-1]) + 1)
    ground = view.ground.window(rows, cols)
    refl = surface_reflectance(ground, acq.date, spec.seed, spec.region.centre_4326[1], bands)
    refl *= orbit_brightness(acq.relative_orbit, view.view_deg[acq.relative_orbit][rows, cols])
    layers = sample_sky(sky, view.sky_i[rows, cols], view.sky_j[rows, cols])
    apply_sky(refl, layers, sky, band_indices(bands))
    add_noise(refl, seeded_rng(spec.seed, "noise", acq.key, tile.code, view.size), TILE_SIZE_M / view.size)
    return rows, cols, refl, layers, ground


def write_scene(folder: Path, arrays: dict[str, np.ndarray], tile: MgrsTile, pixel_size_m: float) -> int:
    """Write each array as ``<stem>.tif`` in the tile's CRS and grid; returns the bytes written."""
    written = 0
    fine_size = int(round(TILE_SIZE_M / pixel_size_m))
    for stem, data in arrays.items():
        res = pixel_size_m if data.shape[0] == fine_size else 2 * pixel_size_m
        transform = Affine(*tile.transform(res))
        written += write_scene_cog(folder / f"{stem}.tif", data, f"EPSG:{tile.epsg}", transform, categorical=stem == "SCL")
    return written


def _place(view: GridView, rows: slice, cols: slice, window: np.ndarray) -> np.ndarray:
    """A full-tile array of zeros (nodata) holding ``window`` at (rows, cols) of the view's window."""
    full = np.zeros((view.size, view.size), dtype=window.dtype)
    r0, c0 = view.rows.start + rows.start, view.cols.start + cols.start
    full[r0 : r0 + window.shape[0], c0 : c0 + window.shape[1]] = window
    return full
