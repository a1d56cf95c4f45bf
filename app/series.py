"""Season series: one point's values, or one polygon's means, in many seasons at once.

``GET /seasons/series/point/{lon},{lat}`` and ``POST /seasons/series/statistics`` read each season of a
selection with the season reader, as ``/seasons/{season}/point`` and ``POST /seasons/{season}/feature`` do:
built seasons from their blocks, the others composited on the fly. The seasons are read at once, in the
server's series pool (`app.services.SERIES_THREADS` threads); their on-the-fly reads share the request's
budget (``onthefly_budget_s`` from the request's start, as a tile's). A season whose read fails (busy, over budget, no scene readable) is an
entry with its error, not a failed series; only a request every season refuses as the client's fault is a 4xx.

Which seasons: every built season by default, ``seasons=`` a list, or ``start=``/``end=`` every calendar
season from one to the other; at most `MAX_SERIES_SEASONS`, in time order. A point series takes ``/point``'s
``bands`` and ``statistic`` too (a chart of one band's P50 composites only that band where nothing is built).
Answers are JSON, or CSV with one row per season (``f=csv``, or ``Accept: text/csv``).

The router must be included before the season routes: ``/seasons/{season}/point/...`` would take
``/seasons/series/point/...`` (the settings refuse a custom season named ``series``:
`app.settings.RESERVED_SEASON_NAMES`).
"""

from __future__ import annotations

import contextvars
import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from geojson_pydantic import Feature, MultiPolygon, Polygon
from pyproj import Geod
from rio_tiler.constants import WGS84_CRS
from shapely.geometry import shape as to_shape
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.context import RequestRecord, current_record, merge_record, open_part_record
from app.dependencies import MAX_IMAGE_PX, BandsQuery, StatisticQuery, VariantQuery, services_of
from app.errors import ServerBusyError, describe_error
from app.layers import Layer, Variable, all_variables_layer, variable_name
from app.reader import SeasonReader, SeasonSource, check_point, held_bands, product_variables
from app.services import Services
from compositor.bands import BAND_NAMES, COUNT
from compositor.errors import InvalidInputError
from compositor.seasons import Season, calendar_seasons, is_calendar

MAX_SERIES_SEASONS = 16
SERIES_GRACE_S = 5.0  # past the on-the-fly budget, how long a series waits for its last seasons (built reads)
MAX_SERIES_BBOX_KM2 = 100.0  # the polygon's lon/lat bounding box (each season reads it at its full resolution)
PREFIX = "/seasons/series"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
_GEOD = Geod(ellps="WGS84")

SeasonsQuery = Annotated[str | None, Query(
    description=f"Comma-separated seasons (e.g. 2021-winter,2021-spring,2021-summer), at most {MAX_SERIES_SEASONS}. "
                "Default: every built season.", max_length=2048)]
StartQuery = Annotated[str | None, Query(description="First calendar season of a range, with end "
                                                     "(e.g. start=2021-winter&end=2022-autumn).", max_length=64)]
EndQuery = Annotated[str | None, Query(description="Last calendar season of a range, with start.", max_length=64)]
FormatQuery = Annotated[Literal["json", "csv"] | None, Query(
    description="json (default) or csv (one row per season); without it, Accept: text/csv gives csv.")]
ANSWERS = {200: {"content": {"application/json": {}, "text/csv": {}},
                 "description": "One entry (a CSV row) per season, in time order."}}
EXAMPLE_POLYGON = {"type": "Polygon", "coordinates": [[[11.35, 47.89], [11.37, 47.89], [11.37, 47.91],
                                                       [11.35, 47.91], [11.35, 47.89]]]}
PolygonBody = Annotated[
    Polygon | MultiPolygon | Feature[Polygon | MultiPolygon, dict | None],
    Body(description="A GeoJSON Polygon or MultiPolygon, or a Feature of one, in longitude and latitude (EPSG:4326); "
                     f"its bounding box at most {MAX_SERIES_BBOX_KM2:g} km².", examples=[EXAMPLE_POLYGON]),
]


@dataclass
class SeriesEntry:
    """One season of a series: where its pixels came from and its values, or why it has none."""

    season: Season
    source: str | None = None  # built, on-the-fly, mixed or not-built (`app.context`)
    values: dict[str, Any] | None = None
    not_built: str | None = None  # why part of it was left empty (no scenes...)
    error: tuple[int, str] | None = None  # status code and public message of a failed read
    exception: Exception | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"season": self.season.name, "start_date": self.season.start.isoformat(),
                                 "end_date": self.season.end.isoformat(), "source": self.source,
                                 "values": self.values}
        if self.not_built:
            entry["not_built"] = self.not_built
        if self.error:
            entry["error"] = {"status": self.error[0], "detail": self.error[1]}
        return entry


