"""Shared fixtures: the real Earth Search sample scene, planted COG scenes, synthetic archives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.samples import SAMPLE_DIR, SAMPLE_FILES
SAMPLE_BBOX = (-11.9, 24.4, -10.9, 25.2)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not SAMPLE_DIR.exists():
        pytest.fail(f"the real sample scene is missing: expected {SAMPLE_DIR} (set S2SEASONS_SAMPLES)")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_scene(sample_dir):
    """The real sample scene (orbit 37, tile 29RKH) with its hrefs mapped to the local files."""
    from compositor.catalog import load_scenes

    scene = load_scenes(sample_dir)[0]
    hrefs = {key: str(sample_dir / f"{name}.tif") for key, name in SAMPLE_FILES.items()}
    return dataclasses.replace(scene, hrefs=hrefs)


# --- a small synthetic season, built ------------------------------------------------------------
# 2022-summer over 60 x 33 km east of Munich: R065's real eastern swath edge (about 12.15 E) crosses
# its middle, R022 covers it all, tiles of UTM zones 32 and 33 overlap. "10 m" bands at 150 m; output
# at 300 m in 256 px blocks.
SYNTH_SEASON = "2022-summer"
SYNTH_BBOX = (11.75, 47.75, 12.55, 48.05)
SYNTH_PIXEL_M = 150.0
SYNTH_RESOLUTION_M = 300.0
SYNTH_BLOCK_PX = 256


@pytest.fixture(scope="session")
def synthetic_archive(tmp_path_factory) -> Path:
    """The synthetic archive's folder (catalog.json, scenes/, truth/)."""
    from compositor.testing.synthetic import generate_archive

    root = tmp_path_factory.mktemp("synthetic-archive")
    generate_archive(root, seasons=(SYNTH_SEASON,), bbox_4326=SYNTH_BBOX, pixel_size_m=SYNTH_PIXEL_M,
                     truth_resolution_m=SYNTH_RESOLUTION_M, seed=3, workers=2)
    return root


def build_synthetic(archive: Path, out: Path, **kwargs):
    """Build SYNTH_SEASON over SYNTH_BBOX from ``archive`` into ``out``; returns the summary."""
    from compositor.build import run_build
    from compositor.settings import Settings

    settings = Settings(data_dir=out, catalog=str(archive / "catalog.json"), resolution_m=SYNTH_RESOLUTION_M,
                        block_size_px=SYNTH_BLOCK_PX)
    options = {"workers": 2, "progress": False, **kwargs}
    return run_build(settings, SYNTH_SEASON, SYNTH_BBOX, **options)


@pytest.fixture(scope="session")
def built_season(synthetic_archive, tmp_path_factory) -> Path:
    """A data folder with SYNTH_SEASON built over SYNTH_BBOX (all bands, orbits blended)."""
    out = tmp_path_factory.mktemp("built-season")
    summary = build_synthetic(synthetic_archive, out)
    assert summary.counts["built"] == len(summary.results) and not summary.failed, summary.describe()
    return out


# --- a season with few observations and its neighbours, gap-filled --------------------------------------
# One orbit (R065) and one MGRS tile (32UNU) west of Munich, across the boundary of two 256 px blocks at 300 m
# ("10 m" bands at 300 m: the smallest scenes), c56_r35 (south) and c56_r36 (north). 2022-summer (the season
# filled) is built from its cloudy scenes only, so that most pixels have fewer than 3 valid observations: the 7 of
# its 16 scenes with an eo:cloud_cover of 40 % or more in the south block, the 5 with 45 % or more in the north
# block (many pixels there never clear); bands red, nir and swir16. 2021-summer (the same season a year before) is
# built from all its scenes in the south block only; 2022-spring (the season before) from all its scenes in both.
# So the south block fills from the year before, and the north block, where no other year is built, from the
# season before. Shared by tests/compositor/test_fill.py, tests/app/test_filled.py and tests/e2e/test_viewer.py.
FILL_SEASON = "2022-summer"
FILL_OTHER_YEAR = "2021-summer"
FILL_ADJACENT = "2022-spring"
FILL_BBOX = (10.02, 47.96, 10.12, 48.04)
FILL_SOUTH_BBOX = (10.02, 47.96, 10.12, 47.98)  # block c56_r35 only
FILL_NORTH_BBOX = (10.02, 48.01, 10.12, 48.04)  # block c56_r36 only
FILL_RESOLUTION_M = 300.0
FILL_BLOCK_PX = 256
FILL_CLOUDY = {FILL_SOUTH_BBOX: 40.0, FILL_NORTH_BBOX: 45.0}  # the least eo:cloud_cover (%) of the scenes kept
FILL_BANDS = ("red", "nir", "swir16")  # a 10 m and a 20 m band and the NDVI's: half the build time of all six


