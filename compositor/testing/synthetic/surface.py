"""Clear-sky surface reflectance of the synthetic ground on a given day.

Each land-cover class mixes a background spectrum (soil, litter, dormant grass) with a green
vegetation spectrum by a greenness that follows the class's phenology over the year (winter
cereals green-up in April and are harvested in July, maize grows June to September, meadows
are mown, deciduous forest is leafless from November to April). Parcels shift the calendar
by a few days and scale the brightness. Snow, from a day-by-day snowfall and melt model per
winter, covers the snow-prone ground first and shows less through forest canopies; steep
shaded slopes turn dark when the sun is low. No orbit, noise or atmosphere here: this is
what the truth rasters hold and what the scenes start from.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np

from compositor.testing.synthetic.landcover import GroundPoints
from compositor.testing.synthetic.noise import seeded_rng
from compositor.testing.synthetic.schedule import sun_position

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")

# Reflectance spectra per class (rows: none + the 8 classes of landcover.py; columns: BANDS)
_BACKGROUND = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.060, 0.085, 0.105, 0.190, 0.270, 0.210],  # winter cereal: bare soil, stubble
        [0.055, 0.080, 0.100, 0.180, 0.260, 0.200],  # maize: ploughed soil
        [0.045, 0.070, 0.075, 0.230, 0.250, 0.160],  # grassland: dormant grass
        [0.035, 0.055, 0.060, 0.190, 0.200, 0.120],  # deciduous: branches and litter
        [0.022, 0.040, 0.028, 0.170, 0.110, 0.055],  # coniferous in winter
        [0.050, 0.055, 0.035, 0.020, 0.012, 0.008],  # water
        [0.085, 0.095, 0.105, 0.170, 0.200, 0.175],  # urban
        [0.110, 0.140, 0.165, 0.230, 0.300, 0.250],  # bare rock, gravel
    ],
    dtype=np.float32,
)
_GREEN = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.025, 0.060, 0.030, 0.420, 0.210, 0.090],
        [0.028, 0.065, 0.032, 0.450, 0.220, 0.095],
        [0.030, 0.070, 0.035, 0.380, 0.200, 0.090],
        [0.025, 0.050, 0.028, 0.380, 0.190, 0.080],
        [0.018, 0.038, 0.020, 0.260, 0.110, 0.045],
        [0.045, 0.070, 0.040, 0.030, 0.012, 0.008],  # water with algae
        [0.060, 0.075, 0.070, 0.250, 0.200, 0.150],  # gardens and parks
        [0.110, 0.140, 0.165, 0.230, 0.300, 0.250],
    ],
    dtype=np.float32,
)
SNOW = np.array([0.82, 0.80, 0.77, 0.68, 0.09, 0.07], dtype=np.float32)
_SNOW_VISIBILITY = np.array([0.0, 1.0, 1.0, 1.0, 0.6, 0.3, 0.0, 0.7, 1.0], dtype=np.float32)
# Greenness knots (day of year, greenness 0..1) per class
_PHENOLOGY: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0, 0.0), (366, 0.0)),
    ((0, 0.35), (60, 0.35), (80, 0.4), (130, 0.9), (170, 0.85), (195, 0.3), (205, 0.05), (270, 0.05), (285, 0.1),
     (320, 0.35), (366, 0.35)),
    ((0, 0.02), (135, 0.02), (160, 0.2), (195, 0.9), (240, 0.85), (270, 0.4), (280, 0.05), (366, 0.02)),
    ((0, 0.45), (70, 0.45), (110, 0.8), (150, 0.9), (155, 0.45), (175, 0.85), (200, 0.85), (205, 0.45), (225, 0.8),
     (250, 0.8), (255, 0.5), (275, 0.7), (320, 0.5), (366, 0.45)),  # mown three times
    ((0, 0.05), (105, 0.05), (135, 0.9), (270, 0.85), (300, 0.3), (315, 0.05), (366, 0.05)),
    ((0, 0.65), (90, 0.65), (150, 0.85), (260, 0.85), (330, 0.65), (366, 0.65)),
    ((0, 0.0), (120, 0.0), (200, 0.4), (260, 0.0), (366, 0.0)),
    ((0, 0.1), (120, 0.1), (150, 0.4), (260, 0.4), (300, 0.1), (366, 0.1)),
    ((0, 0.0), (366, 0.0)),
)
_SNOW_EDGE = 0.03  # snowline field width over which snow goes from patchy to full
_DARK_SUN_ELEVATION_DEG = 28.0  # below this noon-ish elevation, shaded slopes go dark
_DARK_FACTOR = 0.45


def band_indices(bands: tuple[str, ...]) -> list[int]:
    return [BANDS.index(b) for b in bands]


def _greenness_table() -> np.ndarray:
    """Greenness per class (rows) and day of year 0..366 (columns), float32, flattened."""
    days = np.arange(_TABLE_DAYS, dtype=np.float64)
    table = np.stack([np.interp(days, *np.asarray(knots, dtype=np.float64).T) for knots in _PHENOLOGY])
    return table.astype(np.float32).ravel()


_TABLE_DAYS = 368
_GREENNESS = _greenness_table()


def greenness(points: GroundPoints, day: dt.date) -> np.ndarray:
    """Greenness (0..1, float32) of each point on ``day``, from its class phenology and shift."""
    when = np.mod(np.float32(day.timetuple().tm_yday) + points.shift_days, np.float32(366.0))
    whole = when.astype(np.int32)
    frac = when - whole
    idx = points.cover.astype(np.int32) * _TABLE_DAYS + whole
    lo = _GREENNESS[idx]
    return lo + frac * (_GREENNESS[idx + 1] - lo)


def snow_fraction(points: GroundPoints, day: dt.date, seed: int) -> np.ndarray:
    """Visible snow cover (0..1, float32) of each point on ``day``: snowline, depth and canopy."""
    threshold = 1.0 - 0.8 * snow_depth(day, seed)
    if threshold >= 1.0:
        return np.zeros(points.shape, dtype=np.float32)
    cover = np.clip((points.snowline - threshold) / _SNOW_EDGE, 0.0, 1.0)
    return cover * _SNOW_VISIBILITY[points.cover]


def snow_depth(day: dt.date, seed: int) -> float:
    """A dimensionless regional snow depth on ``day`` (0 = none, ~0.5 = half the region snowy)."""
    start = _winter_start(day)
    return float(_winter_depths(start.year, seed)[(day - start).days])


def _winter_start(day: dt.date) -> dt.date:
    return dt.date(day.year if day.month >= 9 else day.year - 1, 9, 1)


@lru_cache(maxsize=8)
def _winter_depths(year: int, seed: int) -> np.ndarray:
    """Daily depths from Sep 1 of ``year`` for a year: snowfall events, melt and thaws."""
    rng = seeded_rng(seed, "snow", year)
    day0 = dt.date(year, 9, 1)
    # daily snowfall chance and melt factor per month
    chance = {10: 0.03, 11: 0.10, 12: 0.15, 1: 0.15, 2: 0.13, 3: 0.09, 4: 0.04}
    melt = {11: 0.96, 12: 0.97, 1: 0.97, 2: 0.96, 3: 0.90, 4: 0.80}
    depth, out = 0.0, np.zeros(366, dtype=np.float64)
    draws = rng.random((366, 3))
    for k in range(366):
        month = (day0 + dt.timedelta(days=k)).month
        depth *= melt.get(month, 0.5)
        if draws[k, 0] < chance.get(month, 0.0):
            depth += -0.18 * np.log(1.0 - draws[k, 1])
        if draws[k, 2] < 0.04:  # a thaw
            depth *= 0.5
        out[k] = min(depth, 1.2)
    return out


def low_sun(day: dt.date, lat_deg: float) -> bool:
    """Whether the late-morning sun at ``lat_deg`` is low enough on ``day`` for slopes to shade."""
    late_morning = dt.datetime.combine(day, dt.time(10, 20), tzinfo=dt.timezone.utc)  # 11:00 solar at 10 E
    return sun_position(late_morning, 10.0, lat_deg)[1] < _DARK_SUN_ELEVATION_DEG


def surface_reflectance(
    points: GroundPoints, day: dt.date, seed: int, lat_deg: float, bands: tuple[str, ...] = BANDS
) -> np.ndarray:
    """Clear-sky surface reflectance (0..1, float32, shape (len(bands),) + points.shape) on ``day``.

    ``lat_deg`` is the region's latitude (deg N), for the sun that shades slopes.
    """
    g = greenness(points, day)
    snow = snow_fraction(points, day, seed)
    dark = points.terrain_dark if low_sun(day, lat_deg) else None
    out = np.empty((len(bands),) + points.shape, dtype=np.float32)
    for k, b in enumerate(band_indices(bands)):
        background = _BACKGROUND[points.cover, b]
        refl = (background + g * (_GREEN[points.cover, b] - background)) * points.brightness
        refl += snow * (SNOW[b] - refl)
        if dark is not None:
            refl[dark] *= _DARK_FACTOR
        out[k] = refl
    return out
