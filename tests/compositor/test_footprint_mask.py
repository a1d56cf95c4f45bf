"""Cloud edges: an output pixel is valid only where no invalid SCL pixel lies under its footprint.

Planted real COGs with 10 m bands and a 20 m SCL (the Sentinel-2 layout); the references are
numpy (block means, np.percentile 'linear') and shapely (pixel footprints), never the code's warp.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import Polygon, box
from shapely.strtree import STRtree

from compositor.bands import BAND_NAMES
from compositor.composite import CompositeOptions, composite_window
from compositor.mask import disk_offsets, valid_scl_lookup
from compositor.read import read_scl_footprint
from compositor.settings import DEFAULT_MASK_CLASSES, Settings
from compositor.testing.planted import planted_scene

CRS = "EPSG:32632"
X0, Y0 = 690_000.0, 5_310_000.0  # about 11.55 E, 47.9 N; a multiple of 60 m: the 10, 20 and 30 m grids align
BANDS_10M = Affine(10.0, 0.0, X0, 0.0, -10.0, Y0)
SCL_20M = Affine(20.0, 0.0, X0, 0.0, -20.0, Y0)
OUT_30M = Affine(30.0, 0.0, X0, 0.0, -30.0, Y0)
H30, W30 = 24, 30
H10, W10 = 3 * H30, 3 * W30
H20, W20 = H10 // 2, W10 // 2
CLEAR, CLOUD, SHADOW = 4, 9, 3
START = dt.datetime(2021, 6, 1, 10, 30, tzinfo=dt.UTC)  # baseline 03.01, no offset


def _scene(folder, name, day, refl, scl, *, orbit=65, mgrs="32UQU"):
    bands = {b: np.where(np.repeat(np.repeat(scl, 2, 0), 2, 1) == 0, 0, refl[b]).astype(np.uint16) for b in BAND_NAMES}
    return planted_scene(folder, name, START + dt.timedelta(days=day), orbit, CRS, BANDS_10M, bands, scl,
                         mgrs=mgrs, scl_transform=SCL_20M)


def _blobs(rng, shape, n, max_side=3):
    """SCL 20 m: clear, with ``n`` small rectangles of cloud or shadow at random (cloud-edge) positions."""
    scl = np.full(shape, CLEAR, dtype=np.uint8)
    for _ in range(n):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        scl[r:r + rng.integers(1, max_side + 1), c:c + rng.integers(1, max_side + 1)] = rng.choice([CLOUD, SHADOW])
    return scl


def _block_means(a10):
    """Mean of each 3x3 block of a 10 m array: the 30 m pixel."""
    return a10.reshape(a10.shape[0] // 3, 3, a10.shape[1] // 3, 3).mean(axis=(1, 3))


def _invalid_30m(scl20, invalid_classes=DEFAULT_MASK_CLASSES):
    """Reference footprint rule on aligned grids: a 30 m pixel is invalid when any 10 m cell under it
    lies in an invalid (or no-data) 20 m SCL pixel."""
    bad20 = np.isin(scl20, list(invalid_classes)) | (scl20 == 0)
    bad10 = np.repeat(np.repeat(bad20, 2, 0), 2, 1)
    return bad10.reshape(H30, 3, W30, 3).any(axis=(1, 3))


def _invalid_centre(scl20, invalid_classes=DEFAULT_MASK_CLASSES):
    """The old rule: the one 20 m SCL pixel under the 30 m pixel's centre."""
    centre_rows = (np.arange(H30) * 30 + 15) // 20
    centre_cols = (np.arange(W30) * 30 + 15) // 20
    scl = scl20[np.ix_(centre_rows, centre_cols)]
    return np.isin(scl, list(invalid_classes)) | (scl == 0)


@pytest.fixture(scope="module")
def planted_30m(tmp_path_factory):
    folder = tmp_path_factory.mktemp("footprint")
    rng = np.random.default_rng(12)
    scenes, truth = [], []
    for i in range(11):
        refl = {b: rng.integers(1, 6000, (H10, W10), dtype=np.uint16) for b in BAND_NAMES}
        scl = _blobs(rng, (H20, W20), 14)
        if i == 3:  # the data stop at a 20 m edge (x = 280 m) that splits a 30 m pixel (270..300)
            scl[:, 14:] = 0
        scenes.append(_scene(folder, f"S_{i}", 2 * i, refl, scl))
        truth.append((refl, scl))
    return scenes, truth


