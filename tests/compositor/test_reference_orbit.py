"""The synthetic generator's swath geometry against ESA's reference orbit and real Sentinel-2 footprints.

References: the node longitudes of ESA's reference orbit scenario files (S2A ``..._0008.EOF``,
S2B ``..._0007.EOF``) and 109 real partial footprints (``tests/data/real-footprints``), whose
edge vertices show where real data end. Nothing here uses the compositor's orbit model.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod, Transformer
from shapely.geometry import shape

from compositor.errors import InvalidInputError
from compositor.seasons import Season
from compositor.testing.synthetic import reference_orbit as ro
from compositor.testing.synthetic.edges import EDGE_OFFSET_MAX_DEG, pass_swath
from compositor.testing.synthetic.schedule import acquisitions_in

REAL_ITEMS = Path(__file__).resolve().parents[1] / "data" / "real-footprints" / "partial-items-35-71N.jsonl"
_GEOD = Geod(ellps="WGS84")
_PLATFORMS = {"sentinel-2a": "S2A", "sentinel-2b": "S2B"}


def real_items() -> list[dict]:
    return [json.loads(line) for line in REAL_ITEMS.read_text().splitlines() if line.strip()]


def tile_side(x: np.ndarray, y: np.ndarray, tolerance_m: float = 40.0) -> np.ndarray:
    """Which side of its MGRS tile a UTM point lies on (1 W, 2 E, 3 N, 4 S; 0: inside the tile).

    Sentinel-2 tiles start 20 m west and north of a 100 km square and are 109.8 km wide, so their
    sides lie at easting 99,980 or 9,780 and northing 20 or 90,220 (mod 100 km).
    """
    xm, ym = np.mod(x, 100_000.0), np.mod(y, 100_000.0)
    side = np.zeros(len(x), dtype=int)
    for value, coord, code in ((99_980.0, xm, 1), (9_780.0, xm, 2), (20.0, ym, 3), (90_220.0, ym, 4)):
        side[np.abs(coord - value) < tolerance_m] = code
    return side


def data_edge_vertices(item: dict) -> np.ndarray:
    """(lon, lat) of the footprint's vertices on a data edge: segments that do not run along a tile side."""
    zone = int(re.search(r"_(\d\d)[C-X][A-Z]{2}_", item["id"]).group(1))
    to_utm = Transformer.from_crs(4326, 32600 + zone, always_xy=True)
    geometry = item["geometry"]
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    found = []
    for polygon in polygons:
        ring = np.asarray(polygon[0], dtype=np.float64)
        x, y = (np.asarray(v) for v in to_utm.transform(ring[:, 0], ring[:, 1]))
        mid = tile_side((x[:-1] + x[1:]) / 2, (y[:-1] + y[1:]) / 2)
        on_edge = np.zeros(len(ring), dtype=bool)
        on_edge[:-1] |= mid == 0
        on_edge[1:] |= mid == 0
        on_edge[0] |= on_edge[-1]
        found.append(ring[:-1][on_edge[:-1]])  # the ring is closed: its last vertex is its first
    return np.concatenate(found)


def edge_distances_km(item: dict) -> dict[str, np.ndarray]:
    """Signed distance (km, > 0 outside the generated swath) of the item's swath-edge vertices, per side.

    Each vertex is placed in view coordinates (time, off-nadir angle); a vertex within 0.7 deg of
    the generated edge angle is on that edge (the others are datatake ends); its distance is the
    geodesic from the generated edge point seen at the same time.
    """
    vertices = data_edge_vertices(item)
    vertices = vertices[(vertices[:, 1] >= 35.0) & (vertices[:, 1] <= 71.0)]
    out = {"west": np.empty(0), "east": np.empty(0)}
    if not len(vertices):
        return out
    orbit = item["relative_orbit"]
    t, theta = ro.view_coordinates(orbit, vertices[:, 0], vertices[:, 1])
    for side, sign in (("west", -1.0), ("east", 1.0)):
        on = np.abs(sign * theta - ro.HALF_ANGLE_DEG) < 0.7
        if not on.any():
            continue
        lon, lat = ro.ground_point(orbit, t[on], np.full(on.sum(), sign * ro.HALF_ANGLE_DEG))
        _, _, dist = _GEOD.inv(lon, lat, vertices[on, 0], vertices[on, 1])
        out[side] = np.where(sign * theta[on] > ro.HALF_ANGLE_DEG, 1.0, -1.0) * np.asarray(dist) / 1000.0
    return out


@pytest.fixture(scope="module")
def edge_medians() -> dict[str, list[float]]:
    """Per side, the median distance of each real item's edge vertices to the generated edge (km)."""
    medians: dict[str, list[float]] = {"west": [], "east": []}
    for item in real_items():
        for side, d in edge_distances_km(item).items():
            if d.size:
                medians[side].append(float(np.median(d)))
    return medians


# --- the reference orbit ----------------------------------------------------------------------


@pytest.mark.parametrize(("orbit", "anx_deg"), [(1, 1.0), (9, 159.601399), (117, 320.720280), (135, 227.573427)])
def test_node_longitudes_are_the_reference_orbit_files(orbit, anx_deg):
    assert ro.anx_longitude_deg(orbit) == pytest.approx(anx_deg, abs=1e-5)
    lon, lat = ro.subsatellite_lonlat(orbit, np.array(0.0))
    assert float(lat) == pytest.approx(0.0, abs=1e-6)
    assert (float(lon) - anx_deg + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-6)


