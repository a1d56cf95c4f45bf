"""The medoid kernel against its numpy reference and by hand."""

from __future__ import annotations

import numpy as np

from compositor.medoid import NONE, medoid_choice, medoid_choice_numpy, take


def test_medoid_by_hand():
    # one pixel, four observations of two bands: sums of distances 24, 26.1, 26.1, 60.2: the first is the medoid
    values = np.array([[10, 10], [12, 10], [8, 10], [10, 30]], dtype=np.uint16)[:, :, None, None]
    assert medoid_choice(values)[0, 0] == 0
    values[0, 1] = 0  # the first loses a band: it is no observation; the next two tie (24.1): the earlier
    assert medoid_choice(values)[0, 0] == 1
    assert medoid_choice(np.zeros((3, 6, 2, 2), np.uint16)).tolist() == [[NONE, NONE], [NONE, NONE]]
    same = np.array([[5, 5], [5, 5], [9, 9]], dtype=np.uint16)[:, :, None, None]
    assert medoid_choice(same)[0, 0] == 0  # identical observations: the earlier


def test_medoid_equals_numpy_on_random_stacks():
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 17, 40):
        values = rng.integers(1, 4000, size=(n, 6, 23, 19), dtype=np.uint16)
        values[rng.random(values.shape) < 0.04] = 0  # some observations miss a band
        values[:, :, rng.random((23, 19)) < 0.2] *= 0  # some pixels have none... of some observations
        values[rng.random(n) < 0.3] = np.where(rng.random((1, 6, 23, 19)) < 0.5, values[0], 0)  # duplicates
        np.testing.assert_array_equal(medoid_choice(values), medoid_choice_numpy(values))


def test_take_picks_the_chosen_layer():
    layers = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    choice = np.array([[0, 1, NONE, 0]] * 3, dtype=np.int16)
    picked = take(layers, choice)
    assert picked[0, 1] == layers[1, 0, 1] and picked[0, 2] == 0 and picked[2, 3] == layers[0, 2, 3]


def test_a_block_with_the_medoid_holds_one_real_observation_per_pixel(tmp_path):
    """Planted scenes (one orbit; clouds and a half-covered one): every pixel's six medoid bands are the bands of
    one acquisition, the one numpy's reference chooses from the planted arrays, and its day of year is stored."""
    import rasterio

    from compositor.bands import BAND_NAMES
    from compositor.block import BlockJob, build_block
    from compositor.index import built_blocks
    from compositor.layout import SeasonLayout
    from compositor.seasons import resolve_season
    from compositor.settings import DEFAULT_MASK_CLASSES
    from compositor.testing.planted import BLOCK, GRID, SEASON, planted_series

    kinds = ["cloud" if day == 2 else "vegetation" for day in range(6)]
    scenes, planted = planted_series(tmp_path / "scenes", kinds, days_apart=4)
    arrays, days = [], []
    for scene, (stored, scl) in zip(scenes, planted):
        valid = (scl != 0) & ~np.isin(scl, DEFAULT_MASK_CLASSES)
        arrays.append(np.stack([np.where(valid, stored[b], 0) for b in BAND_NAMES]).astype(np.uint16))
        days.append(scene.datetime.timetuple().tm_yday)
    layout = SeasonLayout(tmp_path / "data", resolve_season(SEASON), GRID.crs, GRID.resolution_m)
    job = BlockJob(layout, BLOCK, tuple(scenes), ("red",), products=("bands", "medoid"))
    assert build_block(job).status == "built"
    (built,) = built_blocks(layout, GRID, check_files=True)
    got = {}
    for band in BAND_NAMES:
        with rasterio.open(built.path(layout, band, "medoid")) as src:
            got[band] = src.read(1)
            assert src.nodata == 0 and src.scales[0] == 0.0001 and "medoid" in src.descriptions[0]
    with rasterio.open(built.path(layout, "medoid", "doy")) as src:
        doy = src.read(1)

    stack = np.stack(arrays)  # (6 observations, 6 bands, h, w)
    choice = medoid_choice_numpy(stack)
    for i, band in enumerate(BAND_NAMES):
        np.testing.assert_array_equal(got[band], take(stack[:, i], choice))
    np.testing.assert_array_equal(doy, np.where(choice >= 0, np.array(days)[np.clip(choice, 0, None)], 0))
    assert len(np.unique(doy[doy > 0])) >= 2 and (doy == 0).sum() == (choice == NONE).sum()