def test_30m_p_is_linear_percentile_of_3x3_means_over_clear_footprint_scenes(planted_30m):
    scenes, truth = planted_30m
    result = composite_window(scenes, ["red", "swir16"], CRS, OUT_30M, (H30, W30),
                              CompositeOptions(mask_buffer_m=0.0, blend=False))
    for band in ("red", "swir16"):
        stack = np.stack([np.where(_invalid_30m(scl), np.nan, _block_means(refl[band].astype(np.float64)))
                          for refl, scl in truth])
        ref = np.nanpercentile(stack, [25, 50, 75], axis=0, method="linear")
        np.testing.assert_array_equal(result.counts[band], np.sum(~np.isnan(stack), axis=0))
        # The bands are averaged into uint16 by the warp: each mean is within rounding (0.5 DN) of numpy's.
        np.testing.assert_allclose(result.stats[band], ref, atol=0.5 + 1e-3, equal_nan=True)
    # The planted clouds sit where the old centre-pixel rule judges differently: the test can tell the rules apart.
    changed = sum(int((_invalid_30m(scl) != _invalid_centre(scl)).sum()) for _, scl in truth)
    assert changed > 100


def test_scene_with_data_over_part_of_a_pixel_does_not_count_there(planted_30m):
    scenes, truth = planted_30m
    scl = truth[3][1]
    mask = read_scl_footprint(scenes[3].hrefs["scl"], CRS, OUT_30M, (H30, W30), valid_scl_lookup(DEFAULT_MASK_CLASSES), 0.0)
    # Data end at x = 280 m (20 m column 14): 30 m columns 0-8 are covered whole, column 9 only in part.
    assert mask.covered[:, :9].all() and not mask.covered[:, 9:].any()
    np.testing.assert_array_equal(mask.clear, ~_invalid_30m(scl))


def test_one_invalid_20m_pixel_touching_corners_invalidates_the_four_30m_pixels(tmp_path):
    scl = np.full((H20, W20), CLEAR, dtype=np.uint8)
    scl[7, 10] = CLOUD  # x 200..220 m, y -140..-160 m: the corners of 30 m pixels (rows 4-5, columns 6-7)
    refl = {b: np.full((H10, W10), 500, dtype=np.uint16) for b in BAND_NAMES}
    scene = _scene(tmp_path, "corner", 0, refl, scl)
    mask = read_scl_footprint(scene.hrefs["scl"], CRS, OUT_30M, (H30, W30), valid_scl_lookup(DEFAULT_MASK_CLASSES), 0.0)
    expected = np.ones((H30, W30), dtype=bool)
    expected[4:6, 6:8] = False  # each overlaps the cloud pixel by 10 m x 10 m only
    np.testing.assert_array_equal(mask.clear, expected)
    assert mask.covered.all()
    result = composite_window([scene], ["red"], CRS, OUT_30M, (H30, W30), CompositeOptions(mask_buffer_m=0.0))
    np.testing.assert_array_equal(result.counts["red"], expected.astype(np.uint16))


@pytest.mark.parametrize("buffer_m", [0.0, 59.0, 61.0, 100.0])
def test_buffer_is_a_disk_of_pixel_centres(tmp_path, buffer_m):
    scl = np.full((H20, W20), CLEAR, dtype=np.uint8)
    r0, c0 = 18, 22
    scl[r0, c0] = CLOUD
    refl = {b: np.full((H10, W10), 500, dtype=np.uint16) for b in BAND_NAMES}
    scene = _scene(tmp_path, "disk", 0, refl, scl)
    # On the 20 m SCL grid itself, each output pixel is one SCL pixel: the grown mask shows as it is.
    mask = read_scl_footprint(scene.hrefs["scl"], CRS, SCL_20M, (H20, W20), valid_scl_lookup(DEFAULT_MASK_CLASSES),
                              buffer_m)
    rows, cols = np.mgrid[0:H20, 0:W20]
    distance_m = np.hypot((rows - r0) * 20.0, (cols - c0) * 20.0)
    np.testing.assert_array_equal(mask.clear, distance_m > buffer_m)
    if buffer_m == 61.0:  # 60 m (3 pixels east) just inside, 63.2 m (3 east, 1 south) just outside
        assert not mask.clear[r0, c0 + 3] and mask.clear[r0 + 1, c0 + 3] and not mask.clear[r0 + 2, c0 + 2]
    if buffer_m == 59.0:
        assert mask.clear[r0, c0 + 3] and not mask.clear[r0 + 2, c0 + 2]  # 56.6 m


