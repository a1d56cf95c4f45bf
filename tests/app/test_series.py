"""Season series (``/seasons/series/...``): each season's values equal its own endpoints' answers.

The independent references are the per-season endpoints: ``/seasons/{season}/point`` for the point series and
``POST /seasons/{season}/feature.npy`` (the polygon's pixels, averaged with numpy) for the polygon series.
"""

from __future__ import annotations

import csv
import io
import time

import pytest
from fastapi.testclient import TestClient

from compositor.errors import CatalogUnavailableError
from tests.app.helpers import BOUNDARY_LONLAT, BUILT_LONLAT, SEASON, UNBUILT_LONLAT, load_npy

RANGE = "start=2021-autumn&end=2022-spring"  # the test season between two without scenes
RANGE_SEASONS = ["2021-autumn", SEASON, "2022-spring"]


def series_url(lonlat: tuple[float, float], query: str = "") -> str:
    return f"/seasons/series/point/{lonlat[0]},{lonlat[1]}" + (f"?{query}" if query else "")


def square(lonlat: tuple[float, float], d: float) -> dict:
    lon, lat = lonlat
    return {"type": "Polygon", "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d],
                                                [lon - d, lat + d], [lon - d, lat - d]]]}


@pytest.mark.parametrize(("lonlat", "source"), [(BUILT_LONLAT, "built"), (UNBUILT_LONLAT, "on-the-fly")],
                         ids=["built", "on-the-fly"])
def test_point_series_equals_each_seasons_point(client, lonlat, source):
    response = client.get(series_url(lonlat, RANGE))
    assert response.status_code == 200, response.text
    assert response.headers["x-s2seasons-source"] == source
    body = response.json()
    assert body["coordinates"] == list(lonlat)
    assert [e["season"] for e in body["series"]] == RANGE_SEASONS
    for entry in body["series"]:
        point = client.get(f"/seasons/{entry['season']}/point/{lonlat[0]},{lonlat[1]}")
        assert point.status_code == 200, point.text
        expected = dict(zip(point.json()["band_names"], point.json()["values"]))
        assert len(entry["values"]) == 24  # 6 bands x P25/P50/P75/count: the test season has no indices
        assert entry["values"] == {name: expected[name] for name in entry["values"]}
        assert entry["source"] == point.headers["x-s2seasons-source"]
        assert "error" not in entry
    winter = body["series"][1]
    assert (winter["source"], winter["start_date"], winter["end_date"]) == (source, "2021-12-02", "2022-03-20")
    assert winter["values"]["red_count"] > 0 and winter["values"]["red_p50"] > 0
    empty = body["series"][0]
    assert empty["source"] == "not-built" and empty["not_built"] == "no scenes"
    assert set(empty["values"].values()) == {None}


def test_bands_and_statistic_as_in_point(client):
    response = client.get(series_url(BUILT_LONLAT, f"seasons={SEASON}&bands=red,nir&statistic=p50"))
    assert response.status_code == 200, response.text
    point = client.get(f"/seasons/{SEASON}/point/{BUILT_LONLAT[0]},{BUILT_LONLAT[1]}?bands=red,nir&statistic=p50")
    assert response.json()["series"][0]["values"] == dict(zip(point.json()["band_names"], point.json()["values"]))
    assert list(response.json()["series"][0]["values"]) == ["red_p50", "nir_p50"]
    bad = client.get(series_url(BUILT_LONLAT, "bands=reed"))
    assert bad.status_code == 400 and "unknown band 'reed'" in bad.json()["detail"]


def test_csv_is_the_json(client):
    body = client.get(series_url(BUILT_LONLAT, RANGE)).json()
    for response in (client.get(series_url(BUILT_LONLAT, RANGE + "&f=csv")),
                     client.get(series_url(BUILT_LONLAT, RANGE), headers={"Accept": "text/csv"})):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        names = list(body["series"][1]["values"])
        assert list(rows[0]) == ["season", "start_date", "end_date", "source", *names, "error"]
        assert len(rows) == len(body["series"])
        for row, entry in zip(rows, body["series"]):
            assert [row[k] for k in ("season", "start_date", "end_date", "source")] == [
                entry[k] for k in ("season", "start_date", "end_date", "source")]
            assert {n: int(row[n]) if row[n] else None for n in names} == entry["values"]
            assert row["error"] == ""
    accept_json = client.get(series_url(BUILT_LONLAT, RANGE), headers={"Accept": "text/csv;q=0.5, application/json"})
    assert accept_json.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("query", "seasons"), [
    ("", [SEASON]),  # every built season
    ("seasons=2022-spring,2022-winter,2022-spring", [SEASON, "2022-spring"]),  # in time order, once each
    ("start=2021-winter&end=2022-autumn", ["2021-winter", "2021-spring", "2021-summer", "2021-autumn", SEASON,
                                           "2022-spring", "2022-summer", "2022-autumn"]),
])
def test_season_selection(client, query, seasons):
    response = client.get(series_url(BUILT_LONLAT, query))
    assert response.status_code == 200, response.text
    assert [e["season"] for e in response.json()["series"]] == seasons


