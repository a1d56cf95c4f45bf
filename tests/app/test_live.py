"""Real clients against a live ``s2seasons serve`` process: GDAL /vsicurl/, rasterio windows, GDAL's WMTS driver."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import httpx
import morecantile
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window, from_bounds

from tests.app.helpers import BUILT_BLOCK, BUILT_LONLAT, REPO, SEASON, decode, tile_of

pytestmark = pytest.mark.slow
GDAL_HTTP = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "CPL_VSIL_CURL_CACHE_SIZE": "0", "GDAL_HTTP_MAX_RETRY": "0"}


def files_url(server: str, relative: str) -> str:
    return f"{server}/seasons/{SEASON}/files/{relative}"


def block_file(built, band: str, kind: str) -> str:
    path = next((built.data / SEASON / "blocks" / BUILT_BLOCK).glob(f"*_{band}_{kind}_*.tif"))
    return f"blocks/{BUILT_BLOCK}/{path.name}"


def test_range_requests(server, built):
    url = files_url(server.base, block_file(built, "red", "p50"))
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["accept-ranges"] == "bytes"
    size = int(head.headers["content-length"])
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    local = (built.data / SEASON / block_file(built, "red", "p50")).read_bytes()
    assert part.content == local[100:200]


def test_rasterio_reads_a_cog_window_over_vsicurl(server, built):
    relative = block_file(built, "nir", "p75")
    window = Window(100, 40, 64, 96)
    with rasterio.Env(**GDAL_HTTP):
        with rasterio.open(f"/vsicurl/{files_url(server.base, relative)}") as remote:
            profile = (remote.crs, remote.transform, remote.shape, remote.overviews(1), remote.nodata)
            remote_data = remote.read(1, window=window)
            remote_overview = remote.read(1, out_shape=(64, 64))
    with rasterio.open(built.data / SEASON / relative) as local:
        assert profile == (local.crs, local.transform, local.shape, local.overviews(1), local.nodata)
        np.testing.assert_array_equal(remote_data, local.read(1, window=window))
        np.testing.assert_array_equal(remote_overview, local.read(1, out_shape=(64, 64)))
    assert re.search(rf"GET /seasons/{SEASON}/files/blocks/{BUILT_BLOCK}/\S+ 206 ", server.log.read_text())


def test_rasterio_reads_the_season_vrt_over_vsicurl(server, built):
    """The VRT's relative block paths resolve to other URLs of the file route."""
    name = next((built.data / SEASON).glob("*_red_p50_*.vrt")).name
    with rasterio.Env(**GDAL_HTTP):
        with rasterio.open(f"/vsicurl/{files_url(server.base, name)}") as remote:
            window = Window(remote.width - 120, 50, 100, 80)
            remote_data = remote.read(1, window=window)
            remote_small = remote.read(1, out_shape=(16, 16))  # served by the season overview
    with rasterio.open(built.data / SEASON / name) as local:
        np.testing.assert_array_equal(remote_data, local.read(1, window=window))
        np.testing.assert_array_equal(remote_small, local.read(1, out_shape=(16, 16)))
    assert remote_data.max() > 0


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdalinfo (gdal-bin) is not installed")
def test_gdalinfo_over_vsicurl(server, built):
    url = f"/vsicurl/{files_url(server.base, block_file(built, 'red', 'count'))}"
    result = subprocess.run(["gdalinfo", url], capture_output=True, text=True, timeout=60,
                            env={"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "Size is 256, 256" in result.stdout and 'ID["EPSG",3035]' in result.stdout


@pytest.mark.parametrize("layer", ["true-colour", "ndvi"])
def test_gdal_wmts_driver_gets_the_tile_pixels(server, layer):
    """GDAL's WMTS driver, given the capabilities URL, reads the same pixels as the tile endpoint."""
    tms = morecantile.tms.get("WebMercatorQuad")
    tile = tile_of(BUILT_LONLAT, 11)
    capabilities = f"{server.base}/seasons/{SEASON}/WebMercatorQuad/WMTSCapabilities.xml"
    with rasterio.Env(**GDAL_HTTP):
        with rasterio.open(f"WMTS:{capabilities},layer={layer}") as wmts:
            assert wmts.crs.to_epsg() == 3857 and wmts.res[0] == pytest.approx(tms.matrix(11).cellSize)
            window = from_bounds(*tms.xy_bounds(tile), transform=wmts.transform).round_offsets().round_lengths()
            assert (window.width, window.height) == (256, 256)
            pixels = wmts.read(window=window)
    expected = decode(httpx.get(f"{server.base}/seasons/{SEASON}/tiles/WebMercatorQuad/11/{tile.x}/{tile.y}.png"
                                f"?preset={layer}").content)
    assert pixels.shape == expected.shape == (4, 256, 256)
    np.testing.assert_array_equal(pixels, expected)
    assert (expected[3] == 255).mean() > 0.2


def test_one_log_line_per_request(server):
    httpx.get(f"{server.base}/seasons/{SEASON}/tiles/WebMercatorQuad/1/0/9.png")  # out of range: 404
    httpx.get(f"{server.base}/presets")
    deadline = time.monotonic() + 5  # the line is written once the response is sent
    while "GET /presets" not in (log := server.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert re.search(rf"GET /seasons/{SEASON}/tiles/WebMercatorQuad/1/0/9.png 404 \d+\.\dms", log)
    assert re.search(r"GET /presets 200 \d+\.\dms", log)
    assert "Traceback" not in log


# A POST example of app/README.md: curl -s -X POST 'URL' -H 'Content-Type: application/json' -d 'BODY'
README_POST = re.compile(r"curl -s -X POST '(?P<url>[^']+)'\s*\\?\s*-H 'Content-Type: application/json'\s*\\?\s*"
                         r"-d '(?P<body>[^']+)'")


def test_readme_urls_answer(server):
    """Every concrete example URL of app/README.md works on a live server over the test season."""
    readme = (REPO / "app" / "README.md").read_text()
    posted = {m["url"] for m in README_POST.finditer(readme)}
    found = re.findall(r"http://127\.0\.0\.1:8000/[^\s`\"|']*", readme)
    urls = sorted({u.split(",layer=")[0].rstrip(".,)") for u in found if "{" not in u} - posted)  # WMTS:...,layer=x
    assert len(urls) >= 15
    for url in urls:
        response = httpx.get(url.replace("http://127.0.0.1:8000", server.base), timeout=60)
        assert response.status_code == 200, (url, response.text[:200])


def test_readme_post_examples_answer(server):
    """The POST examples of app/README.md (curl with a JSON body) work on a live server over the test season."""
    examples = list(README_POST.finditer((REPO / "app" / "README.md").read_text()))
    assert examples
    for example in examples:
        response = httpx.post(example["url"].replace("http://127.0.0.1:8000", server.base),
                              content=example["body"], headers={"Content-Type": "application/json"}, timeout=60)
        assert response.status_code == 200, (example["url"], response.text[:200])
