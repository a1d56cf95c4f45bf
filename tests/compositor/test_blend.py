"""Blend weights that vanish before an orbit's data end: datatake ends, failed scenes, window independence.

Planted scenes of two orbits between their centre lines; orbit 22's data end mid-window (its
scenes stop there, or its southern scenes fail to read). A numpy reference of the weights comes
from the straight footprint edge (UTM metres); the old weights (inverse distance only) must show
the step the new ones remove. Real footprints (tests/data/footprints) check that weights do not
depend on the window they are computed in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, shape

from compositor.bands import BAND_NAMES
from compositor.blend import (
    LATTICE_STEPS_PER_RAMP,
    Lattice,
    edge_distance_nodes_m,
    lattice_step,
    blend_orbits,
    context_distance_m,
    orbit_weights,
    window_weights,
)
from compositor.catalog import Scene, SceneSearch
from compositor.composite import CompositeOptions, composite_window
from compositor.errors import InvalidInputError
from compositor.block import BlockJob, build_block
from compositor.grid import Block, OutputGrid, pixel_lonlat, reproject_geometry
from compositor.layout import SeasonLayout
from compositor.plan import make_request, plan_build
from compositor.seasons import resolve_season
from compositor.settings import Settings
from compositor.orbits import cross_track_distance_m, track_lon
from compositor.testing.planted import planted_scene

DATA = Path(__file__).resolve().parents[1] / "data" / "footprints"
MARGIN_M, RAMP_M = 5_000.0, 10_000.0
STEP_M = RAMP_M / LATTICE_STEPS_PER_RAMP
RES = 100.0
ROWS = COLS = 256  # one block of a 100 m grid
EDGE_ROW = 200  # orbit 22's data cover rows < EDGE_ROW of the window
PAD = 250  # pixels of data around the window (25 km: beyond the taper's reach)
A, B = 22, 65  # A's data end mid-window; B covers everything
LEVEL = {A: 2000.0, B: 1600.0}


def _place() -> Block:
    """A block of a 100 m UTM grid between the centre lines of orbits 65 and 22 at 47.9 N (both weigh in)."""
    lat = 47.9
    lon = (float(track_lon(A, lat)) + float(track_lon(B, lat))) / 2
    grid = OutputGrid(f"EPSG:{32600 + int((lon + 180) // 6) + 1}", RES, ROWS)
    x, y = reproject_geometry(shapely.Point(lon, lat), "EPSG:4326", grid.crs).coords[0]
    return grid.block(math.floor(x / (RES * ROWS)), math.floor(y / (RES * ROWS)))


BLOCK = _place()
CRS, TRANSFORM = BLOCK.crs, BLOCK.transform


def _values(orbit: int, rows: slice, cols: slice, delta: float) -> np.ndarray:
    """Reflectance DN on window rows/cols (may extend beyond it): a level per orbit and gentle gradients."""
    r = np.arange(rows.start, rows.stop)[:, None]
    c = np.arange(cols.start, cols.stop)[None, :]
    return np.rint(LEVEL[orbit] + delta + 0.2 * r + 0.25 * c).astype(np.uint16)


def _scene(folder: Path, name: str, orbit: int, day: int, rows: slice, mgrs: str, delta: float):
    cols = slice(-PAD, COLS + PAD)
    transform = TRANSFORM @ Affine.translation(cols.start, rows.start)
    value = _values(orbit, rows, cols, delta)
    when = dt.datetime(2022, 6, day, 10, 30, tzinfo=dt.UTC)
    scl = np.full(value.shape, 4, dtype=np.uint8)
    return planted_scene(folder, name, when, orbit, CRS, transform, {b: value for b in BAND_NAMES}, scl, mgrs=mgrs)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Orbit B over everything, orbit A's northern scenes ending at EDGE_ROW, A's southern scenes (corrupt)."""
    folder = tmp_path_factory.mktemp("blend")
    north, south, everything = slice(-PAD, EDGE_ROW), slice(EDGE_ROW - 30, ROWS + PAD), slice(-PAD, ROWS + PAD)
    scenes = {"B": [], "A_north": [], "A_south": []}
    for k, (day, delta) in enumerate(((3, -10.0), (13, 10.0))):
        scenes["B"].append(_scene(folder, f"B_{k}", B, day + 1, everything, "32UQU", delta))
        scenes["A_north"].append(_scene(folder, f"A_{k}_north", A, day, north, "32UPU", delta))
        scenes["A_south"].append(_scene(folder, f"A_{k}_south", A, day, south, "32TPT", delta))
    for scene in scenes["A_south"]:
        Path(scene.hrefs["scl"]).write_bytes(b"II*\x00not a tiff")
    return scenes


