import datetime as dt

import pytest

from compositor.errors import SeasonNotFoundError
from compositor.seasons import (calendar_season, calendar_seasons, is_calendar, parse_custom_seasons, resolve_season,
                                season_of)

D = dt.date


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("2019-winter", D(2018, 12, 2), D(2019, 3, 20)),
        ("2019-spring", D(2019, 3, 21), D(2019, 6, 24)),
        ("2019-summer", D(2019, 6, 25), D(2019, 9, 12)),
        ("2019-autumn", D(2019, 9, 13), D(2019, 12, 1)),
        ("2020-winter", D(2019, 12, 2), D(2020, 3, 20)),  # leap year: Feb 29 inside
        ("2022-winter", D(2021, 12, 2), D(2022, 3, 20)),
    ],
)
def test_calendar_boundaries(name, start, end):
    season = resolve_season(name)
    assert (season.start, season.end, season.name) == (start, end, name)
    assert season.contains(start) and season.contains(end)
    assert not season.contains(start - dt.timedelta(days=1))
    assert not season.contains(end + dt.timedelta(days=1))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2018, 12, 1), "2018-autumn"),
        (D(2018, 12, 2), "2019-winter"),
        (D(2018, 12, 31), "2019-winter"),
        (D(2019, 1, 1), "2019-winter"),
        (D(2019, 3, 20), "2019-winter"),
        (D(2019, 3, 21), "2019-spring"),
        (D(2019, 6, 24), "2019-spring"),
        (D(2019, 6, 25), "2019-summer"),
        (D(2019, 9, 12), "2019-summer"),
        (D(2019, 9, 13), "2019-autumn"),
        (D(2019, 12, 1), "2019-autumn"),
        (D(2020, 2, 29), "2020-winter"),
    ],
)
def test_every_day_has_exactly_one_season(day, expected):
    assert season_of(day).name == expected


def test_seasons_tile_the_year_without_gaps():
    day, seen = D(2018, 12, 2), []
    while day <= D(2019, 12, 1):
        seen.append(season_of(day).name)
        day += dt.timedelta(days=1)
    assert seen[0] == "2019-winter" and seen[-1] == "2019-autumn"
    assert sorted(set(seen)) == ["2019-autumn", "2019-spring", "2019-summer", "2019-winter"]
    assert sum(calendar_season(2019, s).days for s in ("winter", "spring", "summer", "autumn")) == 365


@pytest.mark.parametrize(("first", "last", "names"), [
    ("2021-winter", "2022-autumn", ["2021-winter", "2021-spring", "2021-summer", "2021-autumn", "2022-winter",
                                    "2022-spring", "2022-summer", "2022-autumn"]),
    ("2021-autumn", "2022-winter", ["2021-autumn", "2022-winter"]),  # winter starts in the year before
    ("2022-summer", "2022-summer", ["2022-summer"]),
    ("2022-summer", "2022-spring", []),
])
def test_calendar_seasons_between_two(first, last, names):
    found = list(calendar_seasons(resolve_season(first), resolve_season(last)))
    assert [s.name for s in found] == names
    assert all(a.end + dt.timedelta(days=1) == b.start for a, b in zip(found, found[1:]))  # no gap, no overlap
    assert all(is_calendar(s) for s in found)


def test_custom_seasons_are_not_calendar_seasons():
    assert not is_calendar(resolve_season("alps", parse_custom_seasons({"alps": "2023-06-01/2023-08-31"})))


def test_datetime_range_covers_whole_days():
    assert resolve_season("2019-summer").datetime_range == "2019-06-25T00:00:00Z/2019-09-12T23:59:59.999Z"


@pytest.mark.parametrize("bad", ["2019-sumer", "summer", "2019", "19-summer", "2019-summer-x", "", "../etc"])
def test_unknown_season_lists_valid_forms(bad):
    with pytest.raises(SeasonNotFoundError, match="YEAR-summer"):
        resolve_season(bad)


def test_custom_seasons():
    custom = parse_custom_seasons({"alps-2023": "2023-06-01/2023-08-31"})
    season = resolve_season("alps-2023", custom)
    assert (season.start, season.end) == (D(2023, 6, 1), D(2023, 8, 31))
    with pytest.raises(SeasonNotFoundError, match="alps-2023"):
        resolve_season("alps-2024", custom)


@pytest.mark.parametrize(
    "spec",
    [{"x": "2023-06-01"}, {"x": "2023-08-31/2023-06-01"}, {"Bad Name": "2023-06-01/2023-08-31"},
     {"2019-summer": "2019-06-01/2019-08-31"}],
)
def test_bad_custom_seasons(spec):
    with pytest.raises(SeasonNotFoundError):
        parse_custom_seasons(spec)


def test_settings_read_custom_seasons_from_env(monkeypatch):
    from compositor.settings import Settings

    monkeypatch.setenv("S2SEASONS_CUSTOM_SEASONS", '{"harvest-2021": "2021-07-15/2021-08-15"}')
    monkeypatch.setenv("S2SEASONS_RESOLUTION_M", "60")
    settings = Settings()
    assert settings.resolution_m == 60
    assert resolve_season("harvest-2021", settings.seasons).days == 32


def test_settings_reject_bad_block_size():
    from pydantic import ValidationError

    from compositor.settings import Settings

    with pytest.raises(ValidationError, match="multiple of 256"):
        Settings(block_size_px=1000)
