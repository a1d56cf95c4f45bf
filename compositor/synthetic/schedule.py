"""When Sentinel-2 looks: revisits per relative orbit, platforms, sensing times, sun, baselines.

The timing is anchored on the real sample scene (S2A, relative orbit 37, absolute orbit 24344,
2020-02-19T11:34:25.405Z over 29RKH at 24.8 N): relative orbit ``r`` follows orbit 37 by
``r - 37`` orbital periods (10 days / 143), S2A repeats every 10 days and S2B, half a cycle
apart on the same track, 5 days later. The satellites fly south at about 6.8 km/s, so a tile
farther north is seen a little earlier. Sensing times are UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from compositor.orbits import CYCLE_DAYS, ORBITS_PER_CYCLE
from compositor.seasons import Season

PERIOD = dt.timedelta(days=CYCLE_DAYS) / ORBITS_PER_CYCLE
REVISIT = dt.timedelta(days=CYCLE_DAYS / 2)
_REF_TIME = dt.datetime(2020, 2, 19, 11, 34, 25, 405000, tzinfo=dt.timezone.utc)
_REF_ORBIT, _REF_LAT, _REF_ABSOLUTE = 37, 24.8, 24344
_S2B_ABSOLUTE_LAG = 9153  # S2B's absolute orbit count trails S2A's (launched 20 months later)
_SECONDS_PER_DEG_LAT = 16.35  # 111.2 km per degree at 6.8 km/s ground speed
_DATATAKE_LAT = 62.0  # latitude where a European datatake starts

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
    revisit: int  # index of this pass among the orbit's 5-day revisits since the anchor
    node_time: dt.datetime  # UTC time at the reference latitude (24.8 N), without the latitude shift

    def sensing_time(self, lat_deg: float) -> dt.datetime:
        """UTC time at which the satellite looks at latitude ``lat_deg`` (deg N) on this pass."""
        return self.node_time + dt.timedelta(seconds=(_REF_LAT - lat_deg) * _SECONDS_PER_DEG_LAT)

    @property
    def datatake_time(self) -> dt.datetime:
        return self.sensing_time(_DATATAKE_LAT).replace(microsecond=0)

    @property
    def absolute_orbit(self) -> int:
        orbits = round((self.node_time - _REF_TIME) / PERIOD)
        if self.platform == "S2B":
            orbits = round((self.node_time - REVISIT - _REF_TIME) / PERIOD) - _S2B_ABSOLUTE_LAG
        return _REF_ABSOLUTE + orbits

    @property
    def baseline(self) -> str:
        return processing_baseline(self.date)

    @property
    def key(self) -> str:
        """A stable text key, e.g. ``20220203-R065``, for seeding and logging."""
        return f"{self.date:%Y%m%d}-R{self.relative_orbit:03d}"


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
    found = []
    for orbit in orbits:
        first = _REF_TIME + (orbit - _REF_ORBIT) * PERIOD
        start = dt.datetime.combine(season.start, dt.time(), tzinfo=dt.timezone.utc)
        k = math.floor((start - first) / REVISIT) - 1
        while True:
            node_time = first + k * REVISIT
            day = node_time.date()
            if day > season.end:
                break
            if season.contains(day):
                platform = "S2A" if k % 2 == 0 else "S2B"
                found.append(Acquisition(day, orbit, platform, k, node_time))
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