ReadFn = Callable[[SeasonReader], dict[str, Any]]


# --- which seasons ---------------------------------------------------------------------------------------------


def select_seasons(services: Services, seasons: str | None, start: str | None, end: str | None) -> list[Season]:
    """The seasons of a series, in time order: ``seasons`` (comma-separated), every calendar season from ``start``
    to ``end``, or else every built season. `InvalidInputError` (400) says what to change; an unknown name is a
    `SeasonNotFoundError` (404) naming the valid forms."""
    registry = services.registry
    if seasons is not None and (start or end):
        raise InvalidInputError("give either seasons=... or start=...&end=..., not both")
    if seasons is not None:
        names = [n.strip() for n in seasons.split(",") if n.strip()]
        if not names:
            raise InvalidInputError("seasons: give season names separated by commas, "
                                    "e.g. seasons=2021-winter,2021-spring")
        chosen = sorted({registry.resolve(name) for name in names})
        if len(chosen) > MAX_SERIES_SEASONS:
            raise InvalidInputError(f"{len(chosen)} seasons listed: a series has at most {MAX_SERIES_SEASONS}; "
                                    "list fewer")
        return chosen
    if start or end:
        if not (start and end):
            raise InvalidInputError("give both start and end, e.g. start=2021-winter&end=2022-autumn")
        first, last = registry.resolve(start), registry.resolve(end)
        for key, season in (("start", first), ("end", last)):
            if not is_calendar(season):
                raise InvalidInputError(f"{key}={season.name}: start and end are calendar seasons "
                                        "(YEAR-winter|spring|summer|autumn); list custom seasons with seasons=")
        if last.start < first.start:
            raise InvalidInputError(f"end={last.name} is before start={first.name}")
        chosen = list(calendar_seasons(first, last))
        if len(chosen) > MAX_SERIES_SEASONS:
            raise InvalidInputError(f"{len(chosen)} seasons from {first.name} to {last.name}: a series has at most "
                                    f"{MAX_SERIES_SEASONS}; choose a later start or an earlier end "
                                    f"(e.g. end={chosen[MAX_SERIES_SEASONS - 1].name})")
        return chosen
    built = registry.built_season_names()
    if len(built) > MAX_SERIES_SEASONS:
        raise InvalidInputError(f"{len(built)} seasons are built: a series has at most {MAX_SERIES_SEASONS}; choose "
                                "them with seasons=... or start=...&end=...")
    return sorted(registry.resolve(name) for name in built)


def series_selection(request: Request, seasons: SeasonsQuery = None, start: StartQuery = None,
                     end: EndQuery = None) -> list[Season]:
    return select_seasons(services_of(request), seasons, start, end)