CASES = {"datatake_end": ("A_north", "B"), "failed_scene": ("A_north", "A_south", "B")}


def _scenes_of(planted, case):
    return [s for key in CASES[case] for s in planted[key]]


def _readable(planted):
    return {A: [s.footprint for s in planted["A_north"]], B: [s.footprint for s in planted["B"]]}


def _distance_inside_edge_m() -> np.ndarray:
    """(ROWS, 1) distance (m) of pixel centres north of orbit A's data edge (negative south of it)."""
    return ((EDGE_ROW - (np.arange(ROWS) + 0.5)) * RES)[:, None]


def _row_jumps(p50: np.ndarray) -> np.ndarray:
    """(ROWS - 1,) largest absolute difference between a row and the next, over the columns."""
    return np.abs(np.diff(p50.astype(np.float64), axis=0)).max(axis=1)


def _old_blend(planted, case):
    """P50 blended with the old weights (inverse distance only), per-orbit P50s from single-orbit composites."""
    scenes = _scenes_of(planted, case)
    stats, counts = {}, {}
    for orbit in (A, B):
        mine = composite_window([s for s in scenes if s.relative_orbit == orbit], ["red"], CRS, TRANSFORM,
                                (ROWS, COLS))
        stats[orbit], counts[orbit] = mine.stats["red"], mine.counts["red"]
    lon, lat = pixel_lonlat(CRS, TRANSFORM, (ROWS, COLS))
    return blend_orbits(stats, counts, {o: orbit_weights(o, lon, lat) for o in (A, B)})[1]


def test_weight_is_zero_before_the_data_edge_and_tapers_smoothly(planted):
    tapered, untapered = window_weights(_readable(planted), CRS, TRANSFORM, (ROWS, COLS),
                                        margin_m=MARGIN_M, ramp_m=RAMP_M)
    inside = _distance_inside_edge_m()
    assert (untapered[A] > 0).all() and (untapered[B] > 0).all()
    # Zero from the margin (less one lattice step: interpolation) up to and beyond the edge.
    assert (tapered[A][(inside < MARGIN_M - STEP_M).ravel()] == 0).all()
    # On the ramp: the smooth step of the distance to the edge (numpy reference from the straight edge).
    u = np.clip((inside - MARGIN_M) / RAMP_M, 0, 1)
    expected = u * u * (3 - 2 * u)
    np.testing.assert_allclose(tapered[A] / untapered[A], np.broadcast_to(expected, (ROWS, COLS)), atol=0.005)
    assert ((0 < expected) & (expected < 1)).sum() >= 90  # the ramp is inside the window
    # B's footprints reach far beyond the window: its weight is the inverse distance everywhere.
    np.testing.assert_array_equal(tapered[B], untapered[B])


