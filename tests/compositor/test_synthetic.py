"""compositor.testing.synthetic: a small archive (about 0.9 x 0.2 degrees, 300 m pixels, one month).

The bbox crosses the UTM 32/33 boundary (12 E) and relative orbit 65's eastern swath edge
(about 12.2 E: the real Sentinel-2 edge, 147 km east of the track); the month spans the
2022-01-25 baseline change. One archive is built per module (and twice more for the determinism
tests), a few seconds each.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.warp import Resampling, reproject
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import shape

from compositor.errors import InvalidBBoxError, InvalidInputError, SeasonNotFoundError
from compositor.seasons import Season
from compositor.testing.synthetic import DEFAULT_BBOX_4326, ArchiveSummary, generate_archive
from compositor.testing.synthetic.archive import plan_archive
from compositor.testing.synthetic.edges import EDGE_OFFSET_MAX_DEG, EDGE_ZIGZAG_SD_DEG, read_swaths
from compositor.testing.synthetic.geometry import region_for, truth_grid_for
from compositor.testing.synthetic.landcover import build_ground, describe_ground
from compositor.testing.synthetic.reference_orbit import HALF_ANGLE_DEG, view_coordinates
from compositor.testing.synthetic.schedule import acquisitions_in
from compositor.testing.synthetic.tiles import MgrsTile

BBOX = (11.9, 47.85, 12.8, 48.05)
SEASON = Season(dt.date(2022, 1, 10), dt.date(2022, 2, 10), "jan-2022")
PIXEL_M = 300.0
COMMON_KEYS = ("blue", "green", "red", "nir", "swir16", "swir22", "scl")
BAND_KEYS = ("B02", "B03", "B04", "B08", "B11", "B12", "SCL")
SCL_CLEAR = (2, 4, 5, 6, 11)


def build(out: Path, seed: int = 0, workers: int = 1, progress=None) -> ArchiveSummary:
    return generate_archive(
        out, seasons=[SEASON], bbox_4326=BBOX, pixel_size_m=PIXEL_M, seed=seed, workers=workers, progress=progress
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[ArchiveSummary, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    summary = build(tmp_path_factory.mktemp("archive"), progress=lambda done, total: calls.append((done, total)))
    return summary, calls


@pytest.fixture(scope="module")
def summary(archive) -> ArchiveSummary:
    return archive[0]


@pytest.fixture(scope="module")
def items(summary) -> list[dict]:
    return json.loads(summary.catalog_path.read_text())["features"]


def asset(item: dict, common: str) -> dict:
    assets = item["assets"]
    return assets[common] if common in assets else assets[BAND_KEYS[COMMON_KEYS.index(common)]]


def read(summary: ArchiveSummary, item: dict, common: str) -> tuple[np.ndarray, rasterio.Affine, object]:
    with rasterio.open(summary.catalog_path.parent / asset(item, common)["href"]) as src:
        return src.read(1), src.transform, src.crs


def file_hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# --- layout and determinism -------------------------------------------------------------------


def test_summary_lists_what_was_written(summary):
    assert summary.orbits == (22, 65)
    assert summary.seasons == ("jan-2022",)
    assert any(t.startswith("32") for t in summary.tiles) and any(t.startswith("33") for t in summary.tiles)
    written = [p for p in summary.catalog_path.parent.rglob("*") if p.is_file()]
    assert summary.n_files == len(written)
    assert summary.bytes_written == sum(p.stat().st_size for p in written)
    assert summary.n_items == len(json.loads(summary.catalog_path.read_text())["features"])


def test_progress_reaches_total(archive):
    summary, calls = archive
    done = [d for d, _ in calls]
    assert calls[0][0] == 0 and done == sorted(done)
    assert calls[-1] == (summary.n_items, summary.n_items)


def test_same_seed_gives_same_bytes_with_any_workers(summary, tmp_path):
    again = build(tmp_path / "again", workers=2)
    assert file_hashes(again.catalog_path.parent) == file_hashes(summary.catalog_path.parent)


def test_other_seed_gives_other_scenes(summary, items, tmp_path):
    other = build(tmp_path / "other", seed=1)
    assert other.catalog_path.read_bytes() != summary.catalog_path.read_bytes()
    first = items[0]
    other_item = next(i for i in json.loads(other.catalog_path.read_text())["features"] if i["id"] == first["id"])
    assert read(other, other_item, "nir")[0].tobytes() != read(summary, first, "nir")[0].tobytes()


# --- STAC items -----------------------------------------------------------------------------------

REQUIRED_PROPERTIES = (
    "datetime", "platform", "constellation", "eo:cloud_cover", "proj:epsg", "mgrs:utm_zone", "mgrs:latitude_band",
    "mgrs:grid_square", "grid:code", "view:sun_azimuth", "view:sun_elevation", "s2:processing_baseline",
    "s2:product_uri", "earthsearch:boa_offset_applied",
)


@pytest.mark.parametrize("name", REQUIRED_PROPERTIES)
def test_items_have_earth_search_properties(items, name):
    assert all(name in item["properties"] for item in items)


def test_items_are_shaped_like_the_real_sample(items, summary):
    for item in items:
        props = item["properties"]
        assert item["type"] == "Feature" and item["stac_version"] == "1.0.0"
        assert item["collection"] == "sentinel-2-l2a"
        tile = props["grid:code"].removeprefix("MGRS-")
        assert item["id"] == f"S{props['platform'][-2:].upper()}_{tile}_{props['datetime'][:10].replace('-', '')}_0_L2A"
        assert props["mgrs:utm_zone"] == int(tile[:2]) and props["proj:epsg"] == 32600 + int(tile[:2])
        assert props["mgrs:latitude_band"] + props["mgrs:grid_square"] == tile[2:]
        assert f"_T{tile}_" in props["s2:product_uri"] and props["s2:product_uri"].endswith(".SAFE")
        for a in item["assets"].values():
            assert not a["href"].startswith(("/", "http")) and (summary.catalog_path.parent / a["href"]).exists()
            assert a["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
            assert a["raster:bands"][0]["nodata"] == 0 and a["roles"]


def test_assets_have_grid_and_raster_metadata(items):
    item = items[0]
    size = int(round(109_800 / PIXEL_M))
    blue, swir, scl = asset(item, "blue"), asset(item, "swir16"), asset(item, "scl")
    assert blue["proj:shape"] == [size, size] and swir["proj:shape"] == [size // 2, size // 2]
    assert blue["proj:transform"][0] == PIXEL_M and swir["proj:transform"][0] == 2 * PIXEL_M
    assert blue["raster:bands"][0]["data_type"] == "uint16" and blue["raster:bands"][0]["scale"] == 0.0001
    assert scl["raster:bands"][0]["data_type"] == "uint8"


def test_both_asset_key_conventions_occur(items):
    keys = [tuple(sorted(item["assets"])) for item in items]
    assert tuple(sorted(COMMON_KEYS)) in keys and tuple(sorted(BAND_KEYS)) in keys
    assert set(keys) == {tuple(sorted(COMMON_KEYS)), tuple(sorted(BAND_KEYS))}


def test_relative_orbit_is_a_property_on_some_items_only(items):
    with_sat = [i for i in items if "sat:relative_orbit" in i["properties"]]
    assert 0 < len(with_sat) < len(items)
    for item in with_sat:
        assert f"_R{item['properties']['sat:relative_orbit']:03d}_" in item["properties"]["s2:product_uri"]


def test_each_orbit_is_revisited_every_five_days_by_alternating_platforms(items):
    by_orbit: dict[str, dict[str, str]] = {}
    for item in items:
        orbit = item["properties"]["s2:product_uri"].split("_")[4]
        by_orbit.setdefault(orbit, {})[item["properties"]["datetime"][:10]] = item["properties"]["platform"]
    assert set(by_orbit) == {"R022", "R065"}
    for dates in by_orbit.values():
        days = sorted(dates)
        gaps = {(dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days for a, b in zip(days, days[1:])}
        assert gaps == {5}
        assert all(dates[a] != dates[b] for a, b in zip(days, days[1:]))
    assert not set(by_orbit["R022"]) & set(by_orbit["R065"])


def test_baseline_and_offset_flags_follow_the_2022_change(items):
    before = [i for i in items if i["properties"]["datetime"] < "2022-01-25"]
    after = [i for i in items if i["properties"]["datetime"] >= "2022-01-25"]
    assert before and after
    assert all(i["properties"]["s2:processing_baseline"] < "04.00" for i in before)
    assert not any(i["properties"]["earthsearch:boa_offset_applied"] for i in before)
    assert all(i["properties"]["s2:processing_baseline"] == "04.00" for i in after)
    flags = [i["properties"]["earthsearch:boa_offset_applied"] for i in after]
    assert any(flags) and not all(flags)


def clear_blue(summary: ArchiveSummary, item: dict) -> np.ndarray:
    """Blue DN of the pixels whose SCL says vegetation (about 0.02-0.04 reflectance)."""
    blue = read(summary, item, "blue")[0]
    scl = read(summary, item, "scl")[0].repeat(2, axis=0).repeat(2, axis=1)[: blue.shape[0], : blue.shape[1]]
    return blue[scl == 4]


def test_offset_is_in_the_dn_unless_the_item_says_removed(items, summary):
    levels = {}
    for item in items:
        values = clear_blue(summary, item)
        if values.size > 100:
            props = item["properties"]
            has_offset = props["s2:processing_baseline"] >= "04.00" and not props["earthsearch:boa_offset_applied"]
            levels.setdefault(has_offset, []).append(np.median(values))
    assert len(levels[True]) > 2 and len(levels[False]) > 2
    assert min(levels[True]) > 1000 > max(levels[False])
    after = [i for i in items if i["properties"]["datetime"] >= "2022-01-25"]
    with_offset = [i for i in after if not i["properties"]["earthsearch:boa_offset_applied"]]
    removed = [i for i in after if i["properties"]["earthsearch:boa_offset_applied"]]
    assert all(asset(i, "red")["raster:bands"][0]["offset"] == -0.1 for i in with_offset)
    assert all(asset(i, "red")["raster:bands"][0]["offset"] == 0 for i in removed)


def test_cloud_cover_is_computed_from_the_scl(items, summary):
    for item in items[::7]:
        scl = read(summary, item, "scl")[0]
        data = scl[scl > 0]
        expected = 100.0 * np.isin(data, (8, 9, 10)).mean()
        assert item["properties"]["eo:cloud_cover"] == pytest.approx(expected, abs=1e-4)


def test_cloud_cover_ranges_from_clear_to_overcast(items):
    covers = [i["properties"]["eo:cloud_cover"] for i in items]
    assert min(covers) < 5 and max(covers) > 80


# --- geometry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tile", "left", "top", "code"),
    [(MgrsTile(29, 2, 27, "R"), 199_980, 2_800_020, "29RKH"), (MgrsTile(32, 6, 53, "U"), 599_980, 5_400_020, "32UPU")],
)
def test_tiles_are_real_mgrs_tiles(tile, left, top, code):
    assert tile.code == code
    assert tile.polygon_utm().bounds == (left, top - 109_800, left + 109_800, top)


def test_footprints_cover_exactly_the_data(items, summary):
    for item in items[::5]:
        scl, transform, crs = read(summary, item, "scl")
        rows, cols = np.nonzero(scl)
        xs, ys = rasterio.transform.xy(transform, rows, cols)
        lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(xs, ys)
        footprint = shape(item["geometry"]).buffer(0.01)
        inside = np.mean([footprint.contains(shape({"type": "Point", "coordinates": p})) for p in zip(lon, lat)])
        assert inside > 0.99


def test_swath_edge_cuts_tiles_and_their_footprints(items):
    """R065's eastern swath edge runs through the bbox: footprints end on it, 10.43 deg off nadir (147 km)."""
    r065 = [i for i in items if "_R065_" in i["properties"]["s2:product_uri"]]
    reach_deg = []
    limit = HALF_ANGLE_DEG + EDGE_OFFSET_MAX_DEG + 4 * EDGE_ZIGZAG_SD_DEG + 0.05  # 0.05 deg: a 600 m pixel
    for item in r065:
        lon, lat = np.asarray(shape(item["geometry"]).exterior.coords).T
        _, theta = view_coordinates(65, lon, lat)
        assert theta.max() < limit
        reach_deg.append(theta.max())
    assert max(reach_deg) > HALF_ANGLE_DEG - EDGE_OFFSET_MAX_DEG  # some footprint reaches the edge: partly empty tiles
    full_tile = 109.8 * 109.8
    areas = [shape(i["geometry"]).area for i in r065]
    assert all(a < full_tile for a in areas)