def test_buffer_does_not_grow_the_data_edge(tmp_path):
    """No data is not cloud: a scene's data edge is not pushed inwards by the buffer."""
    scl = np.full((H20, W20), CLEAR, dtype=np.uint8)
    scl[:, 30:] = 0
    refl = {b: np.full((H10, W10), 500, dtype=np.uint16) for b in BAND_NAMES}
    scene = _scene(tmp_path, "edge", 0, refl, scl)
    mask = read_scl_footprint(scene.hrefs["scl"], CRS, OUT_30M, (H30, W30), valid_scl_lookup(DEFAULT_MASK_CLASSES), 100.0)
    assert mask.clear[:, :20].all() and not mask.covered[:, 20:].any()


def test_disk_offsets_use_metres_on_non_square_pixels():
    disk = disk_offsets(20.0, 10.0, 20.0)
    assert disk.shape == (3, 5)
    np.testing.assert_array_equal(disk, [[0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]])


def test_same_acquisition_in_two_tiles_first_covering_scene_decides(tmp_path):
    """West tile (first in id order): data to x = 320 m, a cloud at x 160..180; east tile: data from
    x = 120 m, clear, another value. 30 m column 10 (x 300..330) is only partly covered by the west
    tile, so the east tile decides it; the west tile's cloud stays cloud though the east tile is clear."""
    west = np.full((H20, W20), CLEAR, dtype=np.uint8)
    west[:, 16:] = 0  # 30 m columns 0-9 covered whole, column 10 in part
    west[10, 8] = CLOUD  # x 160..180, y -200..-220: 30 m column 5, rows 6 and 7
    east = np.full((H20, W20), CLEAR, dtype=np.uint8)
    east[:, :6] = 0  # 30 m columns >= 4 covered whole
    scenes = [_scene(tmp_path, "A_32UPU", 0, {b: np.full((H10, W10), 700, dtype=np.uint16) for b in BAND_NAMES},
                     west, mgrs="32UPU"),
              _scene(tmp_path, "A_32UQU", 0, {b: np.full((H10, W10), 900, dtype=np.uint16) for b in BAND_NAMES},
                     east, mgrs="32UQU")]
    result = composite_window(scenes, ["red"], CRS, OUT_30M, (H30, W30), CompositeOptions(mask_buffer_m=0.0))
    count, p50 = result.counts["red"], result.stats["red"][1]
    expected = np.ones((H30, W30), dtype=np.uint16)
    expected[6:8, 5] = 0
    np.testing.assert_array_equal(count, expected)  # one acquisition, counted once, the cloud kept
    assert (p50[:, :10][expected[:, :10] > 0] == 700).all()  # the west tile decides where it covers whole
    assert (p50[:, 10:] == 900).all()  # column 10 (partly west) and beyond: the east tile


def _footprints_in(crs_from, crs_to, transform, shape, densify=8):
    """Each pixel's outline in ``crs_to`` (densified edges), as shapely polygons."""
    from rasterio.warp import transform as warp_transform

    h, w = shape
    t = np.linspace(0, 1, densify + 1)[:-1]
    edge = np.concatenate([np.c_[t, np.zeros_like(t)], np.c_[np.ones_like(t), t],
                           np.c_[1 - t, np.ones_like(t)], np.c_[np.zeros_like(t), 1 - t]])
    polys = []
    for r in range(h):
        for c in range(w):
            cols, rows = c + edge[:, 0], r + edge[:, 1]
            xs, ys = transform @ (cols, rows)
            px, py = warp_transform(crs_from, crs_to, list(xs), list(ys))
            polys.append(Polygon(zip(px, py)))
    return polys


