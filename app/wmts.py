"""OGC WMTS 1.0 capabilities for a season, as a TiTiler factory extension.

``/seasons/{season}/{tileMatrixSetId}/WMTSCapabilities.xml`` lists one layer per preset (and a
``custom`` layer for the request's own ``bands``/``expression``/``statistic``), each with a RESTful
``ResourceURL`` template pointing at the tile endpoint of a season named by its first day, the
``{Time}`` of a ``Time`` dimension whose values are the first days of the WMS' seasons
(`app.wms.time_seasons`) and whose default is this season. QGIS and GDAL's WMTS driver
(``WMTS:http://.../WMTSCapabilities.xml,layer=true-colour``) read it; QGIS 3.26+ animates the dimension
with its temporal controller.
"""

import xml.etree.ElementTree as ET
from typing import Annotated, Literal
from urllib.parse import urlencode

import rasterio
from attrs import define
from fastapi import Depends, Path, Query
from rio_tiler.utils import CRS_to_uri
from starlette.requests import Request
from starlette.responses import Response
from titiler.core.factory import FactoryExtension, TilerFactory

from app.errors import NotFoundError
from app.presets import PRESETS
from app.wms import sub_element as _sub
from app.wms import time_seasons
from compositor.errors import InvalidInputError

WMTS_NS = "http://www.opengis.net/wmts/1.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
LAYER_PARAMS = ("bands", "statistic", "expression", "preset")
DROPPED_PARAMS = (*LAYER_PARAMS, "tile_format", "minzoom", "maxzoom", "service", "request", "version")
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
MAX_MATRICES = 25

ET.register_namespace("", WMTS_NS)
ET.register_namespace("ows", OWS_NS)
ET.register_namespace("xlink", XLINK_NS)


def _w(tag: str) -> str:
    return f"{{{WMTS_NS}}}{tag}"


def _o(tag: str) -> str:
    return f"{{{OWS_NS}}}{tag}"


def capabilities_xml(*, title: str, capabilities_url: str, layers: list[tuple[str, str, str]], tms,
                     bounds_4326: tuple[float, float, float, float], minzoom: int, maxzoom: int,
                     media_type: str, time: tuple[str, list[str]] | None = None) -> bytes:
    """The capabilities document; ``layers`` are (identifier, title, tile URL template); ``time`` is the
    ``Time`` dimension's default and values, which the templates name as ``{Time}``."""
    root = ET.Element(_w("Capabilities"), {"version": "1.0.0"})
    ident = _sub(root, _o("ServiceIdentification"))
    _sub(ident, _o("Title"), title)
    _sub(ident, _o("ServiceType"), "OGC WMTS")
    _sub(ident, _o("ServiceTypeVersion"), "1.0.0")
    operations = _sub(root, _o("OperationsMetadata"))
    for name in ("GetCapabilities", "GetTile"):
        op = _sub(operations, _o("Operation"), name=name)
        get = _sub(_sub(_sub(op, _o("DCP")), _o("HTTP")), _o("Get"), **{f"{{{XLINK_NS}}}href": capabilities_url})
        constraint = _sub(get, _o("Constraint"), name="GetEncoding")
        _sub(_sub(constraint, _o("AllowedValues")), _o("Value"), "RESTful")
    contents = _sub(root, _w("Contents"))
    west, south, east, north = bounds_4326
    for identifier, layer_title, template in layers:
        layer = _sub(contents, _w("Layer"))
        _sub(layer, _o("Title"), layer_title)
        _sub(layer, _o("Identifier"), identifier)
        box = _sub(layer, _o("WGS84BoundingBox"), crs="urn:ogc:def:crs:OGC:2:84")
        _sub(box, _o("LowerCorner"), f"{west} {south}")
        _sub(box, _o("UpperCorner"), f"{east} {north}")
        style = _sub(layer, _w("Style"), isDefault="true")
        _sub(style, _o("Identifier"), "default")
        _sub(layer, _w("Format"), media_type)
        if time is not None:
            dimension = _sub(layer, _w("Dimension"))
            _sub(dimension, _o("Identifier"), "Time")
            _sub(dimension, _o("Title"), "Season (its first day)")
            _sub(dimension, _w("UOM"), "ISO8601")
            _sub(dimension, _w("Default"), time[0])
            for value in time[1]:
                _sub(dimension, _w("Value"), value)
        link = _sub(layer, _w("TileMatrixSetLink"))
        _sub(link, _w("TileMatrixSet"), tms.id)
        _sub(layer, _w("ResourceURL"), format=media_type, resourceType="tile", template=template)
    matrix_set = _sub(contents, _w("TileMatrixSet"))
    _sub(matrix_set, _o("Identifier"), tms.id)
    _sub(matrix_set, _o("SupportedCRS"), CRS_to_uri(tms.rasterio_crs) or tms.crs.srs)
    for zoom in range(minzoom, maxzoom + 1):
        matrix = tms.matrix(zoom)
        element = _sub(matrix_set, _w("TileMatrix"))
        _sub(element, _o("Identifier"), matrix.id)
        _sub(element, _w("ScaleDenominator"), repr(matrix.scaleDenominator))
        _sub(element, _w("TopLeftCorner"), f"{matrix.pointOfOrigin[0]!r} {matrix.pointOfOrigin[1]!r}")
        _sub(element, _w("TileWidth"), matrix.tileWidth)
        _sub(element, _w("TileHeight"), matrix.tileHeight)
        _sub(element, _w("MatrixWidth"), matrix.matrixWidth)
        _sub(element, _w("MatrixHeight"), matrix.matrixHeight)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def time_dimension(services, state) -> tuple[str, list[str]] | None:
    """The ``Time`` dimension of a season's capabilities: its default (the season's first day) and values (the first
    days of the WMS' seasons, `app.wms.time_seasons`; of a variant, those that have it). A day is listed only where
    the season path resolves it to that very season (a custom season starting on another's first day does not);
    None when the URL's own season cannot be named by a day: its template then keeps the season's name."""
    registry = services.registry
    seasons, _ = time_seasons(services)
    candidates = {s.name: s for s in seasons}
    candidates[state.season.name] = state.season
    days = []
    for season in sorted(candidates.values(), key=lambda s: (s.start, s.end, s.name)):
        day = season.start.isoformat()
        if registry.resolve(day) != season:
            continue
        if state.variant and season != state.season and state.variant not in registry.get(season.name).products:
            continue  # a season without the variant would answer 404
        days.append(day)
    own = state.season.start.isoformat()
    return (own, days) if registry.resolve(own) == state.season else None


