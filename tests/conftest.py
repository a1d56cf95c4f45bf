"""Shared fixtures: the real Earth Search sample scene, planted COG scenes, synthetic archives."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("S2SEASONS_SAMPLES", REPO.parent / "shared" / "samples"))
SAMPLE_DIR = SAMPLES / "earth-search-S2A_29RKH_20200219_L2A"
SAMPLE_FILES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12", "scl": "SCL"}
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