def test_ground_does_not_depend_on_the_extent_it_is_built_for():
    x = np.array([4_450_123.0, 4_460_456.0]), np.array([2_750_789.0, 2_745_321.0])
    small = describe_ground(build_ground((4.44e6, 2.74e6, 4.47e6, 2.76e6), seed=3), *x)
    large = describe_ground(build_ground((4.40e6, 2.70e6, 4.52e6, 2.80e6), seed=3), *x)
    for name in ("cover", "brightness", "shift_days", "snowline", "terrain_dark"):
        np.testing.assert_allclose(getattr(small, name), getattr(large, name), rtol=1e-5)


def test_two_orbits_on_different_dates_every_five_days():
    acqs = acquisitions_in(SEASON, (22, 65))
    for orbit in (22, 65):
        days = [a.date for a in acqs if a.relative_orbit == orbit]
        assert {(b - a).days for a, b in zip(days, days[1:])} == {5}
    assert not {a.date for a in acqs if a.relative_orbit == 22} & {a.date for a in acqs if a.relative_orbit == 65}


# --- rasters --------------------------------------------------------------------------------------


def test_scene_files_are_valid_cogs(items, summary):
    for item in items[::11]:
        for a in item["assets"].values():
            valid, errors, _ = cog_validate(str(summary.catalog_path.parent / a["href"]), quiet=True)
            assert valid, errors
            with rasterio.open(summary.catalog_path.parent / a["href"]) as src:
                assert src.nodata == 0 and src.profile["compress"] == "deflate" and src.overviews(1)