def test_weights_follow_inverse_distance_inside(planted):
    """Beyond the taper's reach the weight is max(0, d^-p - h^-p) of the per-pixel centre-line distance."""
    tapered, _ = window_weights(_readable(planted), CRS, TRANSFORM, (ROWS, COLS), margin_m=MARGIN_M, ramp_m=RAMP_M,
                                power=2.0)
    lon, lat = pixel_lonlat(CRS, TRANSFORM, (ROWS, COLS))
    full = (_distance_inside_edge_m() > MARGIN_M + RAMP_M + STEP_M).ravel()
    assert full.sum() >= 40
    for orbit in (A, B):
        reference = orbit_weights(orbit, lon, lat, 2.0)
        np.testing.assert_allclose(tapered[orbit][full], reference[full], rtol=1e-5)
    ratio = tapered[A][full] / tapered[B][full]
    assert ratio.min() < 0.9 * ratio.max()  # the weights vary across the window: inverse distance, not flat


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_step_where_an_orbit_s_data_end(planted, case):
    """The blended P50 jumps across A's data edge no more than between neighbouring rows elsewhere;
    the old weights give a step there (so the test can fail)."""
    scenes = _scenes_of(planted, case)
    result = composite_window(scenes, ["red"], CRS, TRANSFORM, (ROWS, COLS))
    if case == "failed_scene":
        assert set(result.skipped) == {s.id for s in planted["A_south"]}
    p50 = result.stats["red"][1]
    assert np.isfinite(p50).all()
    jumps, old_jumps = _row_jumps(p50), _row_jumps(_old_blend(planted, case))
    at_edge = EDGE_ROW - 1  # between the last row with A's data and the first without
    elsewhere = np.r_[jumps[:40], jumps[EDGE_ROW + 10:]]  # far from the edge: no taper, no edge
    assert jumps[at_edge] <= 2 * elsewhere.max(), (jumps[at_edge], elsewhere.max())
    assert old_jumps[at_edge] > 20 * elsewhere.max(), (old_jumps[at_edge], elsewhere.max())
    # On the ramp (100 rows) the change is spread out: no row jumps by 3 % of the orbits' difference
    # (the old weights jump by more than half of it at once).
    assert jumps.max() <= 0.03 * (LEVEL[A] - LEVEL[B]), jumps.max()
    assert old_jumps[at_edge] > 0.5 * (LEVEL[A] - LEVEL[B])
    # South of the edge only B is left; north of the ramp both weigh in.
    np.testing.assert_allclose(p50[EDGE_ROW:], _values(B, slice(EDGE_ROW, ROWS), slice(0, COLS), 0.0), atol=0.51)
    assert (np.abs(p50[:40] - _values(B, slice(0, 40), slice(0, COLS), 0.0)) > 50).all()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_window_in_strips_or_halves_gives_the_same_pixels(planted, case):
    """Given the same footprints, strips and halves of a window composite to its pixels exactly. (A scene
    that fails is known only where it is read: strips that do not read it are checked at block level.)"""
    scenes = _scenes_of(planted, case)
    bands = ["red", "swir22"]

    def part(rows: slice, cols: slice):
        transform = TRANSFORM @ Affine.translation(cols.start, rows.start)
        shape_ = (rows.stop - rows.start, cols.stop - cols.start)
        return composite_window(scenes, bands, CRS, transform, shape_, footprints=scenes)

    whole = part(slice(0, ROWS), slice(0, COLS))
    halves = [part(slice(0, ROWS), slice(a, b)) for a, b in ((0, 128), (128, COLS))]
    for band in bands:
        np.testing.assert_array_equal(np.concatenate([h.stats[band] for h in halves], axis=2), whole.stats[band])
        np.testing.assert_array_equal(np.concatenate([h.counts[band] for h in halves], axis=1), whole.counts[band])
    if case == "datatake_end":
        strips = [part(slice(a, b), slice(0, COLS)) for a, b in ((0, 64), (64, 192), (192, ROWS))]
        for band in bands:
            np.testing.assert_array_equal(np.concatenate([s.stats[band] for s in strips], axis=1), whole.stats[band])


def test_a_block_with_a_failed_scene_is_the_same_in_any_strips(planted, tmp_path):
    """The first strips do not read A's southern scenes (the northern ones cover them) and count their
    footprints; when a later strip finds they fail, the block composites those strips again."""
    scenes = tuple(_scenes_of(planted, "failed_scene"))
    pixels = {}
    for strip_rows in (64, ROWS):
        layout = SeasonLayout(tmp_path / str(strip_rows), resolve_season("2022-summer"), CRS, RES)
        result = build_block(BlockJob(layout, BLOCK, scenes, ("red",), strip_rows=strip_rows))
        assert result.status == "built" and set(result.skipped_scenes) == {s.id for s in planted["A_south"]}
        with rasterio.open(str(layout.block_file(BLOCK.id, "red", "p50"))) as src:
            pixels[strip_rows] = src.read(1)
    np.testing.assert_array_equal(pixels[64], pixels[ROWS])


