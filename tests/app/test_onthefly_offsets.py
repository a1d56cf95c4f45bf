"""On the fly, scenes get the same offset data check as in the batch build (`compositor.offsets`)."""

from __future__ import annotations

import time

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from app.cache import SceneCache
from app.onthefly import OnTheFly
from app.registry import SeasonRegistry
from compositor.composite import composite_window
from compositor.offsets import SOURCE_DATA_CHECK, clear_offset_cache
from app.settings import ServerSettings
from compositor.testing.planted import BLOCK, GRID, SEASON, plant


def test_onthefly_composites_with_the_corrected_scene(tmp_path):
    clear_offset_cache()
    mistagged, _ = plant(tmp_path / "scenes", "S2B_33UXP_20250302_0_L2A", data_offset=0, item_offset=1000)
    fine, _ = plant(tmp_path / "scenes", "fine", data_offset=1000, item_offset=1000, day=1)
    seen = []

    def composite(scenes, *args, **kwargs):
        seen.extend(scenes)
        return composite_window(scenes, *args, **kwargs)

    settings = ServerSettings(data_dir=tmp_path / "data", onthefly_workers=1, crs=GRID.crs, resolution_m=GRID.resolution_m,
                        block_size_px=GRID.block_size_px)
    cache = SceneCache(lambda season, bbox: [mistagged, fine], ttl_s=60)
    onthefly = OnTheFly(settings, cache, composite, cache_bytes=0)
    state = SeasonRegistry(settings).get(SEASON)
    try:
        shape = (64, 64)
        result = onthefly.read(state, CRS.from_string(BLOCK.crs), BLOCK.transform @ Affine.scale(4), shape,
                               [("red", "p50")], np.ones(shape, dtype=bool), deadline=time.monotonic() + 60)
    finally:
        onthefly.shutdown()
        clear_offset_cache()
    by_id = {s.id: s for s in seen}
    assert (by_id["S2B_33UXP_20250302_0_L2A"].offset_dn, by_id["S2B_33UXP_20250302_0_L2A"].offset_source) == (
        0, SOURCE_DATA_CHECK)
    assert by_id["fine"].offset_dn == 1000 and by_id["fine"].offset_source != SOURCE_DATA_CHECK
    assert result.n_acquisitions == 2 and result.covered.all() and (result.values["red", "p50"] > 0).any()
