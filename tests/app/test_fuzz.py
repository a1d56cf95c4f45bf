"""API fuzzing: schemathesis over every operation of the app's OpenAPI schema, in process (ASGI).

Each operation gets the schema's own examples plus a bounded number of generated requests (valid
and invalid); every answer must be below 500, and every 4xx must say what is wrong (a JSON body
with a non-empty ``detail``). ``S2SEASONS_FUZZ_EXAMPLES`` raises the number of generated requests
per operation for a longer hunt (default 10: about 30 s for the whole schema), and
``S2SEASONS_FUZZ_COVERAGE=1`` adds schemathesis' coverage phase (boundary values of every parameter).
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from app.main import create_app
from app.settings import ServerSettings
from tests.app.helpers import BUILT_LONLAT, SEASON, UNBUILT_LONLAT, tile_of

MAX_EXAMPLES = int(os.environ.get("S2SEASONS_FUZZ_EXAMPLES", "10"))
COVERAGE_PHASE = os.environ.get("S2SEASONS_FUZZ_COVERAGE") == "1"
CONFIG = schemathesis.Config.from_dict({
    "phases": {"coverage": {"enabled": COVERAGE_PHASE}, "stateful": {"enabled": False}},
    "generation": {"max-examples": MAX_EXAMPLES},
})
# The schema does not depend on the data: read it from an app over an empty folder; requests go to the
# app of the `fuzz_app` fixture (the half-built test season).
_SCHEMA_APP = create_app(ServerSettings(data_dir=Path(tempfile.gettempdir()) / "s2seasons-fuzz-schema-only"))
schema = schemathesis.openapi.from_asgi("/openapi.json", _SCHEMA_APP, config=CONFIG)


# Generated values rarely reach the data: season names are almost never known ones, and one bad query
# parameter or geometry among many is a 4xx before anything is read. So every generated request may also
# be sent to a known season, at the test archive's tiles, points and boxes, without its query parameters,
# or with a small valid GeoJSON body: the fuzzer then also exercises built and on-the-fly reads.
KNOWN_SEASONS = (SEASON, SEASON, "2022-summer", "2021-autumn")
PLACES = [{"lon": lon, "lat": lat} for lon, lat in (BUILT_LONLAT, UNBUILT_LONLAT)]
PLACES += [{"z": z, "x": t.x, "y": t.y}
           for z in (10, 12, 14) for t in (tile_of(BUILT_LONLAT, z), tile_of(UNBUILT_LONLAT, z))]
PLACES += [{"minx": lon - d, "miny": lat - d, "maxx": lon + d, "maxy": lat + d}
           for lon, lat in (BUILT_LONLAT, UNBUILT_LONLAT) for d in (0.01, 0.05)]
PLACES += [{"minx": -180, "miny": -85, "maxx": 180, "maxy": 85}]


def _square(lonlat: tuple[float, float], d: float) -> dict:
    lon, lat = lonlat
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


BODIES = [_square(BUILT_LONLAT, 0.01), _square(UNBUILT_LONLAT, 0.01), _square(BUILT_LONLAT, 0.02)["geometry"],
          {"type": "FeatureCollection", "features": [_square(BUILT_LONLAT, 0.02), _square(UNBUILT_LONLAT, 0.005)]}]
# Season series (/seasons/series/...): their selections of the test season and seasons without scenes, and CSV.
SERIES_QUERIES = [{"seasons": f"{SEASON},2021-autumn"}, {"start": "2021-autumn", "end": "2022-spring", "f": "csv"}]


@schema.hook
def flatmap_path_parameters(ctx, path_parameters):
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    keys = set(path_parameters)
    season = {"season": SEASON} if "season" in keys else {}
    real = [dict(path_parameters, season=s) for s in KNOWN_SEASONS] if season else []
    real += [dict(path_parameters, **season, **place) for place in PLACES if set(place) <= keys]
    return st.sampled_from([path_parameters, *real]) if real else st.just(path_parameters)


_WMS_MAP = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "true-colour", "STYLES": "",
            "CRS": "EPSG:3857", "BBOX": "1262000,6088000,1268000,6094000", "WIDTH": "64", "HEIGHT": "64",
            "FORMAT": "image/png"}
WMS_QUERIES = [{"SERVICE": "WMS", "REQUEST": "GetCapabilities"}, _WMS_MAP, {**_WMS_MAP, "TIME": "2022-04-01"},
               {**_WMS_MAP, "BBOX": "1272000,6088000,1278000,6094000", "TIME": "2022-01-01/2022-02-01"},
               {**_WMS_MAP, "REQUEST": "GetFeatureInfo", "QUERY_LAYERS": "ndvi", "I": "3", "J": "60",
                "INFO_FORMAT": "application/json"}]


@schema.hook
def flatmap_query(ctx, query):
    if ctx.operation is not None and ctx.operation.path == "/wms":  # real WMS requests, and each with one value fuzzed
        real = WMS_QUERIES + [{**q, k: v} for q in WMS_QUERIES[1:] for k, v in (query or {}).items()]
        return st.sampled_from([query or {}, *real])
    series = ctx.operation is not None and ctx.operation.path.startswith("/seasons/series/")
    choices = ([query, query, {}] if query else [query]) + (SERIES_QUERIES if series else [])
    return st.sampled_from(choices) if len(choices) > 1 else st.just(query)


@schema.hook
def flatmap_body(ctx, body):
    if ctx.operation is not None and ctx.operation.method.upper() == "POST":
        return st.sampled_from([body, *BODIES])
    return st.just(body)


@pytest.fixture
def fuzz_app(settings):
    """A new app per operation: schemathesis ends an app's lifespan (closing its pools) after each test."""
    return create_app(settings)


@schemathesis.check
def client_errors_have_a_message(ctx, response, case) -> None:
    """A 4xx says what to change: a JSON body with a non-empty ``detail`` (none for HEAD, which has no body)."""
    if not 400 <= response.status_code < 500 or case.method.upper() == "HEAD":
        return None
    if case.path == "/wms":  # OGC's way: a service exception report naming the parameter
        error = ET.fromstring(response.content).find("{http://www.opengis.net/ogc}ServiceException")
        if error is None or not (error.text or "").strip():
            raise AssertionError(f"{response.status_code} without a service exception: {response.text[:200]!r}")
        return None
    try:
        detail = response.json().get("detail")
    except Exception:
        raise AssertionError(f"{response.status_code} without a JSON body: {response.text[:200]!r}") from None
    if not detail:
        raise AssertionError(f"{response.status_code} without a message: {response.text[:200]!r}")
    return None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_4xx_has_a_message(case, fuzz_app):
    response = case.call(app=fuzz_app)
    case.validate_response(response, checks=[not_a_server_error, client_errors_have_a_message])
