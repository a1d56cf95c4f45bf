"""The sky of one acquisition: clouds, thin clouds, cirrus and cloud shadows, and the SCL they give.

One sky per (date, relative orbit), drawn from a generator seeded by (seed, date, orbit) on a
north-up EPSG:3035 grid over the region, so that every tile of the acquisition, in either UTM
zone, sees the same clouds. Thick clouds are the upper part of a fractal field thresholded to
the day's cover (clear days to overcast); their shadows are the same field displaced away from
the sun by cloud height / tan(sun elevation). The SCL follows the opacities with fixed
thresholds; the faint outer rims of clouds stay labelled clear while they brighten the values,
as the real classifier misses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compositor.testing.synthetic.noise import fractal_from_rng, sample_bilinear, seeded_rng

SKY_SPACING_M = 250.0
SKY_MARGIN_M = 20_000.0  # beyond the region, so shadows of clouds outside it fall inside
LAYERS = ("thick", "thin", "cirrus", "shadow")
_CLOUD = np.array([0.50, 0.49, 0.48, 0.52, 0.38, 0.26], dtype=np.float32)  # per surface.BANDS
_CIRRUS = np.array([0.045, 0.040, 0.035, 0.030, 0.010, 0.005], dtype=np.float32)
_SHADOW_DEPTH = np.array([0.45, 0.50, 0.55, 0.60, 0.60, 0.60], dtype=np.float32)
_THIN_OPACITY = 0.4
# SCL thresholds on the opacities; rims below them (opacity 0.03-0.12) stay "clear", about 3 % of
# the clear pixels, most of them brightened by less than 10 % cloud
_HIGH_FROM, _MEDIUM_FROM, _UNCLASSIFIED_FROM, _THIN_MEDIUM_FROM = 0.5, 0.16, 0.12, 0.4
_CIRRUS_FROM, _SHADOW_FROM = 0.35, 0.3

# SCL classes (Sentinel-2 L2A scene classification)
SCL_NODATA, SCL_SATURATED, SCL_DARK, SCL_SHADOW, SCL_VEGETATION, SCL_NOT_VEGETATED = 0, 1, 2, 3, 4, 5
SCL_WATER, SCL_UNCLASSIFIED, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 6, 7, 8, 9, 10, 11


@dataclass(frozen=True)
class SkyGrid:
    """The north-up EPSG:3035 grid the skies are drawn on (node (i, j) at x0 + j*s, y0 - i*s).

    ``grid_north_deg``: the direction of true north, in degrees clockwise from grid north, at
    the region centre, to point shadows in true directions.
    """

    x0_m: float
    y0_m: float
    shape: tuple[int, int]
    region_rows: tuple[int, int]
    region_cols: tuple[int, int]
    grid_north_deg: float
    spacing_m: float = SKY_SPACING_M

    def indices(self, x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, column) of EPSG:3035 points (m) on this grid, float32."""
        rows = (self.y0_m - y_m) / self.spacing_m
        cols = (x_m - self.x0_m) / self.spacing_m
        return rows.astype(np.float32), cols.astype(np.float32)


@dataclass(frozen=True)
class Sky:
    """The fields of one acquisition on a SkyGrid: opacities 0..1, stacked as LAYERS (float32)."""

    layers: np.ndarray  # (4, rows, cols)
    cloud_cover: float  # target fraction of the region under thick cloud
    cloud_height_m: float
    shadow_offset_m: tuple[float, float]  # (east, north) displacement of shadows from their clouds
    cloud_brightness: float


