"""Request parameters, validated into values the reader understands; every bad value is a 4xx.

The season path parameter resolves to a known season name (a calendar season, a custom one, or a
built folder) and never to a path. Layer parameters (``bands``, ``statistic``, ``expression``,
``preset``) become a `Layer`; rendering parameters fall back to the preset's (or the band's)
default rescaling and colormap when the output is a picture (png, jpeg, webp) and the client gave
none: data formats (tif, npy) carry the values themselves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from pydantic import Field
from rio_tiler.colormap import cmap as default_cmap
from rio_tiler.colormap import parse_color
from rio_tiler.types import ColorMapType
from starlette.requests import Request
from titiler.core.dependencies import DefaultDependency, ImageRenderingParams

from app.layers import Layer, all_variables_layer, make_layer
from app.presets import picture_styling
from app.reader import DEFAULT_MAX_SIZE, SeasonSource
from app.services import Services
from compositor.errors import InvalidInputError

PICTURE_FORMATS = {None, "png", "jpeg", "jpg", "webp", "jp2"}
MAX_IMAGE_PX = 2048
RESAMPLING = Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode"]

SeasonPath = Annotated[
    str,
    Path(description="Season: YEAR-winter|spring|summer|autumn (GLAD ARD calendar, e.g. 2022-winter) or a custom "
                     "season name. Built seasons are read from their blocks; others are composited on the fly.",
         max_length=64),
]
BandsQuery = Annotated[str | None, Query(description="1 or 3 comma-separated bands among blue, green, red, nir, "
                                                     "swir16, swir22 (order = output order, e.g. nir,red,green).",
                                         max_length=64)]
StatisticQuery = Annotated[str | None, Query(description="p25, p50 (default), p75 or count.", max_length=16)]
ExpressionQuery = Annotated[str | None, Query(description="Band math over band names, e.g. (nir-red)/(nir+red); "
                                                          "nir_p75 names a statistic; ';' separates 3 outputs.",
                                              max_length=512)]
PresetQuery = Annotated[str | None, Query(description="Named rendering: true-colour, colour-infrared, nir-swir, swir, "
                                                      "ndvi, count, fill-flag (with variant=filled) (see /presets).",
                                          max_length=32)]


def services_of(request: Request) -> Services:
    return request.app.state.services


VariantQuery = Annotated[Literal["filled"] | None, Query(
    description="A variant of the season: filled, its gap-filled percentiles (s2seasons fill), read where the fill "
                "wrote them (nothing is composited on the fly); fill_flag (preset fill-flag) says per pixel where "
                "the values came from. 404 when the season has no such variant.")]


def season_source(request: Request, season: SeasonPath, variant: VariantQuery = None) -> SeasonSource:
    """The season named in the path (its ``variant`` when asked for), as the reader's input
    (`SeasonNotFoundError` -> 404, a variant never made -> 404 naming the command that makes it)."""
    services = services_of(request)
    return SeasonSource(services.registry.get(season, variant or ""), services)


@dataclass
class LayerParams(DefaultDependency):
    """bands / statistic / expression / preset.

    Images default to the true-colour preset; point queries default to every band with every
    statistic and the count (``point_layer``; with ``bands`` or ``statistic``, those only).
    """

    bands: BandsQuery = None
    statistic: StatisticQuery = None
    expression: ExpressionQuery = None
    preset: PresetQuery = None
    layer: Layer = field(init=False)
    point_layer: Layer = field(init=False)

    def __post_init__(self) -> None:
        self.layer = make_layer(self.bands, self.statistic, self.expression, self.preset)
        if self.expression or self.preset:
            self.point_layer = self.layer
        else:
            self.point_layer = all_variables_layer(self.bands, self.statistic)

    def as_dict(self, exclude_none: bool = True) -> dict[str, Any]:
        return {"layer": self.layer, "point_layer": self.point_layer}


@dataclass
class ReadParams(DefaultDependency):
    """How built rasters are resampled into the output grid."""

    resampling_method: Annotated[RESAMPLING | None, Query(alias="resampling", description="Resampling within a "
                                                          "raster (default nearest).")] = None
    reproject_method: Annotated[RESAMPLING | None, Query(alias="reproject", description="Resampling when reprojecting "
                                                         "(default nearest).")] = None


@dataclass
class TileParams(DefaultDependency):
    buffer: Annotated[float | None, Query(gt=0, le=64, multiple_of=0.5, description="Pixels added on each side "
                                          "(multiple of 0.5).")] = None


@dataclass
class PreviewParams(DefaultDependency):
    max_size: Annotated[int, Field(gt=0, le=MAX_IMAGE_PX, description="Longest side of the output (px).")] = 1024
    height: Annotated[int | None, Field(gt=0, le=MAX_IMAGE_PX, description="Output height (px).")] = None
    width: Annotated[int | None, Field(gt=0, le=MAX_IMAGE_PX, description="Output width (px).")] = None


@dataclass
class PartParams(DefaultDependency):
    max_size: Annotated[int | None, Field(gt=0, le=MAX_IMAGE_PX, description="Longest side of the output (px).")] = None
    height: Annotated[int | None, Field(gt=0, le=MAX_IMAGE_PX, description="Output height (px).")] = None
    width: Annotated[int | None, Field(gt=0, le=MAX_IMAGE_PX, description="Output width (px).")] = None


MAX_HISTOGRAM_BINS = 1024
MAX_PERCENTILES = 32
MAX_CATEGORIES = 256
MAX_ZOOM = 30
MAX_FEATURES = 100
MAX_BODY_BYTES = 1 << 20  # GeoJSON of posted features
MAX_COVERAGE_PX = 2**27  # pixels of the finer raster a feature's coverage is computed on (1 byte each)


@dataclass
class StatisticsParams(DefaultDependency):
    """TiTiler's statistics options, bounded: percentiles within 0..100, a few of them, a few categories."""

    categorical: Annotated[bool | None, Query(description="Statistics of a categorical dataset (counts of "
                                                          "values). Default false.")] = None
    categories: Annotated[list[float] | None, Query(alias="c", max_length=MAX_CATEGORIES,
                                                    description="Values to count (categorical).")] = None
    percentiles: Annotated[list[Annotated[int, Field(ge=0, le=100)]] | None,
                           Query(alias="p", max_length=MAX_PERCENTILES,
                                 description="Percentiles to report, 0..100 (default 2 and 98).")] = None

    def __post_init__(self) -> None:
        if not self.percentiles:
            self.percentiles = [2, 98]


