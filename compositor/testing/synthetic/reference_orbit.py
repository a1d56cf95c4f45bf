"""The Sentinel-2 reference orbit, propagated here on its own: tracks, swath edges and pass times.

Deliberately independent of ``compositor.orbits`` (the compositor's model): the generator's
swaths are the truth the compositor is tested against, so they must not come from the same code.

Sources: ESA's reference orbit scenario files (``S2A_OPER_MPL_ORBSCT_..._0008.EOF``,
``S2B_OPER_MPL_ORBSCT_..._0007.EOF``): 143 orbits in 10 days, the ascending node (ANX) of
relative orbit 1 at 1.0 deg E, consecutive relative orbits 3600/143 deg apart, mean local solar
time 22:30 at the ANX, and the ANX epochs below. The semi-major axis follows from the nodal
period and sun-synchrony under J2 (7164 km: 786 km above the equator); the inclination is set
to 98.5621 deg (J2 sun-synchrony alone gives 98.545 deg for this period).

The method: a circular orbit, the satellite at argument of latitude ``u = 2 pi t / T`` after
its ANX in the plane of the node; the Earth turns under that plane at 360 deg per mean solar
day (sidereal rotation minus the node's sun-synchronous drift). Positions are ECEF (m), turned
into WGS84 geodetic coordinates with pyproj (EPSG:4978 <-> EPSG:4979). The instrument looks
down the ellipsoid normal (geodetic nadir), across the ground-relative velocity (yaw-steered):
a ground point is seen at the time ``t`` when it lies in the look plane through the satellite
that holds the nadir and is normal to the horizontal part of that velocity, at the signed
off-nadir angle ``theta`` in that plane (positive east on the descending pass). The data's
edges are at ``|theta| = HALF_ANGLE_DEG``.

Times ``t`` are seconds after the relative orbit's ANX; only the descending (daylight) half,
``T/4 < t < 3T/4``, is used.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache

import numpy as np
from pyproj import Transformer

from compositor.errors import InvalidInputError

ORBITS_PER_CYCLE = 143
CYCLE_DAYS = 10
NODAL_PERIOD_S = CYCLE_DAYS * 86_400.0 / ORBITS_PER_CYCLE  # 6041.958 s
ANX_LON_R1_DEG = 1.0
ANX_SHIFT_DEG = 360.0 * CYCLE_DAYS / ORBITS_PER_CYCLE  # westward, from one relative orbit to the next
# ANX of relative orbit 1: (UTC time, absolute orbit), from the reference orbit files
ANX_EPOCHS: dict[str, tuple[dt.datetime, int]] = {
    "S2A": (dt.datetime(2021, 1, 1, 22, 26, 1, 272398, tzinfo=dt.timezone.utc), 28884),
    "S2B": (dt.datetime(2020, 12, 27, 22, 26, 1, 272398, tzinfo=dt.timezone.utc), 19904),
}
# Off-nadir half-angle of the data's edges (deg): about MSI's 20.6 deg field of view, set so that the
# real partial footprints' west and east edges (``tests/data/real-footprints``) are equally far from
# the generated ones: 147 km either side of the track at 48 N.
HALF_ANGLE_DEG = 10.43

_MU = 3.986004418e14  # m^3 s^-2
_J2 = 1.08262668e-3
_WGS84_A, _WGS84_B = 6_378_137.0, 6_356_752.314245
_SUN_RATE = 2 * math.pi / (365.2422 * 86_400.0)  # rad/s, the node's drift under sun-synchrony
_EARTH_UNDER_NODE = 2 * math.pi / 86_400.0  # rad/s: sidereal rotation minus the sun-synchronous drift
_U_RATE = 2 * math.pi / NODAL_PERIOD_S
_TO_GEODETIC = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
_TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


def _orbit_elements() -> tuple[float, float]:
    """(semi-major axis m, inclination rad) of a circular sun-synchronous orbit of the nodal period."""
    a, inc = 7.17e6, math.radians(98.5)
    for _ in range(30):
        k = 0.75 * _J2 * (_WGS84_A / a) ** 2
        n = _U_RATE / (1.0 + k * (8.0 * math.cos(inc) ** 2 - 2.0))  # u' = n + w' + M' - n under J2
        a = (_MU / n**2) ** (1.0 / 3.0)
        inc = math.acos(-_SUN_RATE / (2.0 * k * n))  # node drift -1.5 n J2 (R/a)^2 cos i = sun rate
    return a, inc


SEMI_MAJOR_AXIS_M, _J2_INCLINATION = _orbit_elements()
# Against the real footprints, the mid-line between the real west and east edges lies 0.10 deg
# (1.4 km) east of this nadir with 98.5621 deg, 0.20 deg with the J2 value, -0.22 deg with 98.62.
INCLINATION_DEG = 98.5621
_INC = math.radians(INCLINATION_DEG)
_T_DESCENDING = (NODAL_PERIOD_S / 4, 3 * NODAL_PERIOD_S / 4)


def check_relative_orbit(relative_orbit: int) -> int:
    if not 1 <= int(relative_orbit) <= ORBITS_PER_CYCLE:
        raise InvalidInputError(f"relative orbit {relative_orbit} is outside 1..{ORBITS_PER_CYCLE}: use 1 to 143")
    return int(relative_orbit)


def anx_longitude_deg(relative_orbit: int) -> float:
    """Longitude of the relative orbit's ascending node (deg, 0..360 E)."""
    r = check_relative_orbit(relative_orbit)
    return (ANX_LON_R1_DEG - (r - 1) * ANX_SHIFT_DEG) % 360.0


