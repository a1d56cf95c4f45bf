"""Sentinel-2 relative orbits: the ground-track model shared by every block, tile and the generator.

The per-orbit statistics are blended with weights that fall with a pixel's distance to each
orbit's centre line. For the blend to show neither stripes nor seams, that distance must be a
function of the pixel's position alone, the same for every block and every on-the-fly tile: it
comes from this model, never from the scenes a block happens to read.

What is published, what is derived, what is fitted
--------------------------------------------------
Published (ESA's reference orbit scenario files ``S2A/S2B_OPER_MPL_ORBSCT``, operational phase):
a repeat cycle of 143 orbits in 10 days (nodal period ``T = 864000 / 143 = 6041.958 s``), the
longitude of the ascending node (ANX) of relative orbit 1 at 1.0 deg E, and relative orbit ``R``
at ``ANX(R) = 1.0 - (R - 1) * 3600 / 143`` deg (each orbit 25.17 deg west of the previous one).

Derived (physics, no data): the satellite flies a sun-synchronous frozen orbit, circular to first
order in its eccentricity. From ``T`` and the sun-synchronous node rate (360 deg per tropical
year) with the Earth's J2, the mean semi-major axis is 7164 km (786 km above the equator) and the
inclination 98.545 deg; the frozen eccentricity is ``-J3 / (2 J2) * (a_e / a) * sin i = 0.00103``
with perigee over the North Pole (argument of perigee 90 deg). The sub-satellite point at
argument of latitude ``u`` (angle from the ascending node, in the orbit plane) is:

- time since ANX ``t(u) = T / 2 pi * (u + 2 e cos u - 2 e)`` (Kepler's equation to first order in
  ``e``, perigee at ``u = 90 deg``), radius ``r = a (1 - e sin u)``;
- geocentric latitude ``asin(sin i sin u)``, longitude
  ``ANX + atan2(cos i sin u, cos u) - omega t``, with ``omega = 2 pi / 86400 s``: the Earth turns
  under the precessing orbit plane at the solar-day rate (sidereal rate minus node rate);
- the point is the satellite's geodetic nadir on the WGS84 ellipsoid (its geodetic latitude at
  its height: the instrument looks along the ellipsoid normal), not the geocentric one.

The daylight (descending) branch ``u`` in 90..270 deg is tabulated once; ``track_lon`` reads it.
At ``u = 180`` deg it gives the descending node 167.43 deg east of the ANX: half a turn, less the
Earth's rotation in the 3016.6 s from ANX to DN (half the period less 4.4 s: the frozen orbit is
faster over its northern half). R037's node is then at -17.86 deg E, where the real sample scene's
time stamp puts it (``tests/compositor/test_orbits.py``).

How much each step matters, measured as the midpoint of the real data edges (below) relative to
the model's track over 35-71 N: the old model (spherical Earth, inclination 98.62, anchored by
hand at R022 on 10.3 E at 40 N) -36 km; ESA's node longitudes in that model -8.3 km; with the
inclination 98.545 derived above -1.8 km; on WGS84 with the geodetic nadir +3.3 km; with the
frozen eccentricity +2.4 km (the Earth's rotation during the pass is in every one of these).

Fitted (to real data): the inclination, ``INCLINATION_DEG = 98.572``, and the swath half-width,
``SWATH_HALF_WIDTH_M = 147.7 km``; nothing else (no cross-track offset). The data: 1,151 real
partial footprints (STAC items from public repositories' test fixtures,
``tests/data/real-footprints/``); per footprint and side, the vertex farthest from the centre
line where that side is a real swath edge (``tests/compositor/test_orbits.py`` says how edges are
picked), its geodesic distance to the track. With the derived inclination the edges' midpoint is
+2.4 km (east of the track) over 35-71 N, +1.0 km over 0-35 N and +0.1 km over 60 S-0: an error
that vanishes at the equator and grows with latitude is what an inclination error gives (an
instrument pointing offset or an asymmetric swath would be the same at all latitudes). So the one
orbit parameter fitted is the inclination: bisected until the median west and east edge
distances over 35-71 N are equal, 98.572 deg. The midpoint is then +0.2 / +0.1 / -0.4 km over
35-45 / 45-55 / 55-71 N, and out of the fitted range +0.2 km over 0-35 N and +0.7 km over 60 S-0.
The fitted inclination is 0.027 deg above the derived one, the size of the difference between
mean-element theories (ESA's web page quotes 98.62, which puts the track 4 km east of the real
one over 35-71 N). The half-width is the median edge distance over 35-71 N, 147.7 km on both
sides (IQR 1.0 km west, 0.8 km east; 146.7 km over 0-35 N, 148.1 km over 55-71 N: the swath widens
as the satellite's height above the ellipsoid grows northwards); one constant serves, since the
weights and the swath test need a single figure. Median of | |distance| - half-width | over all
edges 35-71 N: 0.42 km (the old model: 36.5 km; its edges sat at -185 / +112 km).
"""