@dataclass
class HistogramParams(DefaultDependency):
    """TiTiler's histogram options, bounded: at most `MAX_HISTOGRAM_BINS` bins, increasing edges, a finite range."""

    bins: Annotated[str | None, Query(alias="histogram_bins", pattern=r"^\d{1,12}(,\d{1,12})*$", max_length=8192,
                                      description=f"Number of equal-width bins (1..{MAX_HISTOGRAM_BINS}, default 10) "
                                                  "or increasing bin edges (comma-separated).")] = None
    range: Annotated[str | None, Query(alias="histogram_range", max_length=64,
                                       description="min,max of the bins (default: the data's).")] = None

    def __post_init__(self) -> None:
        self.bins = parse_histogram_bins(self.bins)
        self.range = parse_histogram_range(self.range) if self.range else None


def parse_histogram_bins(text: str | None) -> int | list[float]:
    if not text:
        return 10
    values = [int(v) for v in text.split(",")]
    if len(values) == 1:
        if not 1 <= values[0] <= MAX_HISTOGRAM_BINS:
            raise InvalidInputError(f"histogram_bins {values[0]}: use 1..{MAX_HISTOGRAM_BINS} bins")
        return values[0]
    if len(values) > MAX_HISTOGRAM_BINS + 1:
        raise InvalidInputError(f"histogram_bins: at most {MAX_HISTOGRAM_BINS + 1} bin edges")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise InvalidInputError("histogram_bins: bin edges must increase, e.g. 0,100,200,300")
    return [float(v) for v in values]


def parse_histogram_range(text: str) -> list[float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"histogram_range {text!r}: give min,max, e.g. 0,3000") from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise InvalidInputError(f"histogram_range {text!r}: give finite min,max with min <= max")
    return [low, high]