@dataclasses.dataclass(frozen=True)
class FilledSeason:
    archive: Path
    data: Path
    catalog: Path  # every scene
    originals: dict[str, str]  # sha256 of every file of FILL_SEASON's own outputs before the fill
    summary: object  # the fill's FillSummary


def file_hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] != "filled"}


def fill_settings(data: Path, catalog: Path):
    from compositor.settings import Settings

    return Settings(data_dir=data, catalog=str(catalog), resolution_m=FILL_RESOLUTION_M, block_size_px=FILL_BLOCK_PX)


def flagged_pixel(data: Path, flag: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """A pixel of FILL_SEASON's filled variant whose fill flag is ``flag``: its centre in the grid (EPSG:3035) and in
    lon/lat."""
    import numpy as np
    import rasterio
    from rasterio.warp import transform

    from compositor.layout import SeasonLayout
    from compositor.seasons import resolve_season

    filled = SeasonLayout(data, resolve_season(FILL_SEASON), "EPSG:3035", FILL_RESOLUTION_M, "filled")
    with rasterio.open(filled.vrt_file("fill", "flag")) as src:
        rows, cols = np.nonzero(src.read(1) == flag)
        x, y = src.xy(rows[len(rows) // 2], cols[len(cols) // 2])
    lons, lats = transform("EPSG:3035", "EPSG:4326", [x], [y])
    return (x, y), (lons[0], lats[0])


@pytest.fixture(scope="session")
def filled_season(tmp_path_factory) -> FilledSeason:
    """FILL_SEASON and its neighbours built as above, then filled over FILL_BBOX (S2SEASONS_FILL_MIN_OBSERVATIONS=3)."""
    import json

    from compositor.build import run_build
    from compositor.fill import run_fill
    from compositor.testing.synthetic import generate_archive

    archive = tmp_path_factory.mktemp("fill-archive")
    generate_archive(archive, seasons=(FILL_OTHER_YEAR, FILL_ADJACENT, FILL_SEASON), bbox_4326=FILL_BBOX,
                     pixel_size_m=FILL_RESOLUTION_M, truth_resolution_m=FILL_RESOLUTION_M, seed=5)
    catalog = archive / "catalog.json"
    items = json.loads(catalog.read_text())["features"]
    cloudy = {}
    for bbox, least in FILL_CLOUDY.items():
        cloudy[bbox] = archive / f"cloudy-{least:g}.json"
        cloudy[bbox].write_text(json.dumps({"type": "FeatureCollection", "features": [
            f for f in items if f["properties"]["eo:cloud_cover"] >= least]}))
    data = tmp_path_factory.mktemp("fill-data")
    builds = [(FILL_SEASON, scenes, bbox) for bbox, scenes in cloudy.items()]
    builds += [(FILL_OTHER_YEAR, catalog, FILL_SOUTH_BBOX), (FILL_ADJACENT, catalog, FILL_BBOX)]
    for season, scenes, bbox in builds:
        summary = run_build(fill_settings(data, scenes), season, bbox, workers=1, progress=False, bands=FILL_BANDS)
        assert not summary.failed, summary.describe()
    originals = file_hashes(data / FILL_SEASON)
    summary = run_fill(fill_settings(data, catalog), FILL_SEASON, FILL_BBOX, progress=False)
    assert not summary.failed, summary.describe()
    return FilledSeason(archive, data, catalog, originals, summary)