def test_footprint_rule_on_a_non_aligned_target_in_epsg3035(tmp_path):
    rng = np.random.default_rng(5)
    scl = np.full((H20, W20), CLEAR, dtype=np.uint8)
    for r, c in zip(rng.integers(2, H20 - 2, 80), rng.integers(2, W20 - 2, 80)):
        scl[r, c] = CLOUD
    refl = {b: np.full((H10, W10), 500, dtype=np.uint16) for b in BAND_NAMES}
    scene = _scene(tmp_path, "laea", 0, refl, scl)
    # A 30 m grid in EPSG:3035 whose pixel edges fall anywhere on the UTM grid, inside the scene.
    from rasterio.warp import transform as warp_transform

    (x,), (y,) = warp_transform(CRS, "EPSG:3035", [X0 + 100.0], [Y0 - 100.0])
    out_transform = Affine(30.0, 0.0, round(x) + 7.3, 0.0, -30.0, round(y) - 4.1)
    shape = (16, 20)
    mask = read_scl_footprint(scene.hrefs["scl"], "EPSG:3035", out_transform, shape,
                              valid_scl_lookup(DEFAULT_MASK_CLASSES), 0.0)
    clouds = [box(X0 + c * 20, Y0 - (r + 1) * 20, X0 + (c + 1) * 20, Y0 - r * 20) for r, c in np.argwhere(scl == CLOUD)]
    tree = STRtree(clouds)
    overlap, distance_m = np.zeros(shape), np.zeros(shape)
    for i, poly in enumerate(_footprints_in("EPSG:3035", CRS, out_transform, shape)):
        overlap.flat[i] = sum(clouds[j].intersection(poly).area for j in tree.query(poly)) / poly.area
        distance_m.flat[i] = min(cloud.distance(poly) for cloud in clouds)
    assert mask.covered.all()
    assert ((overlap > 0) & (overlap < 0.5)).sum() > 80  # the planted clouds cover many target pixels in part
    # Exact but for the documented box of a rotated footprint (side x sin(rotation), about 0.8 m here):
    # a pixel more than 0.5 m from every cloud pixel is clear, one overlapped over more than 1 % is not.
    far, under = distance_m > 0.5, overlap > 0.01
    assert mask.clear[far].all() and not mask.clear[under].any()
    assert (far | under).mean() > 0.9


def test_unclassified_is_an_opt_in_invalid_class(monkeypatch):
    assert 7 not in Settings().invalid_scl_classes
    assert 7 in Settings(mask_unclassified=True).invalid_scl_classes
    assert 7 in Settings(mask_classes=(0, 1, 3, 7, 8, 9, 10)).invalid_scl_classes
    monkeypatch.setenv("S2SEASONS_MASK_UNCLASSIFIED", "true")
    monkeypatch.setenv("S2SEASONS_MASK_BUFFER_M", "25")
    assert 7 in Settings().invalid_scl_classes and Settings().mask_buffer_m == 25.0
    monkeypatch.delenv("S2SEASONS_MASK_UNCLASSIFIED")
    monkeypatch.setenv("S2SEASONS_MASK_CLASSES", "[0,1,3,7,8,9,10]")
    assert Settings().invalid_scl_classes == (0, 1, 3, 7, 8, 9, 10)


def test_buffer_is_a_setting_carried_into_the_fingerprint():
    from compositor.plan import make_request

    request = make_request(Settings(mask_buffer_m=25.0), "2022-summer", (11.5, 47.8, 11.6, 47.9))
    assert request.options.mask_buffer_m == 25.0
    assert request.options.fingerprint()["mask_buffer_m"] == 25.0
    assert CompositeOptions(mask_buffer_m=0.0).fingerprint() != CompositeOptions(mask_buffer_m=25.0).fingerprint()
    with pytest.raises(ValueError):
        Settings(mask_buffer_m=-1.0)


def test_scl_overviews_are_judged_by_the_same_rule(tmp_path):
    """On the fly reads the SCL overview at the target resolution: every overview pixel under a
    target pixel counts, as at full resolution."""
    from compositor.testing.planted import write_cog

    scl = np.full((1024, 1024), CLEAR, dtype=np.uint8)
    for r, c in np.random.default_rng(3).integers(10, 1000, (40, 2)):
        scl[r:r + 3, c:c + 2] = CLOUD
    path = tmp_path / "scl.tif"
    write_cog(path, scl, CRS, SCL_20M)
    with rasterio.open(path) as src:
        assert src.overviews(1)[0] == 2
    with rasterio.open(path, overview_level=0) as ovr:  # 40 m
        over = ovr.read(1)
    bad = ~valid_scl_lookup(DEFAULT_MASK_CLASSES)[over]
    assert bad.sum() > 10  # fewer than at 20 m: an overview samples the SCL (what on the fly approximates)
    # A 40 m target shifted by half an overview pixel: target (r, c) overlaps overview pixels r..r+1, c..c+1.
    target = Affine(40.0, 0.0, X0 + 20.0, 0.0, -40.0, Y0 - 20.0)
    mask = read_scl_footprint(str(path), CRS, target, (511, 511), valid_scl_lookup(DEFAULT_MASK_CLASSES), 0.0,
                              use_overviews=True)
    expected = ~(bad[:-1, :-1] | bad[1:, :-1] | bad[:-1, 1:] | bad[1:, 1:])
    np.testing.assert_array_equal(mask.clear, expected)


