"""Sentinel-2 relative orbits: a ground-track model shared by every block, tile and the generator.

The per-orbit statistics are blended with weights that fall with a pixel's distance to each
orbit's centre line. For the blend to show neither stripes nor seams, that distance must be a
function of the pixel's position alone, the same for every block and every on-the-fly tile: it
comes from this model, never from the scenes a block happens to read.

The model: a circular sun-synchronous orbit (inclination 98.62 deg, 143 orbits in 10 days) over a
spherical Earth. Relative orbits are numbered in time, so orbit ``r + 1`` crosses a latitude
360 * 10 / 143 = 25.17 deg west of orbit ``r``; neighbouring ground tracks are 2.52 deg apart
(orbit ``r + 43`` is the western neighbour of ``r``). The anchor puts relative orbit 22 at
10.3 deg E on 40 deg N (Sardinia lies between R022 and R065; the sample scene of R037 falls inside
the model's swath). Its error for real data is a fraction of a degree, which shifts the weights a
little but keeps them continuous.
"""

from __future__ import annotations

import math

import numpy as np

INCLINATION_DEG = 98.62
ORBITS_PER_CYCLE = 143
CYCLE_DAYS = 10
SWATH_WIDTH_M = 290_000.0
EARTH_RADIUS_M = 6_371_008.8
_SHIFT_DEG = 360.0 * CYCLE_DAYS / ORBITS_PER_CYCLE  # westward shift between consecutive orbits
_ANCHOR_ORBIT, _ANCHOR_LAT, _ANCHOR_LON = 22, 40.0, 10.3


def _track_offset_deg(lat_deg: np.ndarray) -> np.ndarray:
    """Longitude of the descending ground track at ``lat_deg``, relative to its node, in degrees."""
    inc = math.radians(INCLINATION_DEG)
    sin_u = np.clip(np.sin(np.radians(lat_deg)) / math.sin(inc), -1.0, 1.0)
    u = math.pi - np.arcsin(sin_u)  # argument of latitude on the descending branch
    inertial = np.arctan2(math.cos(inc) * np.sin(u), np.cos(u))
    rotation = u / (2 * math.pi) * (2 * math.pi * CYCLE_DAYS / ORBITS_PER_CYCLE)  # Earth turns under it
    return np.degrees(inertial - rotation)


_ANCHOR_NODE = _ANCHOR_LON - float(_track_offset_deg(np.array(_ANCHOR_LAT)))


def _wrap(lon_deg: np.ndarray) -> np.ndarray:
    return (np.asarray(lon_deg) + 180.0) % 360.0 - 180.0


def track_lon(relative_orbit: int, lat_deg: np.ndarray | float) -> np.ndarray:
    """Longitude (deg, -180..180) where the descending track of ``relative_orbit`` crosses ``lat_deg``."""
    check_relative_orbit(relative_orbit)
    node = _ANCHOR_NODE - (relative_orbit - _ANCHOR_ORBIT) * _SHIFT_DEG
    return _wrap(node + _track_offset_deg(np.asarray(lat_deg, dtype="float64")))


def cross_track_distance_m(relative_orbit: int, lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Signed distance (m, positive east) from points (EPSG:4326) to the orbit's centre line.

    The east-west offset from the track at the point's latitude, projected on the normal of the
    track (which runs about 10-13 deg off the meridian at European latitudes). Accurate to well
    under a kilometre within a swath (145 km either side).
    """
    lat = np.asarray(lat_deg, dtype="float64")
    lon = np.asarray(lon_deg, dtype="float64")
    dlon = _wrap(lon - track_lon(relative_orbit, lat))
    step = 0.01
    dlon_dlat = _wrap(track_lon(relative_orbit, lat + step) - track_lon(relative_orbit, lat - step)) / (2 * step)
    cos_lat = np.cos(np.radians(lat))
    # Track direction in local metric units: (east, north) = (cos_lat * dlon_dlat, 1).
    cos_tilt = 1.0 / np.sqrt(1.0 + (cos_lat * dlon_dlat) ** 2)
    return np.radians(dlon) * cos_lat * EARTH_RADIUS_M * cos_tilt


def in_swath(relative_orbit: int, lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Whether points (EPSG:4326) lie within the orbit's 290 km swath."""
    return np.abs(cross_track_distance_m(relative_orbit, lon_deg, lat_deg)) <= SWATH_WIDTH_M / 2


def neighbour_orbits(relative_orbit: int) -> tuple[int, int]:
    """The (western, eastern) neighbouring relative orbits, whose swaths overlap this one."""
    check_relative_orbit(relative_orbit)
    west = (relative_orbit - 1 + 43) % ORBITS_PER_CYCLE + 1
    east = (relative_orbit - 1 - 43) % ORBITS_PER_CYCLE + 1
    return west, east


def orbits_covering(lon_deg: float, lat_deg: float) -> list[int]:
    """Relative orbits whose swath contains the point, sorted west to east by their track."""
    hits = [r for r in range(1, ORBITS_PER_CYCLE + 1) if in_swath(r, np.array(lon_deg), np.array(lat_deg))]
    return sorted(hits, key=lambda r: -float(cross_track_distance_m(r, np.array(lon_deg), np.array(lat_deg))))


def check_relative_orbit(relative_orbit: int) -> None:
    if not 1 <= int(relative_orbit) <= ORBITS_PER_CYCLE:
        raise ValueError(f"relative orbit {relative_orbit} is outside 1..{ORBITS_PER_CYCLE}")
