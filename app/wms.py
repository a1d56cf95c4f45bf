"""OGC WMS 1.3.0 with the seasons as its TIME dimension (WMS-T), for QGIS' temporal controller.

``GET /wms?SERVICE=WMS&REQUEST=GetCapabilities`` lists one layer per preset (its styles are the
statistics: p50, p25, p75, medoid) under a root layer whose ``time`` dimension holds the seasons,
each an interval of days (``2021-12-02/2022-03-20/P1D``): the built seasons and every calendar
season between the first and the last of them, plus the configured custom seasons. ``GetMap``
draws a preset for one season, read like the tiles (built blocks, else on the fly) and styled by
the same rule (`app.presets.picture_styling`); ``GetFeatureInfo`` answers the pixel's values like
``/point`` (text, HTML or GeoJSON).

``TIME`` picks the season: a day or instant (``2022-01-15``, ``2022-01-15T00:00:00Z``: the listed
season containing it, a built one first, else its calendar season), an interval (the listed season
overlapping it most; QGIS sends one with the time slice mode "use whole temporal range"), or a
season name (``2022-winter``); without ``TIME`` the latest built season. Errors are OGC service
exception reports (HTTP 400) naming the parameter to change.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends
from pyproj import CRS as ProjCRS
from rasterio.crs import CRS
from rio_tiler.colormap import cmap as default_cmap
from titiler.core.resources.enums import ImageType
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from titiler.core.utils import render_image

from app.dependencies import MAX_IMAGE_PX, services_of
from app.layers import all_variables_layer, make_layer
from app.presets import DEFAULT_PRESET, PRESETS, Preset, picture_styling
from app.reader import SeasonReader, SeasonSource
from app.services import Services
from compositor.bands import COUNT, MEDOID
from compositor.errors import InvalidInputError
from compositor.seasons import (SEASON_NAMES, Season, calendar_season, calendar_seasons, is_calendar, resolve_season,
                                season_of)

WMS_PATH = "/wms"
WMS_NS = "http://www.opengis.net/wms"
XLINK_NS = "http://www.w3.org/1999/xlink"
OGC_NS = "http://www.opengis.net/ogc"
VERSIONS = ("1.3.0", "1.1.1")
MAP_FORMATS = {"image/png": ImageType.png, "image/jpeg": ImageType.jpeg, "image/webp": ImageType.webp}
INFO_FORMATS = ("text/plain", "text/html", "application/json", "application/geo+json")
# Advertised CRSs; GetMap takes any EPSG code pyproj knows (the season's own grid CRS is added).
CRS_CODES = ("EPSG:3857", "EPSG:3035", "EPSG:4326", "CRS:84", "EPSG:4258")
STYLE_TITLES = {"p50": "Median (P50)", "p25": "25th percentile (P25)", "p75": "75th percentile (P75)",
                MEDOID: "Medoid (one real observation per pixel)", COUNT: "Cloud-free observations"}
MAX_TIME_SEASONS = 200  # the time dimension lists at most this many seasons (the latest)



class WMSError(InvalidInputError):
    """A WMS request error, answered as a service exception report with an OGC ``code``."""

    def __init__(self, message: str, code: str = "InvalidParameterValue", locator: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.locator = locator


_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_MESSAGE_CHARS = 600


def xml_text(text: str) -> str:
    """``text`` as XML 1.0 can carry it: characters XML forbids (control characters a client sent, echoed in a
    message) become "?", and a message that echoes a huge value is cut."""
    text = _NOT_XML.sub("?", text)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


def exception_report(error: Exception, version: str = "1.3.0") -> Response:
    """An OGC ServiceExceptionReport (HTTP 400): what went wrong and which parameter to change."""
    code = getattr(error, "code", "InvalidParameterValue")
    locator = getattr(error, "locator", None)
    root = ET.Element("ServiceExceptionReport", {"version": version, "xmlns": OGC_NS})
    attrib = {"code": code, **({"locator": xml_text(locator)} if locator else {})}  # a name the client sent
    ET.SubElement(root, "ServiceException", attrib).text = xml_text(str(error))
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    media = "text/xml" if version == "1.3.0" else "application/vnd.ogc.se_xml"
    return Response(body, status_code=400, media_type=media)


# --- the seasons of the time dimension -------------------------------------------------------------

def time_seasons(services: Services) -> tuple[list[Season], Season]:
    """The seasons of the time dimension (by start date) and the default one.

    Built seasons and every calendar season between the first and last built calendar season (those
    are composited on the fly), plus the configured custom seasons. With nothing built: the four
    calendar seasons of last year. The default is the latest built season, else the latest listed.
    """
    registry = services.registry
    built = [registry.resolve(name) for name in registry.built_season_names()]
    calendar = sorted(s for s in built if is_calendar(s))
    listed: dict[str, Season] = {s.name: s for s in built}
    if calendar:
        for season in calendar_seasons(calendar[0], calendar[-1]):  # at most ~470 (years 1984-2100)
            listed.setdefault(season.name, season)
    elif not built:
        year = dt.date.today().year - 1
        listed.update({s.name: s for s in (calendar_season(year, n) for n in SEASON_NAMES)})
    listed.update(services.settings.seasons)
    seasons = sorted(listed.values(), key=lambda s: (s.start, s.end, s.name))[-MAX_TIME_SEASONS:]
    default = max(built, key=lambda s: (s.start, s.end)) if built else seasons[-1]
    return seasons, default


def time_extent(seasons: list[Season]) -> str:
    """The WMS time extent: every season as an interval of days."""
    return ",".join(f"{s.start.isoformat()}/{s.end.isoformat()}/P1D" for s in seasons)


_TIME_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2}([T ].*)?)?)?$")


def _parse_instant(text: str, *, end: bool = False) -> dt.date:
    """The day of an ISO 8601 instant: 2022, 2022-01, 2022-01-15, 2022-01-15T10:00:00.000Z (UTC)."""
    value = text.strip()
    if not _TIME_RE.match(value):
        raise ValueError(value)
    if len(value) == 4:
        return dt.date(int(value), 12, 31) if end else dt.date(int(value), 1, 1)
    if len(value) == 7:
        year, month = int(value[:4]), int(value[5:7])
        first = dt.date(year, month, 1)
        if not end:
            return first
        return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    moment = dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    day = moment.date()
    if end and moment.time() == dt.time(0) and moment.tzinfo is not None:
        day -= dt.timedelta(days=1)  # an interval's end at midnight: the day before is the last one in it
    return day


def season_for_time(value: str | None, services: Services) -> Season:
    """The season the ``TIME`` parameter names (module docstring); `WMSError` when it names none."""
    seasons, default = time_seasons(services)
    text = (value or "").strip()
    if not text or text.lower() == "current":
        return default
    if "," in text:
        raise WMSError(f"TIME={text}: give one time, one interval or one season (a map shows one season)",
                       "InvalidDimensionValue", "time")
    if not _TIME_RE.match(text.split("/")[0].strip()):  # a season's name (a day is a time, below, not a name)
        try:
            return resolve_season(text, services.settings.seasons)
        except InvalidInputError:
            pass
    built = set(services.registry.built_season_names())
    parts = text.split("/")
    try:
        if len(parts) == 1:
            day = _parse_instant(parts[0])
            containing = [s for s in seasons if s.contains(day)]
            if containing:
                return min(containing, key=lambda s: (s.name not in built, s.days))
            return season_of(day)
        if len(parts) in (2, 3):
            first, last = _parse_instant(parts[0]), _parse_instant(parts[1], end=True)
            if last < first:
                raise ValueError(text)
            overlaps = [(min(s.end, last) - max(s.start, first)).days + 1 for s in seasons]
            best = max(overlaps, default=0)
            if best > 0:
                candidates = [s for s, o in zip(seasons, overlaps) if o == best]
                return min(candidates, key=lambda s: (s.name not in built, s.start))
            return season_of(first + (last - first) / 2)
    except (ValueError, OverflowError):  # not a time, or one out of the calendar's range
        pass
    raise WMSError(f"TIME={text}: give a day (2022-01-15), an instant (2022-01-15T00:00:00Z), an interval "
                   "(2021-12-02/2022-03-20) or a season name (2022-winter)", "InvalidDimensionValue", "time")


# --- requests ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MapRequest:
    """A validated GetMap (or the map part of a GetFeatureInfo)."""

    version: str
    preset: Preset
    style: str
    crs: CRS
    bbox: tuple[float, float, float, float]  # x/y order (east, north), whatever the CRS's axis order
    width: int
    height: int
    season: Season


def _params(request: Request) -> dict[str, str]:
    """Query parameters with lower-case names (WMS names are case-insensitive); a repeated name is an error."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        name = key.lower()
        if name in params and params[name] != value:
            raise WMSError(f"{key.upper()} is given twice: give it once", locator=name)
        params[name] = value
    return params


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise WMSError(f"{name.upper()} is missing: see {WMS_PATH}?SERVICE=WMS&REQUEST=GetCapabilities",
                       "MissingParameterValue", name)
    return value