from __future__ import annotations

import math

import numpy as np
from pyproj import Transformer

from compositor.errors import InvalidInputError

# Published: ESA's reference orbit (operational phase of S2A, S2B and S2C).
ORBITS_PER_CYCLE = 143
CYCLE_DAYS = 10
NODAL_PERIOD_S = 86_400.0 * CYCLE_DAYS / ORBITS_PER_CYCLE  # 6041.958 s
ANX_LON_ORBIT_1_DEG = 1.0
_SHIFT_DEG = 360.0 * CYCLE_DAYS / ORBITS_PER_CYCLE  # westward shift between consecutive orbits

# The Earth: WGS84 ellipsoid, EGM96 zonal harmonics.
WGS84_A_M = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
GM_M3_S2 = 3.986004418e14
J2, J3 = 1.08262668e-3, -2.53265649e-6
SOLAR_DAY_RATE_RAD_S = 2.0 * math.pi / 86_400.0  # Earth relative to a sun-synchronous orbit plane
NODE_RATE_RAD_S = 2.0 * math.pi / (365.2421897 * 86_400.0)  # sun-synchronous: one turn a year

# Fitted to the real footprints (see the module docstring).
INCLINATION_DEG = 98.572
SWATH_HALF_WIDTH_M = 147_700.0
SWATH_WIDTH_M = 2.0 * SWATH_HALF_WIDTH_M

EARTH_RADIUS_M = 6_371_008.8  # mean radius, for callers that want a sphere


def derive_mean_orbit(inclination_deg: float | None = None) -> tuple[float, float]:
    """Mean semi-major axis (m) and sun-synchronous inclination (deg) from the nodal period and J2.

    Solves ``dOmega/dt = -3/2 J2 (a_e/a)^2 n cos i = NODE_RATE`` and
    ``d(omega + M)/dt = n (1 + 3/4 J2 (a_e/a)^2 (8 cos^2 i - 2)) = 2 pi / T`` (first order in J2,
    circular). With ``inclination_deg`` given, only ``a`` is solved and that inclination returned.
    """
    inc = math.radians(98.6 if inclination_deg is None else inclination_deg)
    a = 7.16e6
    for _ in range(60):
        k = 0.75 * J2 * (WGS84_A_M / a) ** 2
        n = 2.0 * math.pi / NODAL_PERIOD_S / (1.0 + k * (8.0 * math.cos(inc) ** 2 - 2.0))
        a = (GM_M3_S2 / n**2) ** (1.0 / 3.0)
        if inclination_deg is None:
            inc = math.acos(-NODE_RATE_RAD_S / (1.5 * J2 * (WGS84_A_M / a) ** 2 * n))
    return a, math.degrees(inc)


SEMI_MAJOR_AXIS_M, SSO_INCLINATION_DEG = derive_mean_orbit()  # 7164.3 km, 98.545 deg
FROZEN_ECCENTRICITY = -J3 / (2.0 * J2) * (WGS84_A_M / SEMI_MAJOR_AXIS_M) * math.sin(math.radians(SSO_INCLINATION_DEG))

