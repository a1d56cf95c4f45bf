"""The ground-track model against the real satellite: data edges of real partial footprints.

Reference data (``tests/data/real-footprints/``, see its README): 1,151 real STAC items whose
data footprint is only part of their MGRS tile, and one real full scene of R037. The model's one
fitted parameter, the inclination, was fitted on the edges over 35-71 N; the edges south of 35 N
(equator, southern hemisphere) were not used and check it out of sample.

How edge vertices are picked, per footprint polygon, on each side (west, east) of the centre line:
the vertex farthest from the centre line on that side. It is a real swath edge, not the MGRS
tile's own boundary or a datatake's end, when one of its two polygon edges (at least 500 m long)
runs along the track (it changes the distance to the centre line by less than half its length,
i.e. it is within 30 deg of the track) and is not parallel to a grid axis of the tile's UTM zone
(more than 1 deg off both: an MGRS tile is a square of its UTM grid, while the swath edge runs
8-25 deg off grid north at these latitudes). Vertices on the antimeridian (where footprints
are cut in two) are not edges. The distance of a picked vertex is then measured independently of
``cross_track_distance_m``: the geodesic (WGS84) distance to the centre line ``track_lon``
sampled every 0.001 deg of latitude, signed by which side of the line the vertex lies.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod, Transformer

from compositor.errors import InvalidInputError
from compositor.orbits import (
    ORBITS_PER_CYCLE,
    SWATH_HALF_WIDTH_M,
    SWATH_WIDTH_M,
    ascending_node_lon,
    check_relative_orbit,
    cross_track_distance_m,
    in_swath,
    neighbour_orbits,
    orbits_covering,
    track_lon,
)

DATA = Path(__file__).parent.parent / "data" / "real-footprints"
LAT_RANGE = (35.0, 71.0)
BANDS = [(35.0, 45.0), (45.0, 55.0), (55.0, 71.0)]
OUT_OF_SAMPLE_BANDS = [(-60.0, 0.0), (0.0, 35.0)]
_MGRS = re.compile(r"T?(\d{1,2})([C-X])[A-Z]{2}")
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class EdgeVertex:
    side: str  # "west" or "east"
    relative_orbit: int
    lon: float
    lat: float
    model_m: float  # cross_track_distance_m
    geodesic_m: float  # signed geodesic distance to the centre line


def read_items() -> list[dict]:
    with gzip.open(DATA / "partial-footprints.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


@cache
def utm_of(mgrs_tile: str) -> Transformer | None:
    m = _MGRS.fullmatch(mgrs_tile)
    if m is None:
        return None
    epsg = (32600 if m.group(2) >= "N" else 32700) + int(m.group(1))
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


def is_swath_edge_segment(x: np.ndarray, y: np.ndarray, d: np.ndarray, k: int, j: int) -> bool:
    length = math.hypot(x[j] - x[k], y[j] - y[k])
    if length < 500.0:
        return False
    off_north = math.degrees(math.atan2(abs(x[j] - x[k]), abs(y[j] - y[k])))
    grid_parallel = off_north < 1.0 or off_north > 89.0
    return not grid_parallel and abs(d[j] - d[k]) < 0.5 * length


def pick_edge_vertices(item: dict) -> list[tuple[str, float, float, float]]:
    """(side, lon, lat, model distance m) of the swath-edge vertices of one footprint."""
    to_utm = utm_of(item["mgrs_tile"])
    if to_utm is None:
        return []
    geom = item["geometry"]
    polygons = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    picked = []
    for polygon in polygons:
        ring = np.array(polygon[0][:-1] if polygon[0][0] == polygon[0][-1] else polygon[0], dtype="float64")
        d = cross_track_distance_m(item["relative_orbit"], ring[:, 0], ring[:, 1])
        x, y = (np.asarray(v) for v in to_utm.transform(ring[:, 0], ring[:, 1]))
        n = len(ring)
        for side, k in (("west", int(np.argmin(d))), ("east", int(np.argmax(d)))):
            if (d[k] < 0) != (side == "west") or abs(ring[k, 0]) >= 179.9999:
                continue
            if any(is_swath_edge_segment(x, y, d, k, j) for j in ((k - 1) % n, (k + 1) % n)):
                picked.append((side, float(ring[k, 0]), float(ring[k, 1]), float(d[k])))
    return picked


def geodesic_distance_m(relative_orbit: int, lon: float, lat: float) -> float:
    """Signed (east +) geodesic distance from a point to the model's centre line, by brute force."""
    lats = np.arange(lat - 1.0, lat + 1.0, 0.001)  # the foot is within 0.6 deg of latitude
    lons = track_lon(relative_orbit, lats)
    _, _, dist = _GEOD.inv(np.full_like(lats, lon), np.full_like(lats, lat), lons, lats)
    side = (lon - float(track_lon(relative_orbit, lat)) + 180.0) % 360.0 - 180.0
    return float(np.min(dist)) * math.copysign(1.0, side)


@pytest.fixture(scope="module")
def edges() -> list[EdgeVertex]:
    found = []
    for item in read_items():
        for side, lon, lat, model_m in pick_edge_vertices(item):
            if -60.0 <= lat <= LAT_RANGE[1]:
                r = item["relative_orbit"]
                found.append(EdgeVertex(side, r, lon, lat, model_m, geodesic_distance_m(r, lon, lat)))
    return found


def side_distances_km(edges: list[EdgeVertex], side: str, band: tuple[float, float] = LAT_RANGE) -> np.ndarray:
    return np.array([abs(e.geodesic_m) / 1000.0 for e in edges if e.side == side and band[0] <= e.lat <= band[1]])


