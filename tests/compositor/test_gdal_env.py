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
import textwrap
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from tests.app.upstreams import http_server
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


def recording_handler(data: bytes, paths: list[str]) -> type[BaseHTTPRequestHandler]:
    """Serves ``data`` (with ranges) at paths ending in .tif, 404 elsewhere; records every path asked."""
    lock = threading.Lock()

    class Files(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            with lock:
                paths.append(self.path)
            if not self.path.endswith(".tif"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = 0, len(data) - 1
            if self.headers.get("Range", "").startswith("bytes="):
                start, _, end = self.headers["Range"][6:].partition("-")
                first, last = int(start), min(int(end) if end else last, last)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            if body:
                self.wfile.write(data[first:last + 1])

    return Files


@pytest.mark.parametrize("mode", ["process-wide", "per-env"])
def test_gdal_options_outlive_another_threads_env(mode, tmp_path):
    script = tmp_path / "reader.py"
    script.write_text(READER)
    paths: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GDAL_", "CPL_", "VSI_"))}
    with http_server(recording_handler((SAMPLE_DIR / "B04.tif").read_bytes(), paths)) as base:
        done = subprocess.run([sys.executable, str(script), f"{base}/scenes/a/B04.tif", mode], capture_output=True,
                              text=True, timeout=120, env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    others = [p for p in paths if not p.endswith("/B04.tif")]
    if mode == "process-wide":
        assert paths and not others, paths  # the file itself, nothing around it
    else:  # what the server did before: the options were gone and GDAL probed around the file
        assert others, paths
