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