async def check_request_limits(request: Request) -> None:
    """Limits that span parameters of several TiTiler dependencies (router-level dependency, no parameters).

    ``minzoom`` and ``maxzoom`` (tileset, TileJSON, WMTS) are zoom levels a tile matrix set can have; a
    posted FeatureCollection has at most `MAX_FEATURES` features (each is a read; the body itself is at
    most `MAX_BODY_BYTES`, the app's limit).
    A feature's coverage is rasterized ``cover_scale`` times finer than the output on each side:
    bound that raster (``cover_scale``² x output pixels) before anything is read.
    """
    if request.method == "POST":
        await _check_feature_count(request)
    query = request.query_params
    for key in ("minzoom", "maxzoom"):
        value = query.get(key)
        if value is not None and value.lstrip("-").isdigit() and not 0 <= int(value) <= MAX_ZOOM:
            raise InvalidInputError(f"{key} {value}: zoom levels are 0..{MAX_ZOOM}")
    cover = query.get("cover_scale")
    if cover is None or not cover.isdigit():
        return  # absent, or invalid: the route's own validation answers
    sizes = [int(query[k]) for k in ("max_size", "width", "height") if query.get(k, "").isdigit()]
    side = max(sizes or [DEFAULT_MAX_SIZE])
    if side * side * int(cover) ** 2 > MAX_COVERAGE_PX:
        most = max(1, int(math.sqrt(MAX_COVERAGE_PX) // side))
        raise InvalidInputError(f"cover_scale {cover} with an output of up to {side} px per side: use a cover_scale "
                                f"of at most {most}, or a smaller max_size/width/height")


async def _check_feature_count(request: Request) -> None:
    try:
        document = json.loads(await request.body())
    except ValueError:
        return  # the route's own validation answers 422
    features = document.get("features") if isinstance(document, dict) else None
    if isinstance(features, list) and len(features) > MAX_FEATURES:
        raise InvalidInputError(f"{len(features)} features: send at most {MAX_FEATURES} per request")


def check_legend_size(request: Request) -> None:
    """``width`` and ``height`` of a colormap legend image (TiTiler's ``/colorMaps/{id}``): 1..`MAX_IMAGE_PX`."""
    for key in ("width", "height"):
        value = request.query_params.get(key)
        if value is None:
            continue
        try:
            size = int(value)
        except ValueError:
            continue  # not an integer: the route's own validation answers 422
        if not 1 <= size <= MAX_IMAGE_PX:
            raise InvalidInputError(f"{key} {size}: a legend image is 1..{MAX_IMAGE_PX} px")


def _is_picture(request: Request) -> bool:
    fmt = request.path_params.get("format") or request.query_params.get("tile_format")
    return (fmt.lower() if isinstance(fmt, str) else fmt) in PICTURE_FORMATS


def render_params(request: Request, params: Annotated[ImageRenderingParams, Depends(ImageRenderingParams)],
                  layer_params: Annotated[LayerParams, Depends(LayerParams)]) -> ImageRenderingParams:
    """TiTiler's rendering options, with the preset's (or the bands') rescaling when none is given."""
    if params.rescale or not _is_picture(request):
        return params
    rescale, _ = _styling(layer_params)
    if rescale:
        params.rescale = [tuple(r) for r in rescale]
    return params


def _styling(layer_params: LayerParams) -> tuple[tuple[tuple[float, float], ...], str | None]:
    return picture_styling(layer_params.layer, own_bands=bool(layer_params.bands),
                           own_expression=bool(layer_params.expression))


def colormap_params(
    request: Request,
    layer_params: Annotated[LayerParams, Depends(LayerParams)],
    colormap_name: Annotated[Literal[tuple(default_cmap.list())] | None, Query(description="Colormap name.")] = None,  # type: ignore[valid-type]
    colormap: Annotated[str | None, Query(description="JSON colormap {value: [r,g,b,a]}.", max_length=20000)] = None,
) -> ColorMapType | None:
    """A named or JSON colormap; the preset's colormap for single-band pictures when none is given."""
    if colormap_name:
        return default_cmap.get(colormap_name)
    if colormap:
        return parse_colormap(colormap)
    if not _is_picture(request):
        return None
    preset = layer_params.layer.preset
    if preset and preset.colormap and not layer_params.bands and not layer_params.expression:
        return {value: parse_color(colour) for value, colour in preset.colormap}  # a categorical preset (fill flag)
    name = _styling(layer_params)[1]
    return default_cmap.get(name) if name else None


def parse_colormap(text: str) -> ColorMapType:
    """``{"1": "#ff0000", "2": [0, 255, 0, 255]}`` or intervals ``[[[0, 10], "#ff0000"], ...]``."""
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return {int(k): parse_color(v) for k, v in value.items()}
        if isinstance(value, list):
            return [((float(lo), float(hi)), parse_color(color)) for (lo, hi), color in value]
    except Exception:
        pass
    raise InvalidInputError('colormap must be JSON like {"1": "#ff0000"} or [[[0, 10], "#ff0000"]]')


def no_post_process() -> None:
    """TiTiler's algorithms are not offered: expressions and presets cover the product's needs."""
    return None
