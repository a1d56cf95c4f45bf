"""A short load test: ``benchmarks/load/run.py`` (locust against ``s2seasons serve``) over the test archive.

Built tiles and built points must all come back (no error, only built sources), no answer may be a
500, and the server's memory must stay bounded. The README's figures come from the full run on the
demo (``app/README.md``, *Load*).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.app.helpers import GRID, REPO

pytestmark = pytest.mark.slow

BUILT_BBOX = "11.25,47.82,11.42,47.93"  # inside the built block c172_r107
UNBUILT_BBOX = "11.46,47.85,11.55,47.95"  # inside the unbuilt block c173_r107, where the archive has scenes
MAX_RSS_MB = 768  # about 350 MB measured: start-up 190 MB, GDAL's block cache, the caches at their limits


def test_short_load_run(built, tmp_path):
    out = tmp_path / "load.json"
    command = [
        sys.executable, "-m", "benchmarks.load.run",
        "--data", str(built.data), "--catalog", str(built.archive.catalog), "--built-bbox", BUILT_BBOX,
        "--unbuilt-bbox", UNBUILT_BBOX, "--built-zooms", "12-14", "--onthefly-zooms", "12-14",
        "--server-env", f"S2SEASONS_RESOLUTION_M={GRID['resolution_m']}",
        "--server-env", f"S2SEASONS_BLOCK_SIZE_PX={GRID['block_size_px']}",
        "--server-env", "S2SEASONS_TILE_CACHE_SIZE=64",  # small: the cache's limit has to hold, not hide the load
        "--users", "12", "--spawn-rate", "6", "--duration", "15", "--json", str(out),
        "--check", "--max-rss-mb", str(MAX_RSS_MB),
    ]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    kinds = result["kinds"]
    assert kinds["built tile"]["requests"] > 20 and kinds["built tile"]["errors"] == 0
    assert kinds["point (built)"]["errors"] == 0
    assert result["server_500"] == 0
    for name in ("on-the-fly tile", "point (on the fly)"):  # shed as busy at worst, never an error
        assert kinds[name]["errors"] == 0, (name, kinds[name])
    assert result["rss_mb"]["peak_mb"] < MAX_RSS_MB
