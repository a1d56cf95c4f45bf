"""QGIS itself (headless) draws the served layers: the WMS-T layer per season, and XYZ layers of each product.

Needs Debian's QGIS (``apt-get install python3-qgis``, used by ``/usr/bin/python3``); skipped where it is
missing (the CI machine does not install it: its 200 MB would not fit the suite's time budget), so run
it where QGIS is installed: ``.venv/bin/python -m pytest tests/e2e/test_qgis.py``.

The viewer tests' two seasons (2022-winter and 2022-summer of a small synthetic archive, one block built
with every product) are served by ``s2seasons serve``; ``scripts/qgis_check.py`` adds the WMS-T layer as QGIS' Data Source
Manager does and renders it with the temporal controller's range on each season, then renders XYZ
layers of the index percentiles, the medoid and the QA layer. With ``S2SEASONS_UPDATE_SCREENSHOT=1`` the
captioned sheet of what QGIS drew becomes the README's picture ``docs/qgis.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.helpers import REPO, live_server
from tests.e2e.browser import SEASONS

SYSTEM_PYTHON = "/usr/bin/python3"
VIEW = "11.34,47.86,11.42,47.94"


def _has_qgis() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True,
                           env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _has_qgis(), reason="QGIS is not installed: apt-get install python3-qgis")


def test_qgis_draws_each_season_of_the_wms_t_layer_and_every_product(viewer_data, viewer_archive, tmp_path):
    out = tmp_path / "qgis"
    sheet = REPO / "docs" / "qgis.png" if os.environ.get("S2SEASONS_UPDATE_SCREENSHOT") == "1" else out / "sheet.png"
    with live_server(viewer_data, viewer_archive, tmp_path / "server.log") as base:
        cli = [SYSTEM_PYTHON, str(REPO / "scripts" / "qgis_check.py"), "--base", base, "--bbox", VIEW,
               "--out", str(out), "--sheet", str(sheet), "--size", "300", "--season", SEASONS[0], "--season", SEASONS[1],
               "--xyz", "ndvi P50=preset=ndvi", "--xyz", "medoid=preset=true-colour&statistic=medoid",
               "--xyz", "clear share=expression=red_count/qa_seen&rescale=0,1&colormap_name=viridis"]
        run = subprocess.run(cli, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        log = (tmp_path / "server.log").read_text()
    assert run.returncode == 0, run.stdout + run.stderr
    assert sheet.stat().st_size > 10_000
    report = json.loads(run.stdout)
    print(json.dumps(report, indent=1), file=sys.stderr)
    wmst = report["wmst"]
    assert wmst["temporal"] is True  # QGIS treats the layer as temporal (its temporal controller drives TIME)
    assert wmst["seasons_differ"] is True
    for season in SEASONS:
        assert wmst[season]["drawn_share"] > 0.5, wmst[season]
    # QGIS asked for each season through TIME (the frame's start), and the server answered from the built blocks
    assert "TIME=2021-12-02T00:00:00Z" in log and "TIME=2022-06-25T00:00:00Z" in log
    getmaps = [line for line in log.splitlines() if "REQUEST=GetMap" in line]
    assert getmaps and all(" 200 " in line and "source=built" in line for line in getmaps), getmaps
    for name in ("ndvi P50", "medoid", "clear share"):
        assert report["xyz"][name]["drawn_share"] > 0.5, report["xyz"][name]