@pytest.mark.parametrize(("query", "status", "says"), [
    ("start=2018-winter&end=2022-autumn", 400, "20 seasons from 2018-winter to 2022-autumn: a series has at most 16; "
                                               "choose a later start or an earlier end (e.g. end=2021-autumn)"),
    ("seasons=" + ",".join(f"{y}-{s}" for y in range(2017, 2022) for s in ("winter", "summer", "autumn", "spring")),
     400, "20 seasons listed: a series has at most 16"),
    ("seasons=2022-winter,2022-wintr", 404, "unknown season '2022-wintr': use YEAR-winter, YEAR-spring"),
    ("start=2022-winter&end=2022-summr", 404, "unknown season '2022-summr': use YEAR-winter"),
    ("seasons=,", 400, "give season names separated by commas"),
    ("seasons=2022-winter&start=2022-winter&end=2022-summer", 400, "either seasons=... or start=...&end=..."),
    ("start=2022-winter", 400, "give both start and end"),
    ("start=2022-summer&end=2022-winter", 400, "end=2022-winter is before start=2022-summer"),
])
def test_bad_selection_says_what_to_change(client, query, status, says):
    response = client.get(series_url(BUILT_LONLAT, query))
    assert response.status_code == status
    assert says in response.json()["detail"]


@pytest.mark.parametrize(("where", "says"), [("200,47.9", "outside -180..180, -90..90"),
                                             ("11.36,-91", "outside -180..180, -90..90"),
                                             ("11.36,nan", "finite numbers")])
def test_bad_point(client, where, says):
    response = client.get(f"/seasons/series/point/{where}")
    assert response.status_code == 400 and says in response.json()["detail"]


def test_series_is_not_a_season(client):
    """The series routes come before the season routes, and no season can be called series."""
    from app.settings import ServerSettings

    assert "series" in client.get(series_url(BUILT_LONLAT)).json()
    assert client.post("/seasons/series/statistics", json=square(BUILT_LONLAT, 0.01)).json()["series"]
    with pytest.raises(ValueError, match="'series' is taken"):
        ServerSettings(custom_seasons={"series": "2023-01-01/2023-02-01"})
    get = client.get("/seasons/series/statistics")
    assert get.status_code == 405 and get.headers["allow"] == "POST" and "POST a GeoJSON" in get.json()["detail"]