def _crs(text: str) -> tuple[CRS, bool]:
    """The CRS and whether its first axis is northing/latitude (WMS 1.3.0 axis order)."""
    code = text.strip().upper()
    if code == "CRS:84":
        return CRS.from_epsg(4326), False
    if not re.match(r"^EPSG:\d{1,6}$", code):
        raise WMSError(f"CRS={text}: give an EPSG code (e.g. EPSG:3857, EPSG:3035, EPSG:4326) or CRS:84",
                       "InvalidCRS", "crs")
    try:
        proj = ProjCRS.from_user_input(code)
        crs = CRS.from_user_input(code)
    except Exception:
        raise WMSError(f"CRS={text} is not a known EPSG code: use e.g. EPSG:3857", "InvalidCRS", "crs") from None
    axes = proj.axis_info
    north_first = bool(axes) and axes[0].direction.lower() in ("north", "south")
    return crs, north_first


def _int(params: dict[str, str], name: str, low: int, high: int) -> int:
    text = _required(params, name)
    try:
        value = int(text)
    except ValueError:
        raise WMSError(f"{name.upper()}={text}: give a whole number of pixels", locator=name) from None
    if not low <= value <= high:
        raise WMSError(f"{name.upper()}={value}: give {low}..{high} pixels", locator=name)
    return value