def test_orbit_is_sun_synchronous_and_786_km_high():
    assert ro.SEMI_MAJOR_AXIS_M - 6_378_137.0 == pytest.approx(786_000, abs=3_000)
    assert 98.5 < ro.INCLINATION_DEG < 98.65
    # Earth turns 3600/143 deg under the node per orbit: the next relative orbit is that far west
    lon, _ = ro.subsatellite_lonlat(1, np.array(ro.NODAL_PERIOD_S))
    assert (float(lon) - (1.0 - 3600 / 143) + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-6)


def test_descending_node_of_the_sample_orbit():
    """R037's descending node at about -17.88 deg E, half an orbit after its ascending node."""
    t = ro.time_at_latitude(37, 0.0)
    assert t == pytest.approx(ro.NODAL_PERIOD_S / 2, abs=1.0)
    assert float(ro.subsatellite_lonlat(37, np.array(t))[0]) == pytest.approx(-17.88, abs=0.02)


def test_real_sample_scene_pass():
    """The real sample scene: S2A, R037, absolute orbit 24344, 2020-02-19 about 11:34 UTC at 24.8 N."""
    (acq,) = acquisitions_in(Season(dt.date(2020, 2, 19), dt.date(2020, 2, 19), "day"), (37,))
    assert (acq.platform, acq.absolute_orbit) == ("S2A", 24344)
    real = dt.datetime(2020, 2, 19, 11, 34, 25, 405000, tzinfo=dt.timezone.utc)
    assert abs((acq.sensing_time(24.8) - real).total_seconds()) < 15
    _, theta = ro.view_coordinates(37, np.array([-11.4]), np.array([24.8]))  # tile 29RKH lies in the swath
    assert abs(float(theta[0])) < ro.HALF_ANGLE_DEG


@pytest.mark.parametrize("platform", ["S2A", "S2B"])
def test_absolute_orbits_follow_the_reference_numbering(platform):
    first = {"S2A": 8006, "S2B": 10037}[platform]
    for orbit in (1, 22, 65, 143):
        for cycle in (-30, 0, 17):
            assert (ro.absolute_orbit(platform, orbit, cycle) - first) % 143 + 1 == orbit


def test_view_coordinates_invert_ground_points():
    t = np.array([2100.0, 2250.0, 2400.0])
    theta = np.array([-10.0, 3.0, 10.4])
    lon, lat = ro.ground_point(65, t, theta)
    t2, theta2 = ro.view_coordinates(65, lon, lat)
    np.testing.assert_allclose(t2, t, atol=1e-3)
    np.testing.assert_allclose(theta2, theta, atol=1e-5)


# --- against the real footprints ----------------------------------------------------------------


def test_real_footprints_have_edges_on_both_sides(edge_medians):
    assert len(edge_medians["west"]) >= 40 and len(edge_medians["east"]) >= 15


@pytest.mark.parametrize("side", ["west", "east"])
def test_generated_edges_sit_on_the_real_edges(edge_medians, side, record_property):
    """Median over real items (35-71 N) of their edge vertices' distance to the generated edge: within 2 km.

    The compositor's former model put the tracks about 35 km east of these.
    """
    medians = np.asarray(edge_medians[side])
    median = float(np.median(medians))
    record_property(f"{side}_edge_median_km", round(median, 2))
    print(f"{side} edge: median {median:+.2f} km over {medians.size} items, p10/p90 {np.percentile(medians, [10, 90])}")
    assert abs(median) < 2.0
    assert np.mean(np.abs(medians) < 4.0) > 0.8  # and most items individually


def test_half_swath_is_the_real_148_km():
    t = ro.time_at_latitude(65, 48.0)
    centre = ro.subsatellite_lonlat(65, np.array(t))
    for sign in (-1.0, 1.0):
        edge = ro.ground_point(65, np.array(t), np.array(sign * ro.HALF_ANGLE_DEG))
        assert _GEOD.inv(centre[0], centre[1], edge[0], edge[1])[2] / 1000 == pytest.approx(147.5, abs=1.5)


def test_sensing_times_follow_the_reference_orbit():
    """Each real item's datetime against the generated pass time over its footprint's centroid."""
    residuals = []
    for item in real_items():
        platform = _PLATFORMS.get(item["platform"])
        if platform is None:  # S2C flies another phase
            continue
        when = dt.datetime.fromisoformat(item["datetime"].replace("Z", "+00:00"))
        lat = shape(item["geometry"]).centroid.y
        to_lat = dt.timedelta(seconds=ro.time_at_latitude(item["relative_orbit"], lat))
        first = ro.anx_time(platform, item["relative_orbit"], 0)
        cycle = round((when - first - to_lat) / dt.timedelta(days=ro.CYCLE_DAYS))
        residuals.append((when - ro.anx_time(platform, item["relative_orbit"], cycle) - to_lat).total_seconds())
    residuals = np.abs(residuals)
    assert len(residuals) > 90
    assert np.median(residuals) < 15.0 and np.percentile(residuals, 90) < 30.0  # 30 s: 200 km along track


def test_pass_edges_scatter_like_the_real_ones():
    """Per-pass offsets of the generated edges stay within the real items' date-to-date scatter (+/-2 km)."""
    offsets = [pass_swath(0, 65, f"2022010{k}-R065", (2200.0, 2210.0)).offset_deg for k in range(10)]
    assert max(abs(o) for o in offsets) <= EDGE_OFFSET_MAX_DEG
    assert np.std(offsets) > 0.01


@pytest.mark.parametrize(
    ("call", "hint"),
    [
        (lambda: ro.anx_longitude_deg(144), "use 1 to 143"),
        (lambda: ro.anx_time("S2X", 1, 0), "S2A"),
        (lambda: ro.time_at_latitude(22, 85.0), "-80..80"),
    ],
)
def test_bad_input_says_what_to_change(call, hint):
    with pytest.raises(InvalidInputError, match=hint):
        call()