def test_scl_has_clouds_shadows_cirrus_clear_and_snow(items, summary):
    seen = set()
    for item in items:
        seen.update(np.unique(read(summary, item, "scl")[0]).tolist())
    assert {0, 3, 4, 5, 6, 7, 8, 9, 10, 11} <= seen


def test_data_is_never_zero_inside_the_footprint(items, summary):
    for item in items[::9]:
        scl = read(summary, item, "scl")[0]
        swir = read(summary, item, "swir16")[0]
        assert np.array_equal(scl > 0, swir > 0)


def cloud_along(scl: np.ndarray, pixels: np.ndarray, azimuth_deg: float, max_steps: int) -> float:
    """Fraction of ``pixels`` (row, col) with a cloud (SCL 8/9) within ``max_steps`` towards ``azimuth_deg``."""
    step_row, step_col = -math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))
    cloudy = np.isin(scl, (8, 9))
    hit = np.zeros(len(pixels), dtype=bool)
    for k in range(1, max_steps + 1):
        r = np.rint(pixels[:, 0] + k * step_row).astype(int)
        c = np.rint(pixels[:, 1] + k * step_col).astype(int)
        ok = (r >= 0) & (r < scl.shape[0]) & (c >= 0) & (c < scl.shape[1])
        hit[ok] |= cloudy[r[ok], c[ok]]
    return float(hit.mean())