def satellite_ecef(relative_orbit: int, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position m, ground-relative velocity m/s), ECEF, shape (..., 3), ``t_s`` seconds after the ANX."""
    t = np.asarray(t_s, dtype=np.float64)
    node = math.radians(anx_longitude_deg(relative_orbit)) - _EARTH_UNDER_NODE * t
    u = _U_RATE * t
    cu, su, cn, sn = np.cos(u), np.sin(u), np.cos(node), np.sin(node)
    ci, si = math.cos(_INC), math.sin(_INC)
    x0, y0, z0 = cu, ci * su, si * su
    pos = SEMI_MAJOR_AXIS_M * np.stack([x0 * cn - y0 * sn, x0 * sn + y0 * cn, z0], axis=-1)
    # d/dt: the in-plane motion (u') and the Earth turning under the node (-w)
    dx0, dy0, dz0 = -su * _U_RATE, ci * cu * _U_RATE, si * cu * _U_RATE
    w = -_EARTH_UNDER_NODE
    vel = SEMI_MAJOR_AXIS_M * np.stack(
        [dx0 * cn - dy0 * sn + w * (-x0 * sn - y0 * cn), dx0 * sn + dy0 * cn + w * (x0 * cn - y0 * sn), dz0], axis=-1
    )
    return pos, vel


def _normal(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def look_frame(relative_orbit: int, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(position, velocity, nadir, cross) at times ``t_s``: unit nadir down the ellipsoid normal, unit cross east."""
    pos, vel = satellite_ecef(relative_orbit, t_s)
    lon, lat, _ = _TO_GEODETIC.transform(pos[..., 0], pos[..., 1], pos[..., 2])
    nadir = -_normal(np.asarray(lon), np.asarray(lat))
    cross = np.cross(vel, nadir)
    cross /= np.linalg.norm(cross, axis=-1, keepdims=True)
    return pos, vel, nadir, cross


