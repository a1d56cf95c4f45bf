"""GDAL's options hold in every thread of a process, also after another thread's ``rasterio.Env`` exits.

Without that, a server or a build reading over HTTP lists directories and probes sidecar files for
every scene it opens (one round trip each, and rasterio holds Python's lock while GDAL does it):
through a 50 ms link the on-the-fly viewport benchmark served one request at a time (85 s and 503s
instead of 17 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import shutil
import textwrap

import pytest

from benchmarks.slowlink import SlowLinkServer
from tests.samples import REPO, SAMPLE_DIR

READER = textwrap.dedent('''
    import sys, threading
    import rasterio
    from compositor.read import GDAL_ENV, use_gdal_env

    if sys.argv[2] == "process-wide":
        use_gdal_env()
    with rasterio.Env(**GDAL_ENV):  # another thread's Env, entered and left
        pass

    def read():
        with rasterio.open(sys.argv[1]) as src:
            src.transform, src.read(1, window=((0, 8), (0, 8)))

    reader = threading.Thread(target=read)
    reader.start()
    reader.join()
''')


@pytest.mark.parametrize("mode", ["process-wide", "per-env"])
def test_gdal_options_outlive_another_threads_env(mode, tmp_path):
    script = tmp_path / "reader.py"
    script.write_text(READER)
    (tmp_path / "scenes" / "a").mkdir(parents=True)
    shutil.copy(SAMPLE_DIR / "B04.tif", tmp_path / "scenes" / "a" / "B04.tif")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GDAL_", "CPL_", "VSI_"))}
    with SlowLinkServer(tmp_path, latency_ms=0, bandwidth_mbit=0) as link:  # a plain file server, paths recorded
        done = subprocess.run([sys.executable, str(script), f"{link.url}/scenes/a/B04.tif", mode], capture_output=True,
                              text=True, timeout=120, env={**env, "PYTHONPATH": str(REPO)})
        paths = list(link.stats.paths)
    assert done.returncode == 0, done.stderr
    others = [p for p in paths if not p.endswith("/B04.tif")]
    if mode == "process-wide":
        assert paths and not others, paths  # the file itself, nothing around it
    else:  # what the server did before: the options were gone and GDAL probed around the file
        assert others, paths


DATA_DIRS = textwrap.dedent('''
    import json, os
    from compositor.read import use_gdal_env
    from rasterio.crs import CRS
    from rasterio.warp import transform

    use_gdal_env()
    x, y = transform("EPSG:4326", CRS.from_epsg(3035), [12.0], [48.0])  # PROJ's database answers
    print(json.dumps({"GDAL_DATA": os.environ.get("GDAL_DATA"), "PROJ_DATA": os.environ.get("PROJ_DATA"),
                      "x": x[0], "pool": os.environ.get("GDAL_MAX_DATASET_POOL_SIZE")}))
''')


@pytest.mark.parametrize("given", [False, True])
def test_gdal_and_proj_data_become_defaults_and_a_users_stay(given, tmp_path):
    """`use_gdal_env` makes the data directories rasterio finds the process's defaults (rasterio otherwise
    probes the file system for them at every open outside an Env); directories the user set stay."""
    import json

    script = tmp_path / "dirs.py"
    script.write_text(DATA_DIRS)
    env = {k: v for k, v in os.environ.items()
           if k not in ("GDAL_DATA", "PROJ_DATA", "PROJ_LIB", "GDAL_MAX_DATASET_POOL_SIZE")}
    if given:
        from rasterio.env import GDALDataFinder, PROJDataFinder

        for key, found in (("GDAL_DATA", GDALDataFinder().search()), ("PROJ_DATA", PROJDataFinder().search())):
            link = tmp_path / key.lower()
            link.symlink_to(found)
            env[key] = str(link)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert abs(found["x"] - 4_400_000) < 200_000  # EPSG:3035 easting of 12 E, 48 N: the CRS was resolved
    assert 100 <= int(found["pool"]) <= 1000  # GDAL keeps a window's scene files open (`dataset_pool_size`)
    if given:
        assert found["GDAL_DATA"] == str(tmp_path / "gdal_data") and found["PROJ_DATA"] == str(tmp_path / "proj_data")
    else:
        assert os.path.exists(os.path.join(found["GDAL_DATA"], "gdalvrt.xsd"))
        assert os.path.exists(os.path.join(found["PROJ_DATA"], "proj.db"))