def test_shadows_have_their_clouds_towards_the_sun(items, summary):
    """From a shadow pixel, a cloud lies within the shadow length towards the sun, not away from it."""
    max_steps = int(15_000 / (2 * PIXEL_M))  # cloud height 3 km / tan(11 deg)
    sunward, away = [], []
    for item in items:
        scl = read(summary, item, "scl")[0]
        shadows = np.argwhere(scl == 3)
        if len(shadows) < 30:
            continue
        azimuth = item["properties"]["view:sun_azimuth"]
        sunward.append(cloud_along(scl, shadows, azimuth, max_steps))
        away.append(cloud_along(scl, shadows, azimuth + 180, max_steps))
    assert len(sunward) >= 3
    assert np.median(sunward) > 0.8
    assert np.median(sunward) > np.median(away) + 0.2


def dn_offset(item: dict) -> int:
    props = item["properties"]
    return 1000 if props["s2:processing_baseline"] >= "04.00" and not props["earthsearch:boa_offset_applied"] else 0


def test_overlapping_tiles_of_one_acquisition_agree(items, summary):
    """The same acquisition in a zone 32 and a zone 33 tile: same clouds, same values after reprojection."""
    by_date: dict[str, list[dict]] = {}
    for item in items:
        by_date.setdefault(item["properties"]["datetime"][:10], []).append(item)
    compared = 0
    for group in by_date.values():
        z32 = [i for i in group if i["properties"]["mgrs:utm_zone"] == 32]
        z33 = [i for i in group if i["properties"]["mgrs:utm_zone"] == 33]
        for a, b in [(a, b) for a in z32 for b in z33][:2]:
            nir_a, tr_a, crs_a = read(summary, a, "nir")
            nir_b, tr_b, crs_b = read(summary, b, "nir")
            nir_a = np.where(nir_a > 0, nir_a.astype(np.int32) - dn_offset(a) + 10_000, 0)  # stay > 0
            nir_b = np.where(nir_b > 0, nir_b.astype(np.int32) - dn_offset(b) + 10_000, 0)
            warped = np.zeros_like(nir_a)
            reproject(nir_b, warped, src_transform=tr_b, src_crs=crs_b, dst_transform=tr_a, dst_crs=crs_a,
                      src_nodata=0, dst_nodata=0, resampling=Resampling.nearest)
            both = (nir_a > 0) & (warped > 0)
            if both.sum() < 500:
                continue
            diff = np.abs(nir_a[both].astype(float) - warped[both])
            assert np.median(diff) < 0.02 * np.median(nir_a[both] - 10_000)
            assert np.percentile(diff, 75) < 0.1 * np.median(nir_a[both] - 10_000)
            compared += 1
    assert compared >= 3