def make_sky_grid(bounds_3035: tuple[float, float, float, float], grid_north_deg: float) -> SkyGrid:
    """The sky grid over the region (EPSG:3035 bounds, m) plus SKY_MARGIN_M on every side."""
    xmin, ymin, xmax, ymax = bounds_3035
    s = SKY_SPACING_M
    x0 = math.floor((xmin - SKY_MARGIN_M) / s) * s
    y0 = math.ceil((ymax + SKY_MARGIN_M) / s) * s
    shape = (int(math.ceil((y0 - ymin + SKY_MARGIN_M) / s)) + 1, int(math.ceil((xmax + SKY_MARGIN_M - x0) / s)) + 1)
    rows = (int((y0 - ymax) // s), int(math.ceil((y0 - ymin) / s)) + 1)
    cols = (int((xmin - x0) // s), int(math.ceil((xmax - x0) / s)) + 1)
    return SkyGrid(float(x0), float(y0), shape, rows, cols, grid_north_deg)


def make_sky(grid: SkyGrid, seed: int, key: str, sun_azimuth_deg: float, sun_elevation_deg: float) -> Sky:
    """The sky of the acquisition ``key`` (e.g. ``20220203-R065``): deterministic in (seed, key)."""
    rng = seeded_rng(seed, "sky", key)
    regime = rng.random()
    if regime < 0.3:
        cover, thin_cover = rng.uniform(0.0, 0.02), rng.uniform(0.0, 0.06)
    elif regime < 0.55:
        cover, thin_cover = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.2)
    elif regime < 0.75:
        cover, thin_cover = rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.3)
    else:
        cover, thin_cover = rng.uniform(0.7, 1.0), rng.uniform(0.05, 0.3)
    cirrus_cover = rng.uniform(0.05, 0.35) if rng.random() < 0.4 else 0.0
    height = rng.uniform(800.0, 3000.0)
    brightness = rng.uniform(0.9, 1.1)

    thick = _threshold(grid, fractal_from_rng(rng, grid.shape, (96, 48, 24, 12, 6, 3), 0.8), cover, 0.05)
    thin = _threshold(grid, fractal_from_rng(rng, grid.shape, (48, 24, 12, 6, 3), 0.7), thin_cover, 0.08)
    cirrus = _threshold(grid, _streaks(rng, grid.shape), cirrus_cover, 0.10)

    length = height / math.tan(math.radians(max(sun_elevation_deg, 5.0)))
    away = math.radians(sun_azimuth_deg + 180.0)
    offset = (length * math.sin(away), length * math.cos(away))  # (east, north), away from the sun
    shadow = _displace(thick, grid, offset)
    return Sky(np.stack([thick, thin, cirrus, shadow]), float(cover), float(height), offset, float(brightness))


def _threshold(grid: SkyGrid, field: np.ndarray, cover: float, width: float) -> np.ndarray:
    """Opacity 0..1: the field above its (1 - cover) quantile over the region, ramped over ``width``."""
    if cover <= 1e-3:
        return np.zeros_like(field)
    inside = field[grid.region_rows[0] : grid.region_rows[1], grid.region_cols[0] : grid.region_cols[1]]
    level = float(np.quantile(inside, 1.0 - cover)) - (width if cover >= 0.999 else 0.0)
    return np.clip((field - level) / width, 0.0, 1.0).astype(np.float32)


def _streaks(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A fractal field stretched 4x along a random direction: cirrus bands."""
    side = int(math.ceil(math.hypot(*shape))) + 4
    base = fractal_from_rng(rng, (side, side // 4 + 4), (24, 12, 6, 3), 0.7)
    angle = rng.uniform(0.0, math.pi)
    i, j = _node_indices(shape)
    i -= shape[0] / 2
    j -= shape[1] / 2
    along = (math.cos(angle) * i + math.sin(angle) * j) + side / 2
    across = (-math.sin(angle) * i + math.cos(angle) * j) / 4 + (side // 4 + 4) / 2
    return sample_bilinear(base, along, across)


def _displace(field: np.ndarray, grid: SkyGrid, offset_m: tuple[float, float]) -> np.ndarray:
    """``field`` moved by (east, north) metres: out(p) = field(p - offset)."""
    gamma = math.radians(grid.grid_north_deg)
    # true east/north unit vectors in grid (x, y) coordinates
    dx = offset_m[0] * math.cos(gamma) + offset_m[1] * math.sin(gamma)
    dy = -offset_m[0] * math.sin(gamma) + offset_m[1] * math.cos(gamma)
    i, j = _node_indices(field.shape)
    return sample_bilinear(field, i + dy / grid.spacing_m, j - dx / grid.spacing_m)


def _node_indices(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) index arrays of a grid, float32."""
    rows = np.arange(shape[0], dtype=np.float32)
    cols = np.arange(shape[1], dtype=np.float32)
    return np.meshgrid(rows, cols, indexing="ij")


def sample_sky(sky: Sky, fi: np.ndarray, fj: np.ndarray) -> np.ndarray:
    """The sky layers at fractional grid indices, shape (4,) + fi.shape, float32."""
    return sample_bilinear(sky.layers, fi, fj)


def apply_sky(refl: np.ndarray, layers: np.ndarray, sky: Sky, band_idx: list[int]) -> np.ndarray:
    """Top-of-canopy reflectance seen through the sky, in place; ``refl`` is (bands, ...) float32."""
    thick, thin, cirrus, shadow = layers
    opacity = np.maximum(thick, _THIN_OPACITY * thin)
    lit = shadow * (1.0 - thick)
    for k, b in enumerate(band_idx):
        band = refl[k]
        band *= 1.0 - _SHADOW_DEPTH[b] * lit
        band += _CIRRUS[b] * cirrus
        band += opacity * (_CLOUD[b] * sky.cloud_brightness - band)
    return refl


def classify_scl(
    refl: np.ndarray, layers: np.ndarray, water: np.ndarray, snow: np.ndarray, dark: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """SCL (uint8) from the observed six-band reflectance (surface.BANDS order) and the sky layers.

    ``water``/``dark``: ground that is water or shaded slope; ``snow``: visible snow fraction.
    """
    thick, thin, cirrus, shadow = layers
    red, nir = refl[2], refl[3]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-4)
    scl = np.where(ndvi >= 0.3, SCL_VEGETATION, SCL_NOT_VEGETATED).astype(np.uint8)
    scl[dark | (refl[1] + refl[2] + refl[3] < 0.07)] = SCL_DARK
    scl[water] = SCL_WATER
    scl[snow >= 0.5] = SCL_SNOW
    scl[shadow * (1.0 - thick) >= _SHADOW_FROM] = SCL_SHADOW
    scl[cirrus >= _CIRRUS_FROM] = SCL_CIRRUS
    scl[thick >= _UNCLASSIFIED_FROM] = SCL_UNCLASSIFIED
    scl[(thick >= _MEDIUM_FROM) | (thin >= _THIN_MEDIUM_FROM)] = SCL_CLOUD_MEDIUM
    scl[thick >= _HIGH_FROM] = SCL_CLOUD_HIGH
    scl[~valid] = SCL_NODATA
    return scl