# --- real footprints: a block of the product grid --------------------------------------------------


def _real_footprints() -> dict[int, list]:
    prints: dict[int, list] = {}
    for line in (DATA / "r079_r122_styria.jsonl").read_text().splitlines():
        item = json.loads(line)
        prints.setdefault(item["relative_orbit"], []).append(shape(item["geometry"]))
    return prints


def _near(prints: dict[int, list], crs: str, transform: Affine, shape_: tuple[int, int]) -> dict[int, list]:
    """The footprints within the context distance of a window, as the plan hands them to a block."""
    h, w = shape_
    bounds = (transform.c, transform.f + h * transform.e, transform.c + w * transform.a, transform.f)
    area = reproject_geometry(box(*bounds).buffer(context_distance_m(MARGIN_M, RAMP_M)).segmentize(2000), crs,
                              "EPSG:4326")
    return {o: [f for f in fs if f.intersects(area)] for o, fs in prints.items()}


def test_block_weights_do_not_depend_on_the_window(record_property):
    """A 2048 px block at 30 m (EPSG:3035) where both orbits' real footprints end: its weights computed
    whole, in 512-row strips and as two half-blocks, each given only the footprints near it, are equal."""
    block = OutputGrid("EPSG:3035", 30.0, 2048).block_by_id("c79_r46")
    prints = _real_footprints()

    def weights(rows: slice, cols: slice):
        transform = block.transform @ Affine.translation(cols.start, rows.start)
        shape_ = (rows.stop - rows.start, cols.stop - cols.start)
        started = time.perf_counter()
        tapered, _ = window_weights(_near(prints, block.crs, transform, shape_), block.crs, transform, shape_,
                                    margin_m=MARGIN_M, ramp_m=RAMP_M)
        return tapered, time.perf_counter() - started

    whole, _ = weights(slice(0, 2048), slice(0, 2048))
    strips = [weights(slice(r, r + 512), slice(0, 2048)) for r in range(0, 2048, 512)]
    halves = [weights(slice(0, 2048), slice(c, c + 1024)) for c in (0, 1024)]
    for orbit in (79, 122):
        np.testing.assert_array_equal(np.concatenate([s[orbit] for s, _ in strips], axis=0), whole[orbit])
        np.testing.assert_array_equal(np.concatenate([h[orbit] for h, _ in halves], axis=1), whole[orbit])
    _, untapered = window_weights(prints, block.crs, block.transform, block.shape, margin_m=MARGIN_M, ramp_m=RAMP_M)
    ratio = np.divide(whole[79], untapered[79], out=np.zeros_like(whole[79]), where=untapered[79] > 0)
    assert (ratio == 0).mean() > 0.2 and ((ratio > 0) & (ratio < 1)).mean() > 0.1  # edges cross this block
    record_property("weights_per_strip_s", round(max(t for _, t in strips), 3))


def test_taper_settings_are_checked_and_fingerprinted():
    with pytest.raises(InvalidInputError, match="margin"):
        CompositeOptions(blend_edge_margin_m=-1.0)
    with pytest.raises(InvalidInputError, match="ramp"):
        CompositeOptions(blend_edge_ramp_m=0.0)
    default = CompositeOptions()
    assert default.fingerprint() != dataclasses.replace(default, blend_edge_ramp_m=8000.0).fingerprint()
    assert default.fingerprint() != dataclasses.replace(default, blend_edge_margin_m=3000.0).fingerprint()


def _stub_scene(name: str, orbit: int, footprint) -> Scene:
    return Scene(id=name, datetime=dt.datetime(2022, 7, 1, 10, 30, tzinfo=dt.UTC), relative_orbit=orbit,
                 mgrs_tile="33TWN", crs="EPSG:32633", footprint=footprint, cloud_cover=1.0,
                 processing_baseline="04.00", offset_applied=True, hrefs={}, platform="sentinel-2a")