_ECEF_TO_GEODETIC = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def tabulate_descending_track(inclination_deg: float = INCLINATION_DEG, eccentricity: float = FROZEN_ECCENTRICITY,
                              n_points: int = 40_001) -> tuple[np.ndarray, np.ndarray]:
    """The daylight branch of the ground track: geodetic latitude (deg, increasing) and longitude
    east of the ANX (deg, continuous), of the geodetic nadir on WGS84, for ``u`` in 90..270 deg."""
    inc = math.radians(inclination_deg)
    a, _ = derive_mean_orbit(inclination_deg)
    u = np.linspace(0.5 * math.pi, 1.5 * math.pi, n_points)
    t = NODAL_PERIOD_S / (2.0 * math.pi) * (u + 2.0 * eccentricity * np.cos(u) - 2.0 * eccentricity)
    r = a * (1.0 - eccentricity * np.sin(u))
    lat_gc = np.arcsin(math.sin(inc) * np.sin(u))
    _, lat, _ = _ECEF_TO_GEODETIC.transform(r * np.cos(lat_gc), np.zeros_like(u), r * np.sin(lat_gc))
    lon = np.unwrap(np.arctan2(math.cos(inc) * np.sin(u), np.cos(u)) - SOLAR_DAY_RATE_RAD_S * t)
    order = np.argsort(lat)
    return np.asarray(lat)[order], np.degrees(lon)[order]


_TRACK_LAT, _TRACK_LON = tabulate_descending_track()
MAX_LATITUDE_DEG = float(_TRACK_LAT[-1])  # the track turns here (81.48 deg); beyond, it is clipped
# The same track on a uniform grid of latitude, for interpolation by index arithmetic (fast).
_GRID_STEP_DEG = 0.005
_GRID_LAT0 = -math.floor(MAX_LATITUDE_DEG / _GRID_STEP_DEG) * _GRID_STEP_DEG
_GRID_LAT = _GRID_LAT0 + _GRID_STEP_DEG * np.arange(round(-2 * _GRID_LAT0 / _GRID_STEP_DEG) + 1)
_GRID_LON = np.interp(_GRID_LAT, _TRACK_LAT, _TRACK_LON)
_GRID_SLOPE = np.gradient(_GRID_LON, _GRID_STEP_DEG)  # deg of longitude per deg of latitude
_GRID_LON_STEP = np.append(np.diff(_GRID_LON), 0.0)
_GRID_SLOPE_STEP = np.append(np.diff(_GRID_SLOPE), 0.0)
_NEWTON_STEPS = 1  # a second step changes the distance by < 0.03 km within 200 km of the track


def _wrap(lon_deg: np.ndarray) -> np.ndarray:
    return (np.asarray(lon_deg) + 180.0) % 360.0 - 180.0