@pytest.mark.parametrize("side", ["west", "east"])
def test_swath_edges_sit_at_the_half_width(edges, side):
    """Median distance of the real data edges to the centre line is the half-width, on each side."""
    km = side_distances_km(edges, side)
    assert len(km) >= 150, f"only {len(km)} {side} edge vertices picked"
    assert abs(np.median(km) - SWATH_HALF_WIDTH_M / 1000.0) <= 2.0, f"{side} edges at {np.median(km):.1f} km"
    q25, q75 = np.percentile(km, [25, 75])
    assert q75 - q25 <= 2.5, f"{side} edges spread over an IQR of {q75 - q25:.1f} km"


@pytest.mark.parametrize("band", BANDS + OUT_OF_SAMPLE_BANDS, ids=lambda b: f"{b[0]:.0f}..{b[1]:.0f}N")
@pytest.mark.parametrize("side", ["west", "east"])
def test_swath_edges_sit_at_the_half_width_in_each_latitude_band(edges, side, band):
    """Per band; south of 35 N these are edges the inclination was not fitted on."""
    km = side_distances_km(edges, side, band)
    assert len(km) >= 30, f"only {len(km)} {side} edge vertices in {band}"
    assert abs(np.median(km) - SWATH_HALF_WIDTH_M / 1000.0) <= 2.0, f"{side} edges at {np.median(km):.1f} km in {band}"


def test_cross_track_distance_is_the_geodesic_distance(edges):
    """The fast distance agrees with the brute-force geodesic one at the swath edges."""
    model = np.array([e.model_m for e in edges if LAT_RANGE[0] <= e.lat <= LAT_RANGE[1]])
    geodesic = np.array([e.geodesic_m for e in edges if LAT_RANGE[0] <= e.lat <= LAT_RANGE[1]])
    assert np.all(np.sign(model) == np.sign(geodesic))
    assert np.max(np.abs(model - geodesic)) <= 250.0


def test_descending_node_of_r037_matches_the_sample_scene_timing():
    """R037's descending node from ESA's node longitude agrees with the real scene's time stamp.

    Timing reference: the scene (about 24.8 N) was sensed at its ``datetime``; the satellite
    reaches the equator ``asin(sin(lat_gc) / sin(i)) / 2 pi`` of a nodal period later, at a mean
    local solar time of 10:30 (ESA), so the node lies at ``15 * (10.5 - UTC hours)`` deg E. The
    time stamp is ambiguous by about 7 s (a tile takes 15 s to fly over): 0.03 deg.
    """
    scene = json.loads((DATA / "sample-scene-S2A_29RKH_20200219.json").read_text())
    ring = np.array(scene["geometry"]["coordinates"][0][:-1])
    lat = float(ring[:, 1].mean())
    lat_gc = math.atan((1 - 0.00669438) * math.tan(math.radians(lat)))
    to_node_s = math.asin(math.sin(lat_gc) / math.sin(math.radians(98.6))) / (2 * math.pi) * 864000 / 143
    sensed = datetime.fromisoformat(scene["datetime"])
    node_utc_h = sensed.hour + sensed.minute / 60 + (sensed.second + sensed.microsecond / 1e6 + to_node_s) / 3600
    timed_node_lon = 15.0 * (10.5 - node_utc_h)
    assert float(track_lon(37, 0.0)) == pytest.approx(timed_node_lon, abs=0.05)
    assert in_swath(37, ring[:, 0], ring[:, 1]).all()
    assert 37 in orbits_covering(float(ring[:, 0].mean()), lat)


@pytest.mark.parametrize(("relative_orbit", "esa_anx_deg"), [(1, 1.0), (9, 159.601399), (117, 320.720280),
                                                            (135, 227.573427)])
def test_ascending_nodes_are_esas(relative_orbit, esa_anx_deg):
    """Entries of ESA's reference orbit files (MPL_ORBSCT, operational phase)."""
    assert (ascending_node_lon(relative_orbit) - esa_anx_deg + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("lat", [0.0, 45.0, 60.0])
def test_western_neighbour_is_r_plus_43(lat):
    """ESA: the next track west of R is R + 43, the next east R - 43, 2.52 deg of node apart."""
    for r in range(1, ORBITS_PER_CYCLE + 1):
        offsets = {o: (float(track_lon(o, lat)) - float(track_lon(r, lat)) + 180.0) % 360.0 - 180.0
                   for o in range(1, ORBITS_PER_CYCLE + 1) if o != r}
        nearest_west = max((o for o, d in offsets.items() if d < 0), key=lambda o: offsets[o])
        nearest_east = min((o for o, d in offsets.items() if d > 0), key=lambda o: offsets[o])
        assert neighbour_orbits(r) == (nearest_west, nearest_east) == ((r + 42) % 143 + 1, (r - 44) % 143 + 1)
        assert offsets[nearest_west] == pytest.approx(3 * 360.0 - 43 * 3600.0 / 143, abs=1e-6)  # -2.52 deg


def test_swath_width_is_twice_the_half_width():
    assert SWATH_WIDTH_M == 2 * SWATH_HALF_WIDTH_M


@pytest.mark.parametrize("bad", [0, 144, -3, 2.5, "12", None])
def test_bad_relative_orbit_says_what_to_change(bad):
    with pytest.raises(InvalidInputError, match=r"1\.\.143"):
        check_relative_orbit(bad)
