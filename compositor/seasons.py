"""Seasons: the GLAD ARD calendar of the original product plus custom named date ranges.

A calendar season is named ``YEAR-winter|spring|summer|autumn``. Winter straddles two years:
``2019-winter`` runs from 2018-12-02 to 2019-03-20. Dates are inclusive and in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from compositor.errors import SeasonNotFoundError

SEASON_NAMES = ("winter", "spring", "summer", "autumn")

# (month, day) of the first and last day of each GLAD ARD season; winter starts in the year before.
_CALENDAR: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "winter": ((12, 2), (3, 20)),
    "spring": ((3, 21), (6, 24)),
    "summer": ((6, 25), (9, 12)),
    "autumn": ((9, 13), (12, 1)),
}
_CALENDAR_RE = re.compile(r"^(?P<year>\d{4})-(?P<season>winter|spring|summer|autumn)$")
_CUSTOM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, order=True)
class Season:
    """A named, inclusive range of dates (UTC)."""

    start: dt.date
    end: dt.date
    name: str

    @property
    def datetime_range(self) -> str:
        """The season as a STAC ``datetime`` search interval covering both days entirely."""
        return f"{self.start.isoformat()}T00:00:00Z/{self.end.isoformat()}T23:59:59.999Z"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, when: dt.date | dt.datetime) -> bool:
        day = when.date() if isinstance(when, dt.datetime) else when
        return self.start <= day <= self.end


def calendar_season(year: int, season: str) -> Season:
    """The GLAD ARD season ``season`` of ``year`` (winter begins on Dec 2 of ``year - 1``)."""
    if season not in _CALENDAR:
        raise SeasonNotFoundError(f"unknown season {season!r}: use one of {', '.join(SEASON_NAMES)}")
    (m0, d0), (m1, d1) = _CALENDAR[season]
    start_year = year - 1 if season == "winter" else year
    return Season(start=dt.date(start_year, m0, d0), end=dt.date(year, m1, d1), name=f"{year}-{season}")


def calendar_name(season: Season) -> tuple[int, str] | None:
    """``(year, "summer")`` of a calendar season, None for a custom one (even one with a calendar season's dates)."""
    match = _CALENDAR_RE.match(season.name)
    if match is None or calendar_season(int(match["year"]), match["season"]) != season:
        return None
    return int(match["year"]), match["season"]


def season_of(day: dt.date) -> Season:
    """The calendar season that contains ``day``."""
    if (day.month, day.day) >= (12, 2):
        return calendar_season(day.year + 1, "winter")
    for name in SEASON_NAMES:
        season = calendar_season(day.year, name)
        if season.contains(day):
            return season
    raise AssertionError(f"the calendar does not cover {day}")  # pragma: no cover - calendar is total


def is_calendar(season: Season) -> bool:
    """Whether ``season`` is a GLAD ARD calendar season (custom names never look like one)."""
    return _CALENDAR_RE.match(season.name) is not None


def calendar_seasons(first: Season, last: Season) -> Iterator[Season]:
    """The calendar seasons from the one holding ``first.start`` to the one holding ``last.start``, both
    included, in time order (none when ``last`` starts before ``first``)."""
    season = season_of(first.start)
    while season.start <= last.start:
        yield season
        season = season_of(season.end + dt.timedelta(days=1))


def parse_custom_seasons(spec: Mapping[str, str] | None) -> dict[str, Season]:
    """Custom seasons from ``{"name": "YYYY-MM-DD/YYYY-MM-DD"}``; raises on a malformed entry."""
    seasons: dict[str, Season] = {}
    for name, interval in (spec or {}).items():
        if not _CUSTOM_NAME_RE.match(name) or _CALENDAR_RE.match(name):
            raise SeasonNotFoundError(
                f"custom season name {name!r} must be lowercase letters, digits, '-' or '_' "
                "and must not look like a calendar season (YEAR-summer)"
            )
        try:
            first, last = (dt.date.fromisoformat(part.strip()) for part in interval.split("/"))
        except ValueError:
            raise SeasonNotFoundError(
                f"custom season {name!r}: {interval!r} is not 'YYYY-MM-DD/YYYY-MM-DD'"
            ) from None
        if last < first:
            raise SeasonNotFoundError(f"custom season {name!r} ends ({last}) before it starts ({first})")
        seasons[name] = Season(start=first, end=last, name=name)
    return seasons


def resolve_season(name: str, custom: Mapping[str, Season] | None = None) -> Season:
    """The season called ``name``: a calendar season (``2019-summer``) or a custom one."""
    custom = custom or {}
    if name in custom:
        return custom[name]
    match = _CALENDAR_RE.match(name.strip().lower()) if isinstance(name, str) else None
    if match and 1984 <= int(match["year"]) <= 2100:
        return calendar_season(int(match["year"]), match["season"])
    valid = "YEAR-winter, YEAR-spring, YEAR-summer, YEAR-autumn (e.g. 2019-summer)"
    if custom:
        valid += " or one of the custom seasons: " + ", ".join(sorted(custom))
    raise SeasonNotFoundError(f"unknown season {name!r}: use {valid}")