def _on_grid(lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid index and fraction of latitudes (deg), clipped to the track's latitudes."""
    x = (np.clip(lat_deg, _GRID_LAT[0], _GRID_LAT[-1]) - _GRID_LAT0) * (1.0 / _GRID_STEP_DEG)
    i = np.minimum(x.astype(np.intp), len(_GRID_LAT) - 2)
    return i, x - i


def _interp_grid(table: np.ndarray, step: np.ndarray, i: np.ndarray, frac: np.ndarray) -> np.ndarray:
    return table[i] + frac * step[i]


def ascending_node_lon(relative_orbit: int) -> float:
    """ESA's longitude (deg, -180..180) of the ascending node of ``relative_orbit``."""
    check_relative_orbit(relative_orbit)
    return float(_wrap(ANX_LON_ORBIT_1_DEG - (int(relative_orbit) - 1) * _SHIFT_DEG))


def track_lon(relative_orbit: int, lat_deg: np.ndarray | float) -> np.ndarray:
    """Longitude (deg, -180..180) where the descending track of ``relative_orbit`` crosses the
    geodetic latitude ``lat_deg`` (EPSG:4326; clipped to +-81.5 deg, where the track turns)."""
    node = ascending_node_lon(relative_orbit)
    lat = np.asarray(lat_deg, dtype="float64")
    return _wrap(node + np.interp(lat, _TRACK_LAT, _TRACK_LON))


def cross_track_distance_m(relative_orbit: int, lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Signed distance (m, positive east) from points (EPSG:4326) to the orbit's centre line.

    The foot of the perpendicular on the track is found by Newton steps along the track in the
    local plane of the point (WGS84 radii of curvature at the mean latitude of point and foot, to
    first order), starting at the point's latitude. Within a swath it agrees with the geodesic
    distance to the track to 0.12 km at the swath edge (148 km) from 60 S to 71 N, 0.25 km at 200 km
    (``tests/compositor/test_orbits.py``), 0.4 km at 78 N.
    Vectorised and cheap: one sine, cosine, square root and wrap per point, then table look-ups.
    """
    node = ascending_node_lon(relative_orbit)
    lat = np.asarray(lat_deg, dtype="float64")
    lon = np.asarray(lon_deg, dtype="float64")
    phi = np.radians(lat)
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    w = np.sqrt(1.0 - WGS84_E2 * sin_phi * sin_phi)
    north_m_per_rad = WGS84_A_M * (1.0 - WGS84_E2) / (w * w * w)  # M (varies < 1e-4 over a swath)
    east_m_per_rad = WGS84_A_M / w * cos_phi  # N cos(phi), whose derivative is -M sin(phi)
    i, frac = _on_grid(lat)
    offset_at_point = _interp_grid(_GRID_LON, _GRID_LON_STEP, i, frac)
    dlon_at_point = np.radians(_wrap(lon - node - offset_at_point))
    de, dn, k_east, dfoot = dlon_at_point * east_m_per_rad, 0.0, east_m_per_rad, 0.0
    for step in range(_NEWTON_STEPS + 1):
        te = _interp_grid(_GRID_SLOPE, _GRID_SLOPE_STEP, i, frac) * k_east  # track direction
        inv = 1.0 / np.sqrt(te * te + north_m_per_rad * north_m_per_rad)
        te, tn = te * inv, north_m_per_rad * inv
        if step == _NEWTON_STEPS:
            break
        dfoot = dfoot + (de * te + dn * tn) * tn / north_m_per_rad  # foot moved by the along-track part
        i, frac = _on_grid(lat + np.degrees(dfoot))
        k_east = east_m_per_rad - (0.5 * north_m_per_rad * sin_phi) * dfoot  # N cos at the mean latitude
        offset = _interp_grid(_GRID_LON, _GRID_LON_STEP, i, frac)
        de = (dlon_at_point - np.radians(offset - offset_at_point)) * k_east
        dn = -dfoot * north_m_per_rad
    return de * tn - dn * te


def in_swath(relative_orbit: int, lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Whether points (EPSG:4326) lie within the orbit's swath (``SWATH_HALF_WIDTH_M`` either side)."""
    return np.abs(cross_track_distance_m(relative_orbit, lon_deg, lat_deg)) <= SWATH_HALF_WIDTH_M


def neighbour_orbits(relative_orbit: int) -> tuple[int, int]:
    """The (western, eastern) neighbouring relative orbits, whose swaths overlap this one.

    ``R + 43`` is 43 * 25.17 = 1082.5 deg = 3 turns + 2.52 deg west of ``R``: the next track west.
    """
    check_relative_orbit(relative_orbit)
    west = (relative_orbit - 1 + 43) % ORBITS_PER_CYCLE + 1
    east = (relative_orbit - 1 - 43) % ORBITS_PER_CYCLE + 1
    return west, east


def orbits_covering(lon_deg: float, lat_deg: float) -> list[int]:
    """Relative orbits whose swath contains the point, sorted west to east by their track."""
    lon, lat = np.array(lon_deg, dtype="float64"), np.array(lat_deg, dtype="float64")
    distances = {r: float(cross_track_distance_m(r, lon, lat)) for r in range(1, ORBITS_PER_CYCLE + 1)}
    hits = [r for r, d in distances.items() if abs(d) <= SWATH_HALF_WIDTH_M]
    return sorted(hits, key=lambda r: -distances[r])


def check_relative_orbit(relative_orbit: int) -> None:
    """Raise ``InvalidInputError`` unless ``relative_orbit`` is an integer in 1..143."""
    try:
        valid = int(relative_orbit) == relative_orbit and 1 <= int(relative_orbit) <= ORBITS_PER_CYCLE
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InvalidInputError(f"relative orbit {relative_orbit!r} is not an integer in 1..{ORBITS_PER_CYCLE}")