def wms_presets() -> dict[str, Preset]:
    """The presets served as WMS layers: those of a season itself (the fill flag belongs to the filled variant,
    which the WMS does not serve: its tiles take ``variant=filled``)."""
    return {name: preset for name, preset in PRESETS.items() if not preset.variant}


def _preset(name: str) -> Preset:
    preset = wms_presets().get(name.strip().lower())
    if preset is None:
        raise WMSError(f"layer {name!r} is not served: use one of {', '.join(wms_presets())}", "LayerNotDefined",
                       "layers")
    return preset


def preset_styles(preset: Preset) -> tuple[str, ...]:
    """The WMS styles of a preset's layer: the statistics it can be drawn with, its own first."""
    if preset.statistic == COUNT:
        return (COUNT,)
    return ("p50", "p25", "p75", MEDOID)


def map_request(params: dict[str, str], services: Services, *, layers_key: str = "layers") -> MapRequest:
    version = params.get("version", "1.3.0").strip() or "1.3.0"
    if version not in VERSIONS:
        raise WMSError(f"VERSION={version}: this server speaks WMS {' and '.join(VERSIONS)}", locator="version")
    names = [n for n in _required(params, layers_key).split(",") if n.strip()]
    if len(names) != 1:
        raise WMSError(f"{layers_key.upper()}={params[layers_key]}: give one layer (a preset); add several layers "
                       "to the map to overlay them", "LayerNotDefined", layers_key)
    preset = _preset(names[0])
    styles = [s.strip().lower() for s in params.get("styles", "").split(",")]
    style = styles[0] if styles and styles[0] not in ("", "default") else preset_styles(preset)[0]
    if style not in preset_styles(preset):
        raise WMSError(f"STYLES={params.get('styles')}: layer {preset.name} has the styles "
                       f"{', '.join(preset_styles(preset))}", "StyleNotDefined", "styles")
    crs_key = "crs" if version == "1.3.0" else "srs"
    crs, north_first = _crs(_required(params, crs_key))
    try:
        values = [float(v) for v in _required(params, "bbox").split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise WMSError(f"BBOX={params.get('bbox')}: give minx,miny,maxx,maxy (four numbers; in WMS 1.3.0 "
                       "EPSG:4326 and EPSG:3035 list northing/latitude first)", locator="bbox")
    if version == "1.3.0" and north_first:
        values = [values[1], values[0], values[3], values[2]]
    west, south, east, north = values
    if west >= east or south >= north:
        raise WMSError(f"BBOX={params.get('bbox')}: the minimum of each axis must be below its maximum",
                       locator="bbox")
    width = _int(params, "width", 1, MAX_IMAGE_PX)
    height = _int(params, "height", 1, MAX_IMAGE_PX)
    season = season_for_time(params.get("time"), services)
    return MapRequest(version, preset, style, crs, (west, south, east, north), width, height, season)


def _reader(services: Services, season: Season) -> SeasonReader:
    return SeasonReader(SeasonSource(services.registry.get(season.name), services))


def get_map(params: dict[str, str], services: Services) -> Response:
    req = map_request(params, services)
    fmt = params.get("format", "image/png").strip().lower() or "image/png"
    if fmt not in MAP_FORMATS:
        raise WMSError(f"FORMAT={fmt}: use one of {', '.join(MAP_FORMATS)}", "InvalidFormat", "format")
    layer = make_layer(preset=req.preset.name, statistic=None if req.style == req.preset.statistic else req.style)
    rescale, colormap_name = picture_styling(layer)
    with _reader(services, req.season) as reader:
        image = reader.part(req.bbox, dst_crs=req.crs, bounds_crs=req.crs, layer=layer,
                            width=req.width, height=req.height)
    transparent = params.get("transparent", "true").strip().lower() != "false"
    if not transparent and MAP_FORMATS[fmt] != ImageType.jpeg:
        image.array.mask = np.zeros_like(image.array.mask)  # opaque: empty pixels draw black
    content, media = render_image(image, colormap=default_cmap.get(colormap_name) if colormap_name else None,
                                  output_format=MAP_FORMATS[fmt], rescale=list(rescale) or None,
                                  add_mask=transparent)
    return Response(content, media_type=media, headers={"X-S2Seasons-Season": req.season.name})


def get_feature_info(params: dict[str, str], services: Services) -> Response:
    req = map_request(params, services, layers_key="query_layers")
    fmt = params.get("info_format", "text/plain").strip().lower() or "text/plain"
    if fmt not in INFO_FORMATS:
        raise WMSError(f"INFO_FORMAT={fmt}: use one of {', '.join(INFO_FORMATS)}", "InvalidFormat", "info_format")
    i_key, j_key = ("i", "j") if req.version == "1.3.0" else ("x", "y")
    i = _int(params, i_key, 0, req.width - 1)
    j = _int(params, j_key, 0, req.height - 1)
    west, south, east, north = req.bbox
    x = west + (i + 0.5) * (east - west) / req.width
    y = north - (j + 0.5) * (north - south) / req.height
    with _reader(services, req.season) as reader:
        point = reader.point(x, y, coord_crs=req.crs, point_layer=all_variables_layer())
    values: dict[str, Any] = {}
    for name, value, empty in zip(point.band_names, point.array.data.tolist(),
                                  np.ma.getmaskarray(point.array).tolist()):
        values[name] = None if empty else (int(value) if float(value).is_integer() else round(float(value), 6))
    lon, lat = _to_lonlat(req.crs, x, y)
    properties: dict[str, Any] = {"season": req.season.name, "start_date": req.season.start.isoformat(),
                                  "end_date": req.season.end.isoformat(), "layer": req.preset.name, **values}
    if fmt in ("application/json", "application/geo+json"):
        feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                   "properties": properties}
        return JSONResponse({"type": "FeatureCollection", "features": [feature]}, media_type=fmt)
    if fmt == "text/html":
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{'' if v is None else html.escape(str(v))}</td></tr>"
                       for k, v in properties.items())
        page = (f"<html><body><table><caption>{html.escape(req.preset.title)} at {lon:.5f}, {lat:.5f}"
                f"</caption>{rows}</table></body></html>")
        return Response(page, media_type="text/html")
    lines = [f"{k} = {'' if v is None else v}" for k, v in properties.items()]
    return Response(f"{req.preset.title} at {lon:.5f}, {lat:.5f}\n" + "\n".join(lines) + "\n", media_type="text/plain")