def test_judgement_does_not_depend_on_the_window(tmp_path):
    """A pixel is judged alike in a block, a strip of it or a tile: no seams where windows meet."""
    rng = np.random.default_rng(8)
    scl = _blobs(rng, (H20, W20), 25)
    scl[:, 40:] = 0
    refl = {b: np.full((H10, W10), 500, dtype=np.uint16) for b in BAND_NAMES}
    scene = _scene(tmp_path, "windows", 0, refl, scl)
    from rasterio.warp import transform as warp_transform

    (x,), (y,) = warp_transform(CRS, "EPSG:3035", [X0 + 50.0], [Y0 - 50.0])
    whole_transform = Affine(30.0, 0.0, round(x) + 3.7, 0.0, -30.0, round(y) - 8.9)
    lookup = valid_scl_lookup(DEFAULT_MASK_CLASSES)
    whole = read_scl_footprint(scene.hrefs["scl"], "EPSG:3035", whole_transform, (20, 27), lookup, 40.0)
    assert 0.1 < whole.clear.mean() < 0.9 and not whole.covered.all()
    for r0, c0, h, w in [(0, 0, 7, 27), (7, 0, 13, 27), (5, 11, 9, 9), (19, 26, 1, 1)]:
        part = read_scl_footprint(scene.hrefs["scl"], "EPSG:3035", whole_transform @ Affine.translation(c0, r0),
                                  (h, w), lookup, 40.0)
        np.testing.assert_array_equal(part.clear, whole.clear[r0:r0 + h, c0:c0 + w])
        np.testing.assert_array_equal(part.covered, whole.covered[r0:r0 + h, c0:c0 + w])


def _any_in_boxes(mask: np.ndarray, boxes: tuple[np.ndarray, ...]) -> np.ndarray:
    """True where ``mask`` has a True pixel inside the box: two numpy summed-area lookups (the rule before
    it was compiled)."""
    row0, row1, col0, col1 = boxes
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    return table[row1, col1] - table[row0, col1] - table[row1, col0] + table[row0, col0] > 0


@pytest.mark.parametrize("seed", range(5))
def test_the_compiled_box_judgement_equals_the_summed_area_reference(seed):
    """`_judge_boxes` (one compiled pass) gives what the two numpy summed-area lookups give, boxes of
    every size (empty ones too) at the window's edges included."""
    from compositor.read import _judge_boxes

    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 60, size=2)
    nodata = rng.random((h, w)) < rng.uniform(0, 0.3)
    invalid = (rng.random((h, w)) < rng.uniform(0, 0.3)) | nodata
    out = (17, 23)
    rows = np.sort(rng.integers(0, h + 1, size=(2, *out)), axis=0).astype(np.int32)
    cols = np.sort(rng.integers(0, w + 1, size=(2, *out)), axis=0).astype(np.int32)
    boxes = (rows[0], rows[1], cols[0], cols[1])
    covered, clear = _judge_boxes(nodata, invalid, *boxes)
    expected_covered = ~_any_in_boxes(nodata, boxes)
    np.testing.assert_array_equal(covered, expected_covered)
    np.testing.assert_array_equal(clear, expected_covered & ~_any_in_boxes(invalid, boxes))


@pytest.mark.parametrize("offset_dn", [0, 1000])
@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_store_masked_writes_offset_removed_values_only_where_chosen(offset_dn, dtype):
    """`store_masked` against the rule written out in numpy: offset removed, clipped to 1..65535, no data (0)
    stays 0, pixels not chosen keep what the layer held."""
    from compositor.mask import store_masked

    rng = np.random.default_rng(7)
    band = rng.integers(0, 3000, size=(37, 53)).astype(dtype)
    band[:3] = 0  # no data
    band[3, :10] = offset_dn  # exactly the offset: would be 0, kept as 1
    band[4, :10] = max(1, offset_dn // 2)  # below the offset
    where = rng.random((37, 53)) < 0.6
    layer = rng.integers(1, 9, size=(37, 53)).astype(np.uint16)  # what earlier scenes wrote
    expected = layer.copy()
    values = np.clip(band.astype(np.int64) - offset_dn, 1, 65535)
    values[band == 0] = 0
    expected[where] = values[where]
    store_masked(layer, band, where, offset_dn)
    np.testing.assert_array_equal(layer, expected)
    if offset_dn:
        assert (layer[3, :10][where[3, :10]] == 1).all()


def test_store_masked_refuses_arrays_of_other_shapes():
    from compositor.mask import store_masked

    with pytest.raises(ValueError, match="shapes differ"):
        store_masked(np.zeros((2, 3), np.uint16), np.zeros((3, 2), np.uint16), np.ones((2, 3), bool), 0)
