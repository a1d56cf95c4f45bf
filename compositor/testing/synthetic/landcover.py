"""The synthetic ground: land-cover classes, parcels and static per-point traits, in EPSG:3035.

Everything here is a function of absolute EPSG:3035 coordinates (m) and the seed, so every tile
in any UTM zone, and the truth grid, see the same ground. Smooth fields (where forests, lakes,
towns and snow-prone slopes lie, soil brightness zones) are hashed lattices sampled on north-up
grids over the region; crop parcels (1.2 x 0.8 km) and forest stands are cells of rotated,
jittered grids, each with its own crop and phenology shift. About 30 % of the ground is
crops (winter cereals, maize), 30 % forest (60 % of it conifers), 28 % grassland, and a few
percent each water, towns and bare ground. The patches are coarser and flatter than real Bavarian fields: every
in-field gradient costs bytes in the COGs, and the default archive must stay under 500 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compositor.testing.synthetic.noise import hash_uniform, lattice_field, sample_bilinear, stable_key

# Land-cover classes (0 is "no ground": outside the data)
WINTER_CEREAL, MAIZE, GRASSLAND, DECIDUOUS, CONIFEROUS, WATER, URBAN, BARE = range(1, 9)
CLASS_NAMES = ("none", "winter_cereal", "maize", "grassland", "deciduous", "coniferous", "water", "urban", "bare")

_COARSE_M = 200.0  # node spacing of the smooth land-cover fields
_FINE_M = 200.0  # node spacing of the texture field
# (name, cells in m) of each smooth field; thresholds below are upper quantiles of these fields
_FIELDS = {
    "forest": (6400, 3200, 1600, 800, 400),
    "water": (3200, 1600, 800, 400),
    "urban": (3200, 1600, 800, 400),
    "bare": (1600, 800, 400),
    "conifer": (6400, 3200, 1600),
    "pasture": (6400, 3200, 1600, 800),
    "snowline": (25600, 12800, 6400, 3200, 1600, 800),
    "terrain": (1600, 800, 400, 200),
    "soil": (25600, 12800, 6400),
}
_THRESHOLDS = {
    "water": 0.725,
    "urban": 0.685,
    "bare": 0.76,
    "forest": 0.54,
    "conifer": 0.48,
    "pasture": 0.58,
    "terrain": 0.735,
}
_PARCEL_M = (1200.0, 800.0)  # crop parcel length across and along the strips
_STAND_M = (1500.0, 1500.0)  # forest stand size
_SOIL_ZONES = 4  # soil brightness steps (0.88 .. 1.12), constant within a zone
_PARCEL_ANGLE, _STAND_ANGLE = 0.31, -0.18  # rad, rotation of the parcel and stand grids


@dataclass(frozen=True)
class GroundGrid:
    """A north-up grid of field values at absolute EPSG:3035 nodes (x0 + j*spacing, y0 - i*spacing)."""

    x0_m: float
    y0_m: float
    spacing_m: float
    values: np.ndarray  # float32 (rows, cols)

    def sample(self, x_m: np.ndarray, y_m: np.ndarray) -> np.ndarray:
        """Bilinear value at EPSG:3035 points (m); clamped beyond the grid."""
        return sample_bilinear(self.values, (self.y0_m - y_m) / self.spacing_m, (x_m - self.x0_m) / self.spacing_m)


@dataclass(frozen=True)
class Ground:
    """The smooth ground fields over a region (EPSG:3035 bounds in m) for one seed."""

    seed: int
    fields: dict[str, GroundGrid]


@dataclass(frozen=True)
class GroundPoints:
    """Static traits of ground points, arrays of one shape (that of the points given).

    ``cover``: land-cover class (uint8); ``brightness``: multiplicative parcel and texture factor;
    ``shift_days``: phenology advance (days, positive = earlier); ``snowline``: snow-proneness
    in [0, 1] (higher holds snow longer); ``terrain_dark``: slopes in shade when the sun is low.
    """

    cover: np.ndarray
    brightness: np.ndarray
    shift_days: np.ndarray
    snowline: np.ndarray
    terrain_dark: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.cover.shape

    def window(self, rows: slice, cols: slice) -> GroundPoints:
        """The traits of a 2-D sub-window (views, no copies)."""
        return GroundPoints(*(getattr(self, f)[rows, cols] for f in _TRAITS))


def build_ground(bounds_3035: tuple[float, float, float, float], seed: int) -> Ground:
    """The ground fields covering ``bounds_3035`` (xmin, ymin, xmax, ymax in m) plus a small margin."""
    fields = {}
    for name, cells in _FIELDS.items():
        fields[name] = _build_grid(bounds_3035, _COARSE_M, cells, stable_key(seed, "ground", name))
    fields["texture"] = _build_grid(bounds_3035, _FINE_M, (1600, 800, 400), stable_key(seed, "ground", "texture"))
    return Ground(seed=seed, fields=fields)


def _build_grid(
    bounds: tuple[float, float, float, float], spacing: float, cells: tuple[int, ...], key: int
) -> GroundGrid:
    xmin, ymin, xmax, ymax = bounds
    x0 = (np.floor(xmin / spacing) - 2) * spacing
    y0 = (np.ceil(ymax / spacing) + 2) * spacing
    shape = (int(np.ceil((y0 - ymin) / spacing)) + 3, int(np.ceil((xmax - x0) / spacing)) + 3)
    return GroundGrid(float(x0), float(y0), spacing, lattice_field(x0, y0, shape, spacing, cells, key))


_TRAITS = ("cover", "brightness", "shift_days", "snowline", "terrain_dark")


def describe_ground(ground: Ground, x_m: np.ndarray, y_m: np.ndarray) -> GroundPoints:
    """Land cover and static traits at EPSG:3035 points (m), in the points' shape."""
    x = np.asarray(x_m, dtype=np.float64)
    y = np.asarray(y_m, dtype=np.float64)
    f = {name: grid.sample(x, y) for name, grid in ground.fields.items() if name != "texture"}
    t = _THRESHOLDS
    parcel = _cell_hashes(x, y, _PARCEL_M, _PARCEL_ANGLE, stable_key(ground.seed, "parcels"))
    stand = _cell_hashes(x, y, _STAND_M, _STAND_ANGLE, stable_key(ground.seed, "stands"))

    crop = np.where(parcel[0] < 0.45, WINTER_CEREAL, np.where(parcel[0] < 0.78, MAIZE, GRASSLAND))
    cover = np.where(f["pasture"] > t["pasture"], GRASSLAND, crop)
    forest = np.where(f["conifer"] > t["conifer"], CONIFEROUS, DECIDUOUS)
    cover = np.where(f["forest"] > t["forest"], forest, cover)
    cover = np.where(f["bare"] > t["bare"], BARE, cover)
    cover = np.where(f["urban"] > t["urban"], URBAN, cover)
    cover = np.where(f["water"] > t["water"], WATER, cover).astype(np.uint8)

    is_forest = (cover == CONIFEROUS) | (cover == DECIDUOUS)
    texture = ground.fields["texture"].sample(x, y)
    soil_zone = np.clip(np.floor((f["soil"] - 0.35) / 0.3 * _SOIL_ZONES), 0, _SOIL_ZONES - 1)
    brightness = (0.88 + 0.24 / (_SOIL_ZONES - 1) * soil_zone) * (1.0 + 0.02 * (texture - 0.5))
    shift = np.where(is_forest, 12.0, 24.0) * (np.where(is_forest, stand[1], parcel[1]) - 0.5)
    return GroundPoints(
        cover=cover,
        brightness=brightness.astype(np.float32),
        shift_days=shift.astype(np.float32),
        snowline=f["snowline"],
        terrain_dark=f["terrain"] > t["terrain"],
    )


def _cell_hashes(x: np.ndarray, y: np.ndarray, size_m: tuple[float, float], angle: float, key: int) -> np.ndarray:
    """Two uniform hashes per point of the rotated, jittered cell grid it falls in, shape (2, ...)."""
    cos, sin = np.cos(angle), np.sin(angle)
    u = x * cos + y * sin
    v = -x * sin + y * cos
    strip = np.floor(v / size_m[1]).astype(np.int64)
    jitter = hash_uniform(strip, np.zeros_like(strip), key) * size_m[0]
    column = np.floor((u + jitter) / size_m[0]).astype(np.int64)
    return np.stack([hash_uniform(column, strip, key + k) for k in (1, 2)])