@define
class WMTSExtension(FactoryExtension):
    """Adds ``/{tileMatrixSetId}/WMTSCapabilities.xml`` to a season `TilerFactory`."""

    def register(self, factory: TilerFactory) -> None:
        tms_ids = tuple(factory.supported_tms.list())

        @factory.router.get(
            "/{tileMatrixSetId}/WMTSCapabilities.xml",
            response_class=Response,
            responses={200: {"content": {"application/xml": {}}, "description": "OGC WMTS capabilities."}},
            operation_id=f"{factory.operation_prefix}getWMTS",
        )
        def wmts(
            request: Request,
            tileMatrixSetId: Annotated[Literal[tms_ids], Path(description="TileMatrixSet identifier.")],  # type: ignore[valid-type]
            tile_format: Annotated[Literal["png", "jpeg", "jpg", "webp"], Query(description="Tile format.")] = "png",
            src_path=Depends(factory.path_dependency),
            layer_params=Depends(factory.layer_dependency),
        ):
            """WMTS capabilities: one layer per preset (plus ``custom`` for the request's own bands/expression)."""
            tms = factory.supported_tms.get(tileMatrixSetId)
            if any(m.variableMatrixWidths for m in tms.tileMatrices):
                raise NotFoundError(f"{tms.id} has variable matrix widths, which WMTS cannot describe: use another")
            with rasterio.Env():
                with factory.reader(src_path, tms=tms) as reader:
                    bounds = reader.get_geographic_bounds(tms.rasterio_geographic_crs)
                    minzoom, maxzoom = reader.minzoom, reader.maxzoom
            if maxzoom - minzoom >= MAX_MATRICES:
                raise InvalidInputError(f"{tms.id}: too many zoom levels ({minzoom}..{maxzoom})")
            tile_url = factory.url_for(request, "tile", tileMatrixSetId=tms.id, z="{TileMatrix}", x="{TileCol}",
                                       y="{TileRow}", format=tile_format)
            state = src_path.state
            time = time_dimension(request.app.state.services, state)
            if time is not None:  # the season is the Time dimension: {Time} is a day the season path resolves
                tile_url = tile_url.replace(f"/seasons/{request.path_params['season']}/", "/seasons/{Time}/", 1)
            kept = [(k, v) for k, v in request.query_params.multi_items() if k.lower() not in DROPPED_PARAMS]
            layers = []
            own = [(k, v) for k, v in request.query_params.multi_items() if k in LAYER_PARAMS]
            if own and not (len(own) == 1 and own[0][0] == "preset"):
                layers.append(("custom", "Custom: " + urlencode(own), f"{tile_url}?{urlencode(own + kept)}"))
            for preset in PRESETS.values():
                if preset.variant and preset.variant != state.variant:
                    continue  # the fill flag: a layer of the filled variant only
                query = urlencode([("preset", preset.name), *kept])
                layers.append((preset.name, preset.title, f"{tile_url}?{query}"))
            variant = f", {state.variant}" if state.variant else ""
            body = capabilities_xml(
                title=f"s2seasons {state.name}{variant} ({state.season.start}..{state.season.end})",
                capabilities_url=str(request.url), layers=layers, tms=tms, bounds_4326=bounds,
                minzoom=minzoom, maxzoom=maxzoom, media_type=FORMATS[tile_format], time=time,
            )
            return Response(body, media_type="application/xml")
