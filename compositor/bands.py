"""The six reflectance bands of the product and the asset keys they go by in STAC items."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from compositor.errors import BandNotFoundError, InvalidInputError


@dataclass(frozen=True)
class Band:
    """A Sentinel-2 band of the product: common name, band id and native pixel size (m)."""

    name: str
    band_id: str
    native_resolution_m: int
    description: str


BANDS: tuple[Band, ...] = (
    Band("blue", "B02", 10, "Blue (B02, 490 nm)"),
    Band("green", "B03", 10, "Green (B03, 560 nm)"),
    Band("red", "B04", 10, "Red (B04, 665 nm)"),
    Band("nir", "B08", 10, "Near infrared (B08, 842 nm)"),
    Band("swir16", "B11", 20, "Short-wave infrared 1.6 um (B11)"),
    Band("swir22", "B12", 20, "Short-wave infrared 2.2 um (B12)"),
)
BAND_NAMES: tuple[str, ...] = tuple(b.name for b in BANDS)
BANDS_BY_NAME: dict[str, Band] = {b.name: b for b in BANDS}
SCL_KEY = "scl"
# Asset keys accepted for each band, in order of preference: Earth Search v1 (sentinel-2-l2a and
# sentinel-2-c1-l2a) uses common names, older catalogs (and the sentinel-s2-l2a-cogs layout) use band
# ids, the Copernicus Data Space catalog band ids with the resolution (B02_10m, SCL_20m).
ASSET_KEYS: dict[str, tuple[str, ...]] = {
    **{b.name: (b.name, b.band_id, b.band_id.lower(), f"{b.band_id}_{b.native_resolution_m}m") for b in BANDS},
    SCL_KEY: ("scl", "SCL", "SCL_20m"),
}

STATISTICS: tuple[str, ...] = ("p25", "p50", "p75")
COUNT = "count"
PERCENTILE_OF: dict[str, float] = {"p25": 25.0, "p50": 50.0, "p75": 75.0}

# The QA layer (product "qa"): per pixel, the observations seen, valid or masked (the count of each band says
# how many of them were clear). A raster of its own, named as a band "qa" with the kind "seen".
QA = "qa"
SEEN = "seen"
QA_VARIABLE = (QA, SEEN)
# The medoid composite (product "medoid"): each band's value of the pixel's medoid observation, (band, "medoid"),
# and that observation's day of year, ("medoid", "doy").
MEDOID = "medoid"
DOY = "doy"
MEDOID_DOY = (MEDOID, DOY)
# The gap-filled variant of a season (``s2seasons fill``): its bands' P25/P50/P75 and counts, filled from neighbouring
# seasons where the season has too few observations, and per pixel where the values came from, (fill, flag).
FILLED = "filled"  # the variant's name: a folder beside the season's outputs, a product in season.json
FILL = "fill"
FLAG = "flag"
FILL_FLAG = (FILL, FLAG)
FLAG_OBSERVED = 0  # the season's own values
FLAG_OTHER_YEAR = 1  # the same season of the year before or after
FLAG_ADJACENT_SEASON = 2  # the season before or after in the same calendar
FLAG_NODATA = 255  # no value at all
FLAG_NAMES: dict[int, str] = {FLAG_OBSERVED: "observed", FLAG_OTHER_YEAR: "same season, other year",
                              FLAG_ADJACENT_SEASON: "adjacent season"}
PSEUDO_BANDS: tuple[str, ...] = (QA, MEDOID, FILL)  # rasters named like bands that are none
COUNT_KINDS: tuple[str, ...] = (COUNT, SEEN)  # numbers of observations: no nodata (0 means none), sampled not averaged
# Products a build can make (``--products``); "bands" (the six bands' P25/P50/P75 and counts) is the original.
PRODUCTS: tuple[str, ...] = ("bands", "indices", "medoid", "qa")
DEFAULT_PRODUCTS: tuple[str, ...] = ("bands",)


@dataclass(frozen=True)
class Index:
    """A normalised difference of two bands, ``(a - b) / (a + b)``, computed per observation (product "indices")."""

    name: str
    a: str
    b: str
    description: str = ""

    @property
    def text(self) -> str:
        return self.description or f"{self.name.upper()} ({self.a} - {self.b}) / ({self.a} + {self.b})"


INDICES: tuple[Index, ...] = (
    Index("ndvi", "nir", "red", "NDVI (nir - red) / (nir + red)"),
    Index("nbr", "nir", "swir22", "NBR, normalised burn ratio (nir - swir22) / (nir + swir22)"),
    Index("ndwi", "green", "nir", "NDWI, McFeeters (green - nir) / (green + nir)"),
)
def index_order(names: Iterable[str]) -> list[str]:
    """Index names in product order: the built-in ones as `INDICES` lists them, then custom ones by name."""
    rank = {i.name: n for n, i in enumerate(INDICES)}
    return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))


# Index percentiles are stored as int16: value = round(index * 10000), scale 0.0001, nodata -32768. They are
# computed from the per-observation index rounded so, shifted into 1..20001 (0: no observation) so that the
# bands' uint16 percentile kernel and orbit blend serve them unchanged.
INDEX_SCALE = 0.0001
INDEX_NODATA = -32768
INDEX_SHIFT = 10_001


def resolve_indices(custom: dict[str, Iterable[str]] | None = None) -> tuple[Index, ...]:
    """The built-in indices and the ``custom`` ones ({"ndmi": ["nir", "swir16"]}), validated."""
    found = list(INDICES)
    taken = {i.name for i in found} | set(BAND_NAMES) | set(PSEUDO_BANDS)
    for name, pair in (custom or {}).items():
        key = str(name).strip().lower()
        bands = [str(b).strip().lower() for b in pair]
        if not key.isidentifier() or key in taken:
            raise InvalidInputError(f"index name {name!r}: use a new lowercase identifier (not a band or index)")
        if len(bands) != 2 or any(b not in BANDS_BY_NAME for b in bands) or bands[0] == bands[1]:
            raise InvalidInputError(f"index {name!r}: give two different bands among {', '.join(BAND_NAMES)}, "
                                    'e.g. {"ndmi": ["nir", "swir16"]}')
        found.append(Index(key, bands[0], bands[1]))
        taken.add(key)
    return tuple(found)


def resolve_products(names: Iterable[str] | str | None) -> tuple[str, ...]:
    """Product names, validated, in `PRODUCTS` order; ``None`` means the bands alone. The bands are always made."""
    if names is None:
        return DEFAULT_PRODUCTS
    if isinstance(names, str):
        names = [n for n in names.replace(" ", ",").split(",") if n]
    wanted = {n.strip().lower() for n in names} | {"bands"}
    unknown = sorted(wanted - set(PRODUCTS))
    if unknown:
        raise InvalidInputError(f"unknown product {', '.join(map(repr, unknown))}: use any of {', '.join(PRODUCTS)} "
                                "(bands are always built)")
    return tuple(p for p in PRODUCTS if p in wanted)


def resolve_bands(names: Iterable[str] | str | None) -> tuple[str, ...]:
    """Band names, validated and in product order; ``None`` or ``"all"`` means all six."""
    if names is None:
        return BAND_NAMES
    if isinstance(names, str):
        names = [n for n in names.replace(" ", ",").split(",") if n]
    wanted = [n.strip().lower() for n in names]
    if not wanted or wanted == ["all"]:
        return BAND_NAMES
    unknown = [n for n in wanted if n not in BANDS_BY_NAME]
    if unknown:
        raise BandNotFoundError(f"unknown band {', '.join(map(repr, unknown))}: use any of {', '.join(BAND_NAMES)}")
    return tuple(n for n in BAND_NAMES if n in wanted)


def resolve_statistic(name: str) -> str:
    """A statistic name: ``p25``, ``p50``, ``p75``, ``count``, or ``medoid`` (the medoid observation's bands, of a
    season built with the product "medoid" or on the fly)."""
    value = name.strip().lower()
    if value not in (*STATISTICS, COUNT, MEDOID):
        raise InvalidInputError(f"unknown statistic {name!r}: use one of p25, p50, p75, count, medoid")
    return value
