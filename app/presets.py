"""Named renderings of a season: band triples, NDVI, the observation count and the fill flag, with default styling.

A preset fixes what is read (bands or an expression, and the statistic) and how it is drawn when
the client does not say otherwise (rescale per band, colormap). Values are reflectance DN
(reflectance * 10000) for the percentiles, observations for ``count``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from compositor.bands import (BAND_NAMES, COUNT, FILL, FILLED, FLAG, FLAG_ADJACENT_SEASON, FLAG_NAMES, FLAG_OBSERVED,
                              FLAG_OTHER_YEAR)
from compositor.errors import InvalidInputError

if TYPE_CHECKING:
    from app.layers import Layer

# Default display ranges (DN) per band: bright enough for vegetation, soil and snow to read well.
BAND_RANGES: dict[str, tuple[float, float]] = {
    "blue": (0.0, 3000.0),
    "green": (0.0, 3000.0),
    "red": (0.0, 3000.0),
    "nir": (0.0, 5000.0),
    "swir16": (0.0, 4500.0),
    "swir22": (0.0, 3500.0),
}
COUNT_RANGE: tuple[float, float] = (0.0, 30.0)
FLAG_COLOURS: tuple[tuple[int, str], ...] = ((FLAG_OBSERVED, "#2c7bb6"), (FLAG_OTHER_YEAR, "#fdae61"),
                                             (FLAG_ADJACENT_SEASON, "#d7191c"))


@dataclass(frozen=True)
class Preset:
    """A named rendering: ``bands`` (1 or 3) or an ``expression`` over band names, plus styling."""

    name: str
    title: str
    description: str
    bands: tuple[str, ...] = ()
    expression: str | None = None
    statistic: str = "p50"
    rescale: tuple[tuple[float, float], ...] = ()
    colormap_name: str | None = None
    colormap: tuple[tuple[int, str], ...] = ()  # categories: (value, "#rrggbb"), values not listed transparent
    categories: tuple[tuple[int, str], ...] = ()  # (value, what it means), for legends
    variant: str | None = None  # the season variant the preset is a layer of (``variant=filled``)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name, "title": self.title, "description": self.description,
            "bands": list(self.bands), "expression": self.expression, "statistic": self.statistic,
            "rescale": [list(r) for r in self.rescale], "colormap_name": self.colormap_name,
            "colormap": {str(v): colour for v, colour in self.colormap} or None,
            "categories": {str(v): text for v, text in self.categories} or None, "variant": self.variant,
        }


def _triple(name: str, title: str, bands: tuple[str, str, str], description: str) -> Preset:
    return Preset(name, title, description, bands=bands, rescale=tuple(BAND_RANGES[b] for b in bands))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _triple("true-colour", "True colour", ("red", "green", "blue"), "Red, green, blue: the landscape as the eye sees it."),
        _triple("colour-infrared", "Colour infrared", ("nir", "red", "green"),
                "Near infrared, red, green: vegetation in red, the brighter the denser."),
        _triple("nir-swir", "NIR-SWIR", ("nir", "swir16", "swir22"),
                "Near infrared and both short-wave infrared bands: vegetation, soil moisture, burnt areas."),
        _triple("swir", "SWIR", ("swir22", "nir", "red"),
                "Short-wave infrared 2.2 um, near infrared, red: bare soil, geology, snow against cloud."),
        Preset("ndvi", "NDVI", "Normalised difference vegetation index (nir - red) / (nir + red): the season's NDVI "
               "percentile where it was built with --products indices (computed per observation), else the NDVI of "
               "the band percentiles.",
               expression="(nir - red) / (nir + red)", rescale=((-0.2, 0.9),), colormap_name="rdylgn"),
        Preset("count", "Observation count", "Number of cloud-free observations of the red band: where the "
               "statistics are reliable.", bands=("red",), statistic=COUNT, rescale=(COUNT_RANGE,),
               colormap_name="viridis"),
        Preset("fill-flag", "Fill flag", "Where the gap-filled variant's values come from (variant=filled, made by "
               "s2seasons fill): the season's own observations, the same season of the year before or after, or "
               "the season before or after; transparent where no season observed the pixel.",
               bands=(FILL,), statistic=FLAG, colormap=FLAG_COLOURS, categories=tuple(FLAG_NAMES.items()),
               variant=FILLED),
    )
}
DEFAULT_PRESET = "true-colour"


def resolve_preset(name: str) -> Preset:
    """The preset called ``name``; `InvalidInputError` listing the known ones otherwise."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise InvalidInputError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[key]


def default_rescale(bands: tuple[str, ...], statistic: str) -> tuple[tuple[float, float], ...]:
    """Display ranges for raw bands when the client gives none (counts share one range)."""
    if statistic == COUNT:
        return tuple(COUNT_RANGE for _ in bands)
    return tuple(BAND_RANGES[b] for b in bands if b in BAND_NAMES)


def picture_styling(layer: Layer, *, own_bands: bool = False, own_expression: bool = False,
                    ) -> tuple[tuple[tuple[float, float], ...], str | None]:
    """Default (rescale, colormap name) of a picture of ``layer`` the client gave no styling for.

    ``own_bands``/``own_expression``: the client named its own, so the layer's preset's range no
    longer fits (its colormap still does for an own expression: ``preset=ndvi&expression=...``). An
    expression without a preset's range has none. The tiles (`app.dependencies`) and the WMS
    (`app.wms`) draw with this one rule.
    """
    preset = layer.preset
    if preset is not None and preset.rescale and not (own_bands or own_expression):
        rescale = preset.rescale
    else:
        bands = tuple(band for band, _ in layer.variables)
        rescale = () if layer.expressions else default_rescale(bands, layer.statistic)
    colormap = preset.colormap_name if preset is not None and not own_bands else None
    return rescale, colormap