def test_truth_rasters_hold_plausible_reflectance(summary):
    folder = summary.truth_dir / "jan-2022"
    meta = json.loads((folder / "dates.json").read_text())
    assert meta["dates"] == sorted(meta["dates"]) and len(meta["dates"]) >= 10
    grid = truth_grid_for(BBOX, "EPSG:3035", 200.0)
    medians = {}
    for band in ("blue", "green", "red", "nir", "swir16", "swir22"):
        with rasterio.open(folder / f"{band}_p50.tif") as src:
            assert src.crs.to_epsg() == 3035 and src.res == (200.0, 200.0)
            assert (src.width, src.height) == (grid.width, grid.height)
            data = src.read(1)
        assert (data > 0).all()
        medians[band] = float(np.median(data))
    assert 100 < medians["blue"] < 3000 and 500 < medians["nir"] < 6000
    assert medians["nir"] > medians["red"]
    assert cog_validate(str(folder / "nir_p50.tif"), quiet=True)[0]


def test_default_region_spans_two_orbits_and_two_utm_zones(tmp_path):
    spec = plan_archive(tmp_path, DEFAULT_BBOX_4326, truth_grid_for(DEFAULT_BBOX_4326, "EPSG:3035", 200.0), 100.0, 0)
    assert spec.orbits == (22, 65)
    assert {t.zone for t in spec.tiles} == {32, 33}
    lon = np.linspace(DEFAULT_BBOX_4326[0], DEFAULT_BBOX_4326[2], 50)
    _, theta = view_coordinates(65, lon, np.full_like(lon, 47.9))
    assert theta.min() < HALF_ANGLE_DEG < theta.max()  # R065's eastern swath edge crosses the region


def test_region_covers_the_truth_grid():
    grid = truth_grid_for(BBOX, "EPSG:3035", 200.0)
    region = region_for(BBOX, grid, margin_m=1200.0)
    x0, y0, x1, y1 = grid.bounds
    rx0, ry0, rx1, ry1 = region.bounds_3035
    assert rx0 < x0 and ry0 < y0 and rx1 > x1 and ry1 > y1


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "hint"),
    [
        ({"bbox_4326": (12.0, 48.0, 11.0, 47.0)}, InvalidBBoxError, "west < east"),
        ({"bbox_4326": (11.0, 47.0)}, InvalidBBoxError, "four numbers"),
        ({"bbox_4326": (-100.0, 40.0, -99.0, 41.0)}, InvalidBBoxError, "Europe"),
        ({"seasons": ["2022-monsoon"]}, SeasonNotFoundError, "2019-summer"),
        ({"pixel_size_m": 400.0}, InvalidInputError, "54900"),
        ({"truth_crs": "EPSG:4326"}, InvalidInputError, "projected"),
        ({"workers": -1}, InvalidInputError, "0 for one per core"),
    ],
)
def test_bad_arguments_say_what_to_change(tmp_path, kwargs, error, hint):
    with pytest.raises(error, match=hint):
        generate_archive(tmp_path, **kwargs)
    assert issubclass(error, ValueError)
    assert not any(tmp_path.iterdir())


def test_some_datatakes_end_mid_tile(summary, items):
    """A pass whose datatake ends (or starts) in the region: its scenes hold data on one side of the cut only."""
    swaths = read_swaths(summary.truth_dir / "jan-2022" / "swaths.json")
    cut = [s for s in swaths if s.cut is not None]
    assert cut and len(cut) < len(swaths)
    checked = 0
    for swath in cut:
        day = dt.datetime.strptime(swath.key[:8], "%Y%m%d").date().isoformat()
        orbit = f"_R{swath.relative_orbit:03d}_"
        same_pass = [
            i for i in items if i["properties"]["datetime"][:10] == day and orbit in i["properties"]["s2:product_uri"]
        ]
        for item in same_pass:
            scl, transform, crs = read(summary, item, "scl")
            rows, cols = np.nonzero(scl)
            xs, ys = rasterio.transform.xy(transform, rows, cols)
            lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(xs, ys)
            t, theta = view_coordinates(swath.relative_orbit, np.asarray(lon), np.asarray(lat))
            beyond_s = (t - swath.cut.time_at(theta - swath.offset_deg)) * (1 if swath.cut.ends else -1)
            assert beyond_s.max() < 0.15  # 0.15 s: a 600 m pixel along track
            checked += int(beyond_s.max() > -1.0)  # data reach the cut: the scene ends there
    assert checked >= 1