def wants_csv(request: Request, f: str | None) -> bool:
    """``f`` when given; else whether the Accept header names text/csv with a higher q than application/json."""
    if f:
        return f == "csv"
    quality = {"text/csv": 0.0, "application/json": 0.0}
    for part in request.headers.get("accept", "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if media.lower() in quality:
            q = 1.0
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = float(value)
                    except ValueError:
                        q = 0.0
            quality[media.lower()] = q if math.isfinite(q) else 0.0
    return quality["text/csv"] > quality["application/json"]


# --- reading ---------------------------------------------------------------------------------------------------


def _read_season(services: Services, season: Season, read: ReadFn, request: RequestRecord,
                 variant: str = "") -> tuple[SeriesEntry, RequestRecord]:
    """One season's entry, read in a pool thread (in a copy of the request's context) with a record of its own
    (of its ``variant`` when one is named: a season without it is an entry with the 404 naming the command)."""
    record = open_part_record(request)
    try:
        state = services.registry.get(season.name, variant)
        with SeasonReader(SeasonSource(state, services)) as reader:
            values = read(reader)
        return SeriesEntry(season, record.source, values, record.not_built), record
    except Exception as exc:  # reported in the entry: one season's failure is not the series'
        code, detail = describe_error(exc, f"series {season.name}")
        return SeriesEntry(season, error=(code, detail), exception=exc), record


def read_series(services: Services, seasons: Sequence[Season], read: ReadFn, variant: str = "") -> list[SeriesEntry]:
    """Each season's entry from ``read`` (a season reader in, the entry's values out), in the server's series pool.

    The seasons' on-the-fly reads end at the request's budget (a 503 entry); a season still running
    `SERIES_GRACE_S` after it is reported as over the budget. What the seasons read goes into the request's
    record (``X-S2Seasons-Source`` of the answer). When every season failed for the client's fault (a 4xx),
    that error is raised."""
    if not seasons:
        return []
    request = current_record()
    budget_s = services.settings.onthefly_budget_s
    deadline = request.started + budget_s + SERIES_GRACE_S
    # the server's one series pool (`Services.series`): the threads are bounded whatever the requests; a season not
    # started by the deadline is cancelled, so a late series leaves no work queued behind it
    futures = [services.series.submit(contextvars.copy_context().run, _read_season, services, season, read, request,
                                      variant) for season in seasons]
    done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
    for future in pending:
        future.cancel()
    entries = []
    for season, future in zip(seasons, futures):
        if future in done:
            entry, record = future.result()
            merge_record(request, record)
        else:
            late = ServerBusyError(f"the season took longer than the budget of {budget_s:g} s; try again later",
                                   retry_after_s=budget_s / 2)
            entry = SeriesEntry(season, error=describe_error(late, f"series {season.name}"), exception=late)
            request.cacheable = False
        entries.append(entry)
    errors = [e.error[0] for e in entries if e.error]
    if len(errors) == len(entries) and all(400 <= code < 499 for code in errors):
        raise entries[0].exception  # type: ignore[misc]
    return entries


def point_values(lon: float, lat: float, chosen: Layer | None = None) -> ReadFn:
    """A season's pixel under the point as ``/seasons/{season}/point`` gives it: every band's P25/P50/P75 and
    count, and the season's index percentiles where it was built with them (not the medoid or the QA layer); or
    the ``chosen`` bands and statistic only (``/point``'s ``bands``, ``statistic``: `all_variables_layer`)."""

    def read(reader: SeasonReader) -> dict[str, Any]:
        if chosen is None and reader.state.variant:  # a variant: what its /point gives (its bands and the fill flag)
            layer = all_variables_layer()
        else:
            layer = chosen or Layer(all_variables_layer().variables + product_variables(reader.state, ("indices",)),
                                    "p50")
        point = reader.point(lon, lat, point_layer=layer)
        return dict(zip(point.band_names, point.array.tolist()))

    return read


def polygon_means(geometry: dict) -> ReadFn:
    """Over a season's pixels in the polygon (centres inside, as ``POST /seasons/{season}/feature`` masks them, at
    the season's resolution): ``pixels`` in the polygon, and per band the mean of its P50 over the pixels that
    have one (``<band>_p50_mean``, DN; None when none has), how many have one (``<band>_valid_pixels``) and the
    mean count of valid observations (``<band>_count_mean``); the P50 of each index the season was built with
    likewise (``ndvi_p50_mean``: int16 units of 0.0001)."""

    def read(reader: SeasonReader) -> dict[str, Any]:
        held = held_bands(reader.state) if reader.state.variant else set(BAND_NAMES)  # a variant: the bands it holds
        bands = [b for b in BAND_NAMES if b in held]
        p50: tuple[Variable, ...] = tuple((band, "p50") for band in bands)
        p50 += tuple(v for v in product_variables(reader.state, ("indices",)) if v[1] == "p50")
        counts = tuple((band, COUNT) for band in bands)
        layer = Layer(p50 + counts, "p50")
        image = reader.read_feature(geometry, None, WGS84_CRS, layer, max_size=MAX_IMAGE_PX)
        rasters = dict(zip(layer.variables, image.array))
        values: dict[str, Any] = {"pixels": int((~image.cutline_mask).sum())}
        for variable in p50:
            data = rasters[variable]
            n = int(data.count())
            values[f"{variable_name(variable)}_mean"] = float(data.mean()) if n else None
            values[f"{variable[0]}_valid_pixels"] = n
            if variable[0] in BAND_NAMES:
                count = rasters[(variable[0], COUNT)]
                values[f"{variable[0]}_count_mean"] = float(count.mean()) if count.count() else None
        return values

    return read


# --- answers ---------------------------------------------------------------------------------------------------


def series_csv(entries: Sequence[SeriesEntry]) -> str:
    """One row per season: season, start_date, end_date, source, the values (the union of the seasons' names, in
    their order; empty where a season has none), error (the message of a failed read)."""
    names: dict[str, None] = {}
    for entry in entries:
        names.update(dict.fromkeys(entry.values or {}))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["season", "start_date", "end_date", "source", *names, "error"])
    for entry in entries:
        values = entry.values or {}
        writer.writerow([entry.season.name, entry.season.start.isoformat(), entry.season.end.isoformat(),
                         entry.source or "", *("" if values.get(n) is None else values[n] for n in names),
                         entry.error[1] if entry.error else ""])
    return out.getvalue()