def _to_lonlat(crs: CRS, x: float, y: float) -> tuple[float, float]:
    from rasterio.warp import transform

    xs, ys = transform(crs, CRS.from_epsg(4326), [x], [y])
    return round(xs[0], 7), round(ys[0], 7)


# --- capabilities --------------------------------------------------------------------------------------

def sub_element(parent: ET.Element, tag: str, text: object | None = None, **attrib: str) -> ET.Element:
    """A child ``tag`` of ``parent`` with ``text`` and attributes (the capabilities of `app.wms` and `app.wmts`)."""
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = str(text)
    return element


def _online(parent: ET.Element, href: str) -> None:
    ET.SubElement(parent, "OnlineResource", {"xlink:type": "simple", "xlink:href": href})


def _bounds_4326(services: Services, default: Season) -> tuple[float, float, float, float]:
    """Where the layers have data: the built seasons' footprints, else where the default season's tiles come from."""
    boxes = []
    for name in services.registry.built_season_names():
        footprint = services.registry.get(name).built.footprint_4326
        if footprint is not None:
            boxes.append(footprint.bounds)
    if not boxes:
        with _reader(services, default) as reader:
            boxes.append(reader.get_geographic_bounds(CRS.from_epsg(4326)))
    west = max(-180.0, min(b[0] for b in boxes))
    south = max(-90.0, min(b[1] for b in boxes))
    east = min(180.0, max(b[2] for b in boxes))
    north = min(90.0, max(b[3] for b in boxes))
    return west, south, east, north