def subsatellite_lonlat(relative_orbit: int, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic (lon, lat) in degrees (WGS84) of the point under the satellite at ``t_s``."""
    pos, _ = satellite_ecef(relative_orbit, t_s)
    lon, lat, _ = _TO_GEODETIC.transform(pos[..., 0], pos[..., 1], pos[..., 2])
    return np.asarray(lon), np.asarray(lat)


def ground_point(relative_orbit: int, t_s: np.ndarray, theta_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic (lon, lat) (deg) seen at time ``t_s`` and off-nadir angle ``theta_deg`` (east > 0)."""
    t, theta = np.broadcast_arrays(np.asarray(t_s, np.float64), np.radians(np.asarray(theta_deg, np.float64)))
    pos, _, nadir, cross = look_frame(relative_orbit, t)
    ray = np.cos(theta)[..., None] * nadir + np.sin(theta)[..., None] * cross
    scale = np.array([_WGS84_A, _WGS84_A, _WGS84_B])
    p, d = pos / scale, ray / scale
    qa, qb, qc = (d * d).sum(-1), (p * d).sum(-1), (p * p).sum(-1) - 1.0
    s = (-qb - np.sqrt(qb * qb - qa * qc)) / qa
    hit = pos + s[..., None] * ray
    lon, lat, _ = _TO_GEODETIC.transform(hit[..., 0], hit[..., 1], hit[..., 2])
    return np.asarray(lon), np.asarray(lat)


@lru_cache(maxsize=512)
def _time_lattice(relative_orbit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.linspace(*_T_DESCENDING, 303)
    pos, vel = satellite_ecef(relative_orbit, t)
    return t, pos, vel


def _plane_offset(relative_orbit: int, t_s: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Distance-like offset (m^2/s) of ECEF points from the look plane at ``t_s``: the plane through the
    satellite holding the nadir and cross directions, normal to the horizontal part of the velocity."""
    pos, vel, nadir, _ = look_frame(relative_orbit, t_s)
    horizontal = vel - (vel * nadir).sum(-1, keepdims=True) * nadir
    return ((point - pos) * horizontal).sum(-1)


def view_coordinates(relative_orbit: int, lon_deg: np.ndarray, lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time s after the ANX, signed off-nadir angle deg, east > 0) at which the descending pass sees points.

    Points are geodetic (EPSG:4326, on the ellipsoid). The time is where the point crosses the
    look plane (holding the nadir and the cross direction: normal to the horizontal part of
    the ground-relative velocity), found by Newton's method from the
    nearest of 303 times along the descending half; accurate to well under a millisecond
    (7 m along track). Works for any point of the daylight hemisphere the pass flies over.
    """
    lon, lat = np.broadcast_arrays(np.asarray(lon_deg, np.float64), np.asarray(lat_deg, np.float64))
    x, y, z = _TO_ECEF.transform(lon, lat, np.zeros_like(lon))
    point = np.stack([np.asarray(x), np.asarray(y), np.asarray(z)], axis=-1)
    t_grid, pos_grid, _ = _time_lattice(check_relative_orbit(relative_orbit))
    flat = point.reshape(-1, 3)
    nearest = np.empty(len(flat), dtype=np.int64)
    for start in range(0, len(flat), 4096):
        chunk = flat[start : start + 4096]
        dist2 = ((chunk[:, None, :] - pos_grid[None, :, :]) ** 2).sum(-1)
        nearest[start : start + 4096] = dist2.argmin(axis=1)
    t = t_grid[nearest].reshape(lon.shape)
    for _ in range(4):
        f = _plane_offset(relative_orbit, t, point)
        t = t - f / ((_plane_offset(relative_orbit, t + 0.5, point) - f) / 0.5)
    pos, _, nadir, cross = look_frame(relative_orbit, t)
    rel = point - pos
    theta = np.degrees(np.arctan2((rel * cross).sum(-1), (rel * nadir).sum(-1)))
    return t, theta


def anx_time(platform: str, relative_orbit: int, cycle: int) -> dt.datetime:
    """UTC time of the ANX of ``relative_orbit`` in repeat cycle ``cycle`` (0: the epoch's) of ``platform``."""
    if platform not in ANX_EPOCHS:
        raise InvalidInputError(f"platform {platform!r} has no reference orbit here: use one of {sorted(ANX_EPOCHS)}")
    epoch, _ = ANX_EPOCHS[platform]
    r = check_relative_orbit(relative_orbit)
    return epoch + dt.timedelta(seconds=(r - 1 + cycle * ORBITS_PER_CYCLE) * NODAL_PERIOD_S)


def absolute_orbit(platform: str, relative_orbit: int, cycle: int) -> int:
    """The absolute orbit number of ``relative_orbit`` in repeat cycle ``cycle`` of ``platform``."""
    _, first = ANX_EPOCHS[platform]
    return first + check_relative_orbit(relative_orbit) - 1 + cycle * ORBITS_PER_CYCLE


def time_at_latitude(relative_orbit: int, lat_deg: float) -> float:
    """Seconds after the ANX at which the descending sub-satellite point reaches ``lat_deg`` (deg N)."""
    lo, hi = _T_DESCENDING
    if not -80.0 <= lat_deg <= 80.0:
        raise InvalidInputError(f"latitude {lat_deg} is outside -80..80 deg: give a latitude the pass flies over")
    for _ in range(36):  # latitude falls monotonically on the descending half
        mid = (lo + hi) / 2
        if float(subsatellite_lonlat(relative_orbit, np.array(mid))[1]) > lat_deg:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def orbits_seeing(lon_deg: np.ndarray, lat_deg: np.ndarray, half_angle_deg: float = HALF_ANGLE_DEG) -> list[int]:
    """Relative orbits whose descending swath (``|theta| <= half_angle_deg``) holds any of the points (EPSG:4326)."""
    lon = np.atleast_1d(np.asarray(lon_deg, np.float64))
    lat = np.atleast_1d(np.asarray(lat_deg, np.float64))
    found = []
    for orbit in range(1, ORBITS_PER_CYCLE + 1):
        # screen: a swath (300 km) is within 20 deg of longitude of its track up to 75 deg N
        t_mid = _time_at_latitude_cached(orbit, round(float(lat.mean()), 3))
        track_lon = float(subsatellite_lonlat(orbit, np.array(t_mid))[0])
        if abs((float(lon.mean()) - track_lon + 180.0) % 360.0 - 180.0) > 20.0:
            continue
        _, theta = view_coordinates(orbit, lon, lat)
        if (np.abs(theta) <= half_angle_deg).any():
            found.append(orbit)
    return found


@lru_cache(maxsize=4096)
def _time_at_latitude_cached(relative_orbit: int, lat_deg: float) -> float:
    return time_at_latitude(relative_orbit, lat_deg)
