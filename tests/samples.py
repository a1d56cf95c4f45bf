"""Where the real sample scene is: one place for every test (a crop shipped in tests/data/real-sample)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A crop of a real Earth Search scene, shipped with the tests (tests/data/real-sample/README.md);
# S2SEASONS_SAMPLES may name another folder holding earth-search-S2A_29RKH_20200219_L2A/.
SAMPLES = Path(os.environ.get("S2SEASONS_SAMPLES", REPO / "tests" / "data" / "real-sample"))
SAMPLE_DIR = SAMPLES / "earth-search-S2A_29RKH_20200219_L2A"
SAMPLE_ITEM = SAMPLE_DIR / "S2A_29RKH_20200219_0_L2A.json"
# Asset key -> file name of the sample's COGs.
SAMPLE_FILES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12", "scl": "SCL"}