def capabilities(base_url: str, services: Services) -> bytes:
    seasons, default = time_seasons(services)
    url = f"{base_url}{WMS_PATH}?"
    # Namespaces as plain attributes: the document's tags are WMS's own, unprefixed, as clients expect.
    root = ET.Element("WMS_Capabilities", {"version": "1.3.0", "xmlns": WMS_NS, "xmlns:xlink": XLINK_NS})
    service = sub_element(root, "Service")
    sub_element(service, "Name", "WMS")
    sub_element(service, "Title", "s2seasons: seasonal cloud-free Sentinel-2 mosaics")
    sub_element(service, "Abstract", "Per-pixel percentiles (P25, P50, P75) of the cloud-free Sentinel-2 L2A "
                                     "observations of each season, built or composited on the fly. TIME selects the "
                                     "season.")
    _online(service, url)
    sub_element(service, "MaxWidth", MAX_IMAGE_PX)
    sub_element(service, "MaxHeight", MAX_IMAGE_PX)
    capability = sub_element(root, "Capability")
    requests = sub_element(capability, "Request")
    for operation, formats in (("GetCapabilities", ("text/xml",)), ("GetMap", tuple(MAP_FORMATS)),
                               ("GetFeatureInfo", INFO_FORMATS)):
        element = sub_element(requests, operation)
        for fmt in formats:
            sub_element(element, "Format", fmt)
        _online(sub_element(sub_element(sub_element(element, "DCPType"), "HTTP"), "Get"), url)
    sub_element(sub_element(capability, "Exception"), "Format", "XML")
    top = sub_element(capability, "Layer")
    sub_element(top, "Title", "s2seasons")
    sub_element(top, "Abstract", f"Seasons {seasons[0].name} to {seasons[-1].name}; default {default.name}.")
    codes = list(CRS_CODES)
    grid_crs = services.settings.crs.upper()
    if grid_crs not in codes:
        codes.append(grid_crs)
    for code in codes:
        sub_element(top, "CRS", code)
    west, south, east, north = _bounds_4326(services, default)
    box = sub_element(top, "EX_GeographicBoundingBox")
    for tag, value in (("westBoundLongitude", west), ("eastBoundLongitude", east),
                       ("southBoundLatitude", south), ("northBoundLatitude", north)):
        sub_element(box, tag, f"{value:.6f}")
    sub_element(top, "BoundingBox", CRS="CRS:84", minx=f"{west:.6f}", miny=f"{south:.6f}", maxx=f"{east:.6f}",
                maxy=f"{north:.6f}")
    sub_element(top, "BoundingBox", CRS="EPSG:4326", minx=f"{south:.6f}", miny=f"{west:.6f}", maxx=f"{north:.6f}",
                maxy=f"{east:.6f}")
    sub_element(top, "Dimension", time_extent(seasons), name="time", units="ISO8601",
                default=default.start.isoformat(), nearestValue="1", multipleValues="0", current="0")
    for preset in wms_presets().values():
        layer = sub_element(top, "Layer", queryable="1")
        sub_element(layer, "Name", preset.name)
        sub_element(layer, "Title", preset.title + (" (default)" if preset.name == DEFAULT_PRESET else ""))
        sub_element(layer, "Abstract", preset.description)
        for style in preset_styles(preset):
            element = sub_element(layer, "Style")
            sub_element(element, "Name", style)
            sub_element(element, "Title", STYLE_TITLES[style])
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# WMS' parameters (names are case-insensitive), documented for the OpenAPI schema; the route reads the raw query.
QUERY_PARAMETERS = (
    ("SERVICE", "WMS"), ("REQUEST", "GetCapabilities, GetMap or GetFeatureInfo"), ("VERSION", "1.3.0 (or 1.1.1)"),
    ("LAYERS", "one preset, e.g. true-colour"), ("STYLES", "the statistic: p50 (default), p25, p75, medoid"),
    ("CRS", "EPSG code of BBOX and the map (SRS in 1.1.1)"),
    ("BBOX", "minx,miny,maxx,maxy in CRS (EPSG:4326: lat,lon in 1.3.0)"),
    ("WIDTH", "map width in pixels (1..2048)"), ("HEIGHT", "map height in pixels (1..2048)"),
    ("FORMAT", "image/png, image/jpeg or image/webp"), ("TRANSPARENT", "TRUE (default) or FALSE"),
    ("TIME", "the season: a day, an instant, an interval or a season name (default: the latest built season)"),
    ("QUERY_LAYERS", "GetFeatureInfo: the layer queried"),
    ("INFO_FORMAT", "GetFeatureInfo: " + ", ".join(INFO_FORMATS)),
    ("I", "GetFeatureInfo: pixel column (X in 1.1.1)"), ("J", "GetFeatureInfo: pixel row (Y in 1.1.1)"),
)