def series_answer(request: Request, f: str | None, entries: Sequence[SeriesEntry], about: dict[str, Any],
                  filename: str) -> Response:
    if wants_csv(request, f):
        return Response(series_csv(entries), media_type=CSV_MEDIA_TYPE,
                        headers={"Content-Disposition": f'inline; filename="{filename}.csv"'})
    return JSONResponse({**about, "series": [e.as_json() for e in entries]})


def polygon_geometry(body: Polygon | MultiPolygon | Feature) -> tuple[dict, float]:
    """The body's geometry as a GeoJSON dict and the area (km², on the WGS84 ellipsoid) of its lon/lat bounding
    box; `InvalidInputError` for a feature without a polygon, coordinates outside -180..180/-90..90, no area,
    or a box over `MAX_SERIES_BBOX_KM2`."""
    geometry = body.geometry if isinstance(body, Feature) else body
    if geometry is None:
        raise InvalidInputError("the feature has no geometry: send a Polygon or MultiPolygon")
    document = geometry.model_dump(exclude_none=True)
    try:
        west, south, east, north = to_shape(document).bounds
    except Exception:
        raise InvalidInputError("the polygon is not a valid GeoJSON geometry") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise InvalidInputError("the polygon's coordinates must be finite numbers")
    if not (-180 <= west and east <= 180 and -90 <= south and north <= 90):
        raise InvalidInputError("the polygon is outside -180..180, -90..90: give longitude, latitude (EPSG:4326)")
    if west >= east or south >= north:
        raise InvalidInputError("the polygon has no area")
    area_m2, _ = _GEOD.polygon_area_perimeter([west, east, east, west], [south, south, north, north])
    area_km2 = abs(area_m2) / 1e6
    if area_km2 > MAX_SERIES_BBOX_KM2:
        raise InvalidInputError(f"the polygon's bounding box covers {area_km2:.1f} km²: a series reads at most "
                                f"{MAX_SERIES_BBOX_KM2:g} km² (send a smaller polygon, or split it)")
    return document, area_km2


def series_router() -> APIRouter:
    """The series routes; include it before the season routes (module docstring)."""
    router = APIRouter(prefix=PREFIX, tags=["Season series"])

    @router.get("/point/{lon},{lat}", response_class=JSONResponse, responses=ANSWERS,
                summary="A point in many seasons: each season's percentiles and counts, built or on the fly")
    def series_point(request: Request, lon: Annotated[float, Path(description="Longitude (EPSG:4326).")],
                     lat: Annotated[float, Path(description="Latitude (EPSG:4326).")],
                     seasons: Annotated[list[Season], Depends(series_selection)], bands: BandsQuery = None,
                     statistic: StatisticQuery = None, f: FormatQuery = None, variant: VariantQuery = None,
                     services: Services = Depends(services_of)) -> Response:
        check_point(lon, lat)  # one 400 for the series, before any season is read
        chosen = all_variables_layer(bands, statistic) if bands or statistic else None
        entries = read_series(services, seasons, point_values(lon, lat, chosen), variant or "")
        return series_answer(request, f, entries, {"coordinates": [lon, lat]}, f"series-{lon:g}_{lat:g}")

    @router.post("/statistics", response_class=JSONResponse, responses=ANSWERS,
                 summary="A polygon in many seasons: each season's mean P50 per band, valid pixels, mean count")
    def series_statistics(request: Request, geojson: PolygonBody,
                          seasons: Annotated[list[Season], Depends(series_selection)], f: FormatQuery = None,
                          variant: VariantQuery = None, services: Services = Depends(services_of)) -> Response:
        geometry, area_km2 = polygon_geometry(geojson)
        entries = read_series(services, seasons, polygon_means(geometry), variant or "")
        return series_answer(request, f, entries, {"bbox_area_km2": round(area_km2, 3)}, "series-statistics")

    @router.get("/statistics", include_in_schema=False)
    def series_statistics_by_get() -> Response:
        """A GET here would otherwise reach the season routes and answer "unknown season 'series'"."""
        return JSONResponse({"detail": f"POST a GeoJSON Polygon (or a Feature of one) to {PREFIX}/statistics; "
                                       f"GET {PREFIX}/point/{{lon}},{{lat}} gives a point's series"},
                            status_code=405, headers={"Allow": "POST"})

    return router
