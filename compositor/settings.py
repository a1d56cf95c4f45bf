"""Settings of the library and the build, read from the environment (prefix ``S2SEASONS_``) when a command starts.

Nothing here is read at import time: call ``Settings()`` at start-up and pass the value on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from compositor.bands import Index, resolve_indices
from compositor.errors import InvalidInputError
from compositor.seasons import Season, parse_custom_seasons

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
DEFAULT_MASK_CLASSES = (0, 1, 3, 8, 9, 10)
SNOW_CLASS = 11
# Where an orbit's blend weight reaches zero inside the edge of its footprints, and how long it
# ramps up from there (ground metres). The margin covers what a footprint polygon does not say
# exactly: footprints are simplified (the one real footprint with full detail in the reference
# items, 2,441 vertices, is 226 m from its 5-vertex simplification) and the detectors' ends at a
# datatake start or end are staggered along track by a few km, which simplified footprints do not
# show; 5 km is beyond both. The 10 km ramp spreads a typical 1-3 % brightness difference between
# orbits over ~330 pixels at 30 m (under 0.02 % a pixel: invisible) while keeping the reach of
# the taper (15 km) a quarter of a 61 km block.
DEFAULT_BLEND_EDGE_MARGIN_M = 5_000.0
DEFAULT_BLEND_EDGE_RAMP_M = 10_000.0
UNCLASSIFIED_CLASS = 7
DEFAULT_MASK_BUFFER_M = 40.0  # chosen by benchmarks/bench_mask_buffer.py, see README "Cloud edges"


class Settings(BaseSettings):
    """The library's and the build's tunables; each field maps to ``S2SEASONS_<FIELD>`` in the environment.

    The server's own (caches, on-the-fly compositing, logs) are `app.settings.ServerSettings`, which adds
    them to these under the same prefix."""

    model_config = SettingsConfigDict(env_prefix="S2SEASONS_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path | str = Field(
        Path("data"), description="Where built seasons are (COGs, VRTs, manifests): a folder, or s3://BUCKET/PREFIX.")
    catalog: str = Field(EARTH_SEARCH_URL, description="STAC API URL, or a local ItemCollection file or folder.")
    collection: str = Field(
        "sentinel-2-l2a", description="STAC collection searched on a STAC API: Earth Search's sentinel-2-l2a or "
                                      "sentinel-2-c1-l2a (Collection 1, the offset stated in raster:bands).")
    max_cloud_cover: float | None = Field(
        None, ge=0, le=100, description="Skip whole scenes whose eo:cloud_cover is above this (percent); None (the "
                                        "default) keeps every scene, since SCL masks clouds pixel by pixel and the "
                                        "clear parts of a cloudy scene are observations too.")
    custom_seasons: dict[str, str] = Field(
        default_factory=dict, description='Extra named seasons, JSON like {"alps-2023": "2023-06-01/2023-08-31"}.'
    )
    custom_indices: dict[str, list[str]] = Field(
        default_factory=dict, description='Extra normalised-difference indices for --products indices, JSON like '
                                          '{"ndmi": ["nir", "swir16"]} for (nir - swir16) / (nir + swir16); ndvi, nbr '
                                          'and ndwi are built in.')
    crs: str = Field("EPSG:3035", description="CRS of the built mosaics.")
    resolution_m: float = Field(30.0, gt=0, description="Pixel size of the built mosaics, in CRS units (m).")
    block_size_px: int = Field(2048, ge=256, description="Side of a square build block in pixels (multiple of 256).")
    mask_classes: tuple[int, ...] = Field(
        DEFAULT_MASK_CLASSES, description="SCL classes that are not valid (0 no data is never valid), JSON like "
                                          "[0,1,3,8,9,10]; add 7 here or set mask_unclassified to mask unclassified.")
    mask_snow: bool = Field(False, description="Also mask snow (SCL 11); the original product keeps snow.")
    mask_unclassified: bool = Field(
        False, description="Also mask SCL 7 (unclassified): often cloud edges and haze that Sen2Cor could not "
                           "label, but also bright or mixed ground; off by default as it costs observations.")
    mask_buffer_m: float = Field(
        DEFAULT_MASK_BUFFER_M, ge=0, le=1000,
        description="Grow the invalid SCL pixels by a disk of this radius (m) before an output pixel is judged "
                    "by every SCL pixel under it; catches cloud edges SCL missed. 0 keeps the SCL as it is.")
    blend_power: float = Field(2.0, gt=0, description="Power of the inverse-distance weights between orbits.")
    blend_edge_margin_m: float = Field(
        DEFAULT_BLEND_EDGE_MARGIN_M, ge=0, description="An orbit's blend weight is zero this far (m) inside the "
        "edge of its scenes' footprints (simplified polygons, staggered detector ends).")
    blend_edge_ramp_m: float = Field(
        DEFAULT_BLEND_EDGE_RAMP_M, gt=0, description="Beyond the margin, the weight ramps smoothly up to its "
        "inverse-distance value over this length (m).")
    fill_min_observations: int = Field(
        3, ge=1, le=1000, description="s2seasons fill: a pixel with fewer valid observations than this (in any of its "
        "bands) takes its P25/P50/P75 from a neighbouring season that has at least this many (the same season of the "
        "year before or after first, then the season before or after); see the README's Gap filling.")
    workers: int = Field(0, ge=0, description="Build processes; 0 means one per core.")
    stac_timeout_s: float = Field(30.0, gt=0, description="Timeout of one STAC API request (s).")
    @field_validator("data_dir", mode="before")
    @classmethod
    def _folder_or_url(cls, value: object) -> object:
        """A folder stays a Path; an object store URL (s3://...) stays a string."""
        if isinstance(value, str) and "://" not in value:
            return Path(value)
        return value

    @field_validator("block_size_px")
    @classmethod
    def _multiple_of_256(cls, value: int) -> int:
        if value % 256:
            raise ValueError(f"block_size_px must be a multiple of 256, got {value}")
        return value

    @field_validator("custom_indices")
    @classmethod
    def _valid_custom_indices(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        resolve_indices(value)
        return value

    @property
    def indices(self) -> tuple[Index, ...]:
        """The indices a build with the product "indices" computes: the built-in ones and the custom ones."""
        return resolve_indices(self.custom_indices)

    @field_validator("custom_seasons")
    @classmethod
    def _valid_custom_seasons(cls, value: dict[str, str]) -> dict[str, str]:
        parse_custom_seasons(value)
        return value

    @property
    def seasons(self) -> dict[str, Season]:
        """The custom seasons, parsed."""
        return parse_custom_seasons(self.custom_seasons)

    @property
    def invalid_scl_classes(self) -> tuple[int, ...]:
        """SCL classes masked out: the configured ones, plus snow when ``mask_snow`` is set and
        unclassified when ``mask_unclassified`` is set."""
        classes = (set(self.mask_classes) | ({SNOW_CLASS} if self.mask_snow else set())
                   | ({UNCLASSIFIED_CLASS} if self.mask_unclassified else set()))
        return tuple(sorted(classes))


S = TypeVar("S", bound=Settings)


def read_settings(kind: type[S] = Settings, **values: object) -> S:
    """``kind(**values)`` from the environment; an invalid variable is an `InvalidInputError` that names it as the
    user set it (``S2SEASONS_RESOLUTION_M=-1: ...``), not as a field."""
    try:
        return kind(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            name = f"S2SEASONS_{field.upper()}"
            given = os.environ.get(name)
            where = f"{name}={given}" if given is not None else name
            problems.append(f"{where}: {error['msg']}")
        raise InvalidInputError("invalid setting: " + "; ".join(problems) + " (the README's Settings section lists them)") from None
