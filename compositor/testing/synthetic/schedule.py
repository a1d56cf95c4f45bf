"""When Sentinel-2 looks: revisits per relative orbit, platforms, sensing times, sun, baselines.

From ESA's reference orbit (``reference_orbit``): relative orbit ``r`` of S2A crosses its
ascending node (ANX) ``r - 1`` nodal periods after the ANX of relative orbit 1 at
2021-01-01T22:26:01.27 UTC (absolute orbit 28884), every 10 days (143 orbits); S2B flies the
same tracks half a cycle apart (relative orbit 1 at 2020-12-27T22:26:01.27, absolute 19904), so
each track is revisited every 5 days by alternating platforms. A pass over a latitude is sensed
at the ANX plus the time the descending sub-satellite point takes to reach it (10:30 local
solar time at the descending node: about 10:00-11:30 UTC over Europe). Sensing times are UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache

from compositor.seasons import Season
from compositor.testing.synthetic.reference_orbit import (
    ANX_EPOCHS,
    CYCLE_DAYS,
    NODAL_PERIOD_S,
    absolute_orbit,
    time_at_latitude,
)

PERIOD = dt.timedelta(seconds=NODAL_PERIOD_S)
REVISIT = dt.timedelta(days=CYCLE_DAYS / 2)
_DATATAKE_LAT = 62.0  # latitude where a European datatake starts
_DATE_LAT = 50.0  # a pass's date is its (UTC) date over Europe

# (first sensing date, processing baseline): the baseline ground stations used from that date
_BASELINES: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2015, 6, 23), "02.04"),
    (dt.date(2018, 5, 23), "02.08"),
    (dt.date(2018, 11, 6), "02.10"),
    (dt.date(2019, 7, 8), "02.13"),
    (dt.date(2020, 1, 30), "02.14"),
    (dt.date(2021, 3, 30), "03.00"),
    (dt.date(2021, 6, 30), "03.01"),
    (dt.date(2022, 1, 25), "04.00"),
    (dt.date(2022, 12, 6), "05.08"),
    (dt.date(2023, 6, 27), "05.09"),
    (dt.date(2023, 12, 13), "05.10"),
)
OFFSET_BASELINE = "04.00"
BOA_ADD_OFFSET_DN = 1000


@dataclass(frozen=True, order=True)
class Acquisition:
    """One pass of one satellite over the region: a (date, relative orbit) pair."""

    date: dt.date
    relative_orbit: int
    platform: str  # "S2A" or "S2B"
    revisit: int  # index of this pass among the track's 5-day revisits: S2A's cycles even, S2B's odd
    anx_time: dt.datetime  # UTC time of the pass's ascending node, before the descending daylight half

    def sensing_time(self, lat_deg: float) -> dt.datetime:
        """UTC time at which the satellite flies over latitude ``lat_deg`` (deg N) on this pass."""
        return self.anx_time + dt.timedelta(seconds=seconds_to_latitude(self.relative_orbit, lat_deg))

    @property
    def datatake_time(self) -> dt.datetime:
        return self.sensing_time(_DATATAKE_LAT).replace(microsecond=0)

    @property
    def cycle(self) -> int:
        """The repeat cycle of this pass, counted from the platform's epoch in ``reference_orbit``."""
        return (self.revisit + (1 if self.platform == "S2B" else 0)) // 2

    @property
    def absolute_orbit(self) -> int:
        return absolute_orbit(self.platform, self.relative_orbit, self.cycle)

    @property
    def baseline(self) -> str:
        return processing_baseline(self.date)

    @property
    def key(self) -> str:
        """A stable text key, e.g. ``20220203-R065``, for seeding and logging."""
        return f"{self.date:%Y%m%d}-R{self.relative_orbit:03d}"


@lru_cache(maxsize=4096)
def seconds_to_latitude(relative_orbit: int, lat_deg: float) -> float:
    """Seconds from the ANX to the descending pass over ``lat_deg`` (cached)."""
    return time_at_latitude(relative_orbit, lat_deg)


def processing_baseline(day: dt.date) -> str:
    """The processing baseline (``"04.00"``...) of scenes sensed on ``day``."""
    current = _BASELINES[0][1]
    for first, baseline in _BASELINES:
        if day >= first:
            current = baseline
    return current


def has_boa_offset(baseline: str) -> bool:
    """Whether L2A products of ``baseline`` store reflectance * 10000 + 1000 (04.00 and later)."""
    return tuple(int(p) for p in baseline.split(".")) >= (4, 0)


def acquisitions_in(season: Season, orbits: tuple[int, ...]) -> list[Acquisition]:
    """Every pass of S2A and S2B on ``orbits`` within the season (inclusive dates), by date."""
    epoch_a = ANX_EPOCHS["S2A"][0]
    found = []
    start = dt.datetime.combine(season.start, dt.time(), tzinfo=dt.timezone.utc)
    for orbit in orbits:
        first = epoch_a + (orbit - 1) * PERIOD  # S2A's ANX on this track in its epoch's cycle (k = 0)
        to_europe = dt.timedelta(seconds=seconds_to_latitude(orbit, _DATE_LAT))
        k = math.floor((start - first) / REVISIT) - 1
        while True:
            anx = first + k * REVISIT
            day = (anx + to_europe).date()
            if day > season.end:
                break
            if season.contains(day):
                platform = "S2A" if k % 2 == 0 else "S2B"
                found.append(Acquisition(day, orbit, platform, k, anx))
            k += 1
    return sorted(found)


def sun_position(when: dt.datetime, lon_deg: float, lat_deg: float) -> tuple[float, float]:
    """(azimuth, elevation) of the sun in degrees (azimuth clockwise from north) at a UTC time and place.

    The low-precision almanac formulae (about 0.1 deg), enough for shadows and metadata.
    """
    n = (when - dt.datetime(2000, 1, 1, 12, tzinfo=dt.timezone.utc)).total_seconds() / 86400.0
    mean_lon = math.radians((280.460 + 0.9856474 * n) % 360.0)
    anomaly = math.radians((357.528 + 0.9856003 * n) % 360.0)
    ecl_lon = mean_lon + math.radians(1.915 * math.sin(anomaly) + 0.020 * math.sin(2 * anomaly))
    obliquity = math.radians(23.439 - 4e-7 * n)
    right_ascension = math.atan2(math.cos(obliquity) * math.sin(ecl_lon), math.cos(ecl_lon))
    declination = math.asin(math.sin(obliquity) * math.sin(ecl_lon))
    sidereal = math.radians((280.46061837 + 360.98564736629 * n) % 360.0)
    hour_angle = sidereal + math.radians(lon_deg) - right_ascension
    lat = math.radians(lat_deg)
    elevation = math.asin(
        math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(declination) * math.cos(hour_angle)
    )
    azimuth = math.atan2(
        -math.sin(hour_angle), math.tan(declination) * math.cos(lat) - math.sin(lat) * math.cos(hour_angle)
    )
    return math.degrees(azimuth) % 360.0, math.degrees(elevation)