def wms_router() -> APIRouter:
    router = APIRouter(tags=["WMS"])

    @router.get(WMS_PATH, summary="OGC WMS 1.3.0 with the seasons as TIME (GetCapabilities, GetMap, GetFeatureInfo)",
                response_class=Response,
                responses={200: {"content": {"text/xml": {}, "image/png": {}, "text/plain": {}}},
                           400: {"content": {"text/xml": {}}, "description": "A service exception report."}},
                openapi_extra={"parameters": [{"name": name, "in": "query", "required": False, "description": text,
                                               "schema": {"type": "string", "maxLength": 256}}
                                              for name, text in QUERY_PARAMETERS]})
    def wms(request: Request, services: Services = Depends(services_of)) -> Response:
        """``SERVICE=WMS&REQUEST=GetCapabilities|GetMap|GetFeatureInfo``, parameters as in OGC WMS 1.3.0 (1.1.1's
        ``SRS`` and ``X``/``Y`` too); ``TIME`` selects the season (a day, an interval or a season name)."""
        version = "1.3.0"
        try:
            params = _params(request)
            version = params.get("version", "1.3.0") if params.get("version") in VERSIONS else "1.3.0"
            service = params.get("service", "WMS").strip().upper()
            if service != "WMS":
                raise WMSError(f"SERVICE={service}: this endpoint is SERVICE=WMS", locator="service")
            # a bare /wms (the URL a QGIS connection is given, opened in a browser) is asked for its capabilities
            operation = _required(params, "request").strip().lower() if params else "getcapabilities"
            if operation == "getcapabilities":
                return Response(capabilities(str(request.base_url).rstrip("/"), services), media_type="text/xml")
            if operation == "getmap":
                return get_map(params, services)
            if operation == "getfeatureinfo":
                return get_feature_info(params, services)
            raise WMSError(f"REQUEST={params['request']}: use GetCapabilities, GetMap or GetFeatureInfo",
                           "OperationNotSupported", "request")
        except InvalidInputError as error:
            return exception_report(error, version)

    return router