def test_plan_gives_each_block_the_footprints_near_it(tmp_path):
    """A block reads the scenes touching it and gets the footprints of those within the taper's reach."""
    settings = Settings(data_dir=tmp_path, catalog=str(tmp_path / "catalog.json"), resolution_m=100.0,
                        block_size_px=256)
    request = make_request(settings, "2022-summer", (15.40, 47.00, 15.41, 47.01))
    (block,) = request.grid.blocks_for_bbox(request.bbox_4326)
    xmin, ymin, xmax, ymax = block.bounds
    reach = context_distance_m(settings.blend_edge_margin_m, settings.blend_edge_ramp_m)

    def east_of_block(gap_m: float):  # a 20 km square this far east of the block (EPSG:3035)
        return reproject_geometry(box(xmax + gap_m, ymin, xmax + gap_m + 20_000, ymax).segmentize(1000),
                                  block.crs, "EPSG:4326")

    scenes = [_stub_scene("touching", 79, reproject_geometry(box(xmin, ymin, xmin + 5000, ymax), block.crs,
                                                             "EPSG:4326")),
              _stub_scene("near", 79, east_of_block(0.5 * reach)), _stub_scene("far", 122, east_of_block(2 * reach))]
    searched = []

    class Catalog:  # the request's scene query, answering for the catalog
        def search(self, bbox, season):
            searched.append(box(*bbox))
            return SceneSearch(scenes)

    (job,) = plan_build(dataclasses.replace(request, query=Catalog())).jobs
    assert [s.id for s in job.scenes] == ["touching"] and [s.id for s in job.nearby] == ["near"]
    assert searched[0].contains(scenes[1].footprint.centroid)  # the search covers the reach around the blocks


def test_blend_falls_back_to_untapered_then_equal_weights():
    """Pixel 0: tapered weights apply. Pixel 1: both tapered weights 0 -> untapered ratio. Pixel 2: all 0 -> mean."""
    stats = {A: np.array([[[10.0, 10.0, 10.0]]]), B: np.array([[[20.0, 20.0, 20.0]]])}
    counts = {A: np.ones((1, 3)), B: np.ones((1, 3))}
    tapered = {A: np.array([[1.0, 0.0, 0.0]]), B: np.array([[3.0, 0.0, 0.0]])}
    untapered = {A: np.array([[1.0, 3.0, 0.0]]), B: np.array([[3.0, 1.0, 0.0]])}
    blended = blend_orbits(stats, counts, tapered, untapered)[0, 0]
    np.testing.assert_allclose(blended, [17.5, 12.5, 15.0])
    np.testing.assert_allclose(blend_orbits(stats, counts, tapered)[0, 0], [17.5, 15.0, 15.0])


@pytest.mark.parametrize("z", [9, 12])
def test_web_mercator_tile_distances_do_not_depend_on_the_strips(z):
    """A tile's transform is not a round number: its strips (origin + rows * size, rounded) still get the
    float64 edge and centre-line distances of the whole tile, bit for bit, hence the same weights."""
    import morecantile
    from rasterio.transform import from_bounds

    tms = morecantile.tms.get("WebMercatorQuad")
    transform = from_bounds(*tms.xy_bounds(tms.tile(15.75, 47.2, z)), 256, 256)
    prints = _real_footprints()
    step = lattice_step("EPSG:3857", RAMP_M)

    def distances(t: Affine, shape_: tuple[int, int]) -> np.ndarray:
        lattice = Lattice("EPSG:3857", t, shape_, step)
        lon, lat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True).transform(lattice.x, lattice.y)
        edge = lattice.interpolate(edge_distance_nodes_m(prints[79], "EPSG:3857", lattice, MARGIN_M + RAMP_M))
        return np.stack([edge, lattice.interpolate(cross_track_distance_m(122, lon, lat))])

    whole = distances(transform, (256, 256))
    parts = [distances(transform @ Affine.translation(c, r), (h, w))
             for r, h, c, w in ((0, 85, 0, 256), (85, 86, 0, 256), (171, 85, 0, 128), (171, 85, 128, 128))]
    bottom = np.concatenate([parts[2], parts[3]], axis=2)
    np.testing.assert_array_equal(np.concatenate([parts[0], parts[1], bottom], axis=1), whole)
    started = time.perf_counter()
    window_weights(prints, "EPSG:3857", transform, (256, 256), margin_m=MARGIN_M, ramp_m=RAMP_M)
    assert time.perf_counter() - started < 5.0
