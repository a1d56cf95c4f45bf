"""Request parameters, validated into values the reader understands; every bad value is a 4xx.

The season path parameter resolves to a known season name (a calendar season, a custom one, or a
built folder) and never to a path. Layer parameters (``bands``, ``statistic``, ``expression``,
``preset``) become a `Layer`; rendering parameters fall back to the preset's (or the band's)
default rescaling and colormap when the output is a picture (png, jpeg, webp) and the client gave
none: data formats (tif, npy) carry the values themselves.
"""

from __future__ import annotations

import json
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
from app.presets import default_rescale, resolve_preset
from app.reader import SeasonSource
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
                                                      "ndvi, count (see /presets).", max_length=32)]


def services_of(request: Request) -> Services:
    return request.app.state.services


def season_source(request: Request, season: SeasonPath) -> SeasonSource:
    """The season named in the path, as the reader's input (`SeasonNotFoundError` -> 404)."""
    services = services_of(request)
    return SeasonSource(services.registry.get(season), services)


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


def _is_picture(request: Request) -> bool:
    fmt = request.path_params.get("format") or request.query_params.get("tile_format")
    return (fmt.lower() if isinstance(fmt, str) else fmt) in PICTURE_FORMATS


def render_params(request: Request, params: Annotated[ImageRenderingParams, Depends(ImageRenderingParams)],
                  layer_params: Annotated[LayerParams, Depends(LayerParams)]) -> ImageRenderingParams:
    """TiTiler's rendering options, with the preset's (or the bands') rescaling when none is given."""
    if params.rescale or not _is_picture(request):
        return params
    layer = layer_params.layer
    preset = layer.preset
    if preset and preset.rescale and (not layer_params.bands and not layer_params.expression):
        params.rescale = [tuple(r) for r in preset.rescale]
    elif not layer.expressions:
        params.rescale = [tuple(r) for r in default_rescale(tuple(b for b, _ in layer.variables), layer.statistic)]
    return params


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
    preset = layer_params.layer.preset
    if preset and preset.colormap_name and _is_picture(request) and not layer_params.bands:
        return default_cmap.get(preset.colormap_name)
    return None


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


def preset_or_404(name: str) -> dict[str, Any]:
    return resolve_preset(name).as_json()
