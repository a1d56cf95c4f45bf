"""What every output raster declares: data type, nodata, scale, band description and tags.

The same words for a block's COGs, the season VRTs and overview rasters, the STAC catalog and the
byte export, so that a reader (GDAL, QGIS, a STAC client) sees one product.
"""

from __future__ import annotations

from compositor import __version__
from compositor.bands import (BANDS_BY_NAME, COUNT, COUNT_KINDS, DOY, FILL_FLAG, FILLED, FLAG, FLAG_NAMES,
                              FLAG_NODATA, INDEX_NODATA, INDEX_SCALE, INDICES, MEDOID, MEDOID_DOY, PSEUDO_BANDS,
                              QA_VARIABLE)
from compositor.cog import REFLECTANCE_SCALE, BandSpec
from compositor.seasons import Season

BYTE_NODATA = 255
BYTE_SCALE = 0.004
BYTE_MAPPING = (
    "reflectance: value = clip(floor(DN / 40 + 0.5), 0, 250) = clip(round(reflectance * 250), 0, 250), "
    "reflectance = value * 0.004, 255 = no data; count: value = min(count, 254), 255 = no data"
)


def season_tags(season: Season, band: str, kind: str, variant: str = "") -> dict[str, str]:
    tags = {
        "season": season.name, "start_date": season.start.isoformat(), "end_date": season.end.isoformat(),
        "band": band, "statistic": kind, "software": f"s2seasons {__version__}",
    }
    return {**tags, "variant": variant} if variant else tags


FLAG_TEXT = ", ".join(f"{value} {name}" for value, name in FLAG_NAMES.items()) + f", {FLAG_NODATA} no value"


def is_index(band: str) -> bool:
    """Whether a raster's "band" is an index (product "indices"), not a band, the QA layer or the medoid's date."""
    return band not in BANDS_BY_NAME and band not in PSEUDO_BANDS


def describe_kind(band: str, kind: str, variant: str = "") -> str:
    """The band description of a raster of one band and kind (p25, p50, p75, count; qa seen; an index's p25..p75;
    the fill flag), of the season's ``variant`` ("filled") when one is named."""
    if (band, kind) == FILL_FLAG:
        return f"Fill flag: where the pixel's values come from ({FLAG_TEXT})"
    if variant == FILLED and band in BANDS_BY_NAME:
        name = BANDS_BY_NAME[band].description
        if kind == COUNT:
            return f"{name}: number of valid observations of the season the value comes from (see the fill flag)"
        return (f"{name}: {kind.upper()} of cloud-free surface reflectance, gap-filled from neighbouring seasons "
                "where the season has too few observations (scale 0.0001; the fill flag says where from)")
    if (band, kind) == QA_VARIABLE:
        return "Observations seen: acquisitions whose data cover the pixel, cloud-free or masked (QA)"
    if (band, kind) == MEDOID_DOY:
        return "Day of year (1-366) of the medoid observation, whose bands the medoid rasters hold"
    if kind == MEDOID:
        return (f"{BANDS_BY_NAME[band].description}: reflectance of the medoid observation, one real cloud-free "
                "observation for all bands (scale 0.0001)")
    if is_index(band):
        known = {i.name: i for i in INDICES}
        text = known[band].text if band in known else f"{band.upper()} (a normalised difference of two bands)"
        return f"{text}: {kind.upper()} of the per-observation index (scale 0.0001)"
    name = BANDS_BY_NAME[band].description
    if kind == COUNT:
        return f"{name}: number of valid (cloud-free) observations"
    return f"{name}: {kind.upper()} of cloud-free surface reflectance (scale 0.0001)"


_GDAL_TYPES = {"uint16": "UInt16", "int16": "Int16", "uint8": "Byte"}


def storage(band: str, kind: str) -> tuple[str, int | None]:
    """How a raster of this band and kind is stored: numpy dtype and nodata (None: every value is data)."""
    if (band, kind) == FILL_FLAG:
        return "uint8", FLAG_NODATA
    if is_index(band):
        return "int16", INDEX_NODATA
    return "uint16", None if kind in COUNT_KINDS else 0  # reflectance, the medoid's bands and its day of year: 0


def season_spec(season: Season, band: str, kind: str, variant: str = "") -> BandSpec:
    """uint16 reflectance DN (nodata 0, scale 0.0001), uint16 count (no nodata: 0 means unseen), an index's
    int16 statistic (nodata -32768, scale 0.0001) or the fill flag (uint8 classes, nodata 255); type and nodata
    are `storage`'s. ``variant``: of the season's variant (its descriptions and tags say so)."""
    dtype, nodata = storage(band, kind)
    scale, unit = (INDEX_SCALE if is_index(band) else REFLECTANCE_SCALE), None
    if (band, kind) == MEDOID_DOY:
        scale, unit = None, "day of year"
    elif kind in COUNT_KINDS:
        scale, unit = None, "observations"
    elif kind == FLAG:
        scale, unit = None, None
    return BandSpec(_GDAL_TYPES[dtype], nodata, scale, describe_kind(band, kind, variant),
                    season_tags(season, band, kind, variant), unit)


def byte_spec(season: Season, band: str, kind: str) -> BandSpec:
    """The byte export: reflectance * 250 (nodata 255, scale 0.004), or count up to 254 (nodata 255)."""
    tags = {**season_tags(season, band, kind), "byte_mapping": BYTE_MAPPING}
    if kind in COUNT_KINDS:
        text = f"{describe_kind(band, kind)}; byte: min(count, 254), 255 = no data"
        return BandSpec("Byte", BYTE_NODATA, None, text, tags)
    text = (f"{BANDS_BY_NAME[band].description}: {kind.upper()} of cloud-free surface reflectance, byte-scaled: "
            "value = clip(round(DN / 40), 0, 250), reflectance = value * 0.004, 255 = no data")
    return BandSpec("Byte", BYTE_NODATA, BYTE_SCALE, text, tags)


def band_is_medoid(kind: str) -> bool:
    return kind in (MEDOID, DOY)


def overview_resampling(kind: str) -> str:
    """How a raster of this kind is resampled into its overviews: reflectance averaged (nodata left out),
    counts sampled (nearest): a count stays the count of a real pixel, an integer that was observed,
    instead of a mean that no pixel has; the medoid's bands and date sampled too, so that an overview pixel is
    still one real observation; the fill flag sampled, as classes are."""
    return "nearest" if kind in COUNT_KINDS or kind == FLAG or band_is_medoid(kind) else "average"