def test_a_web_map_on_another_origin_may_post(client):
    """CORS: the preflight of a JSON POST from another origin is allowed, and so is the POST."""
    preflight = client.options("/seasons/series/statistics", headers={
        "Origin": "https://maps.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
    posted = client.post(f"/seasons/series/statistics?seasons={SEASON}", json=square(BUILT_LONLAT, 0.005),
                         headers={"Origin": "https://maps.example.org"})
    assert posted.status_code == 200 and posted.headers["access-control-allow-origin"] == "*"


def test_polygon_means_equal_numpy_over_the_feature_pixels(client):
    polygon = square(BOUNDARY_LONLAT, 0.015)  # over the built and the unbuilt block
    feature = {"type": "Feature", "properties": {}, "geometry": polygon}
    response = client.post(f"/seasons/series/statistics?{RANGE}", json=feature)
    assert response.status_code == 200, response.text
    assert response.headers["x-s2seasons-source"] == "mixed"
    body = response.json()
    assert 0 < body["bbox_area_km2"] < 15
    entries = {e["season"]: e for e in body["series"]}
    assert list(entries) == RANGE_SEASONS
    winter = entries[SEASON]
    assert winter["source"] == "mixed"
    values = winter["values"]
    for band in ("red", "swir16"):
        p50 = load_npy(client.post(f"/seasons/{SEASON}/feature.npy?bands={band}&statistic=p50&max_size=2048",
                                   json=feature).content)
        count = load_npy(client.post(f"/seasons/{SEASON}/feature.npy?bands={band}&statistic=count&max_size=2048",
                                     json=feature).content)
        valid = p50[1] > 0
        assert values[f"{band}_valid_pixels"] == valid.sum() > 100
        assert values[f"{band}_p50_mean"] == pytest.approx(p50[0][valid].astype(float).mean(), rel=1e-12)
        assert values[f"{band}_count_mean"] == pytest.approx(count[0][count[1] > 0].astype(float).mean(), rel=1e-12)
        assert values["pixels"] >= valid.sum()
    nothing = entries["2021-autumn"]["values"]
    assert nothing["red_valid_pixels"] == 0 and nothing["red_p50_mean"] is None and nothing["pixels"] > 100
    rows = list(csv.DictReader(io.StringIO(client.post(f"/seasons/series/statistics?{RANGE}&f=csv",
                                                       json=polygon).text)))
    assert [r["season"] for r in rows] == RANGE_SEASONS
    assert float(rows[1]["red_p50_mean"]) == pytest.approx(values["red_p50_mean"])


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"type": "FeatureCollection", "features": []}, 422, None),
    ({"type": "Point", "coordinates": [11.36, 47.9]}, 422, None),
    ({"type": "Feature", "properties": {}, "geometry": None}, 400, "no geometry"),
    (square(BUILT_LONLAT, 0.1), 400, "bounding box covers 332.5 km²: a series reads at most 100 km²"),
    (square((179.99, 47.9), 0.05), 400, "outside -180..180"),
    ({"type": "Polygon", "coordinates": [[[11.36, 47.9]] * 4]}, 400, "no area"),
    ("not json", 422, None),
])
def test_bad_bodies(client, body, status, says):
    kwargs = {"content": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, str) else {
        "json": body}
    response = client.post("/seasons/series/statistics", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    if says:
        assert says in response.json()["detail"]


def test_a_body_over_the_limit_is_a_413(client):
    from app.dependencies import MAX_BODY_BYTES

    polygon = square(BUILT_LONLAT, 0.01)
    polygon["coordinates"][0][1:1] = [[11.36, 47.9]] * (MAX_BODY_BYTES // 10)
    assert client.post("/seasons/series/statistics", json=polygon).status_code == 413


def _failing_search(season_name, bbox_4326):
    raise CatalogUnavailableError("the test catalog is down")


def test_a_failed_season_is_an_entry_with_its_error(settings):
    """A season that cannot be read (here: on the fly, the catalog down) is reported; the others answer."""
    from app.main import create_app
    from app.services import make_services

    app = create_app(settings, services=make_services(settings, search=_failing_search))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(series_url(BUILT_LONLAT, "seasons=2022-winter,2022-spring"))
        assert response.status_code == 200, response.text
        built, failed = response.json()["series"]
        assert built["source"] == "built" and built["values"]["red_p50"] > 0
        assert failed["values"] is None and failed["source"] is None
        assert failed["error"] == {"status": 503, "detail": "the scene catalog cannot be reached now; try again later"}
        rows = list(csv.DictReader(io.StringIO(client.get(series_url(BUILT_LONLAT, "seasons=2022-winter,2022-spring"
                                                                     "&f=csv")).text)))
        assert rows[1]["red_p50"] == "" and rows[1]["error"].startswith("the scene catalog cannot be reached")


def _slow_search(season_name, bbox_4326):
    time.sleep(1.5)
    return []


def test_a_season_over_the_budget_is_reported(settings, monkeypatch):
    from app import series
    from app.main import create_app
    from app.services import make_services

    monkeypatch.setattr(series, "SERIES_GRACE_S", 0.0)
    fast = settings.model_copy(update={"onthefly_budget_s": 0.3})
    app = create_app(fast, services=make_services(fast, search=_slow_search))
    with TestClient(app, raise_server_exceptions=False) as client:
        started = time.monotonic()
        response = client.get(series_url(UNBUILT_LONLAT, "seasons=2022-spring"))
        assert time.monotonic() - started < 1.4
    assert response.status_code == 200, response.text
    (entry,) = response.json()["series"]
    assert entry["error"]["status"] == 503 and "budget of 0.3 s" in entry["error"]["detail"]
