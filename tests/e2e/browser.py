"""Fixtures and helpers of the viewer's browser tests: two built seasons, a live server, Debian's Chromium.

The archive is the server tests' geography (`tests.app.helpers`) with a second season: block
``BUILT_BLOCK`` is built for 2022-winter and 2022-summer, ``UNBUILT_BLOCK`` (east) is not, so the
east is composited on the fly. Chromium is driven by Playwright (never ``playwright install``: the
browser is Debian's ``chromium``), and every request a page makes is recorded so that a test fails
when one leaves loopback or the console shows an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.app.helpers import ARCHIVE_BBOX, BUILT_BLOCK, GRID, SEASON, app_settings, live_server

SUMMER = "2022-summer"
SEASONS = (SEASON, SUMMER)
CHROMIUM = os.environ.get("S2SEASONS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
VIEWPORT = {"width": 1024, "height": 680}  # a map of about 3 x 3 tiles beside the panel
LOOPBACK = "127.0.0.1"
LOCAL_SCHEMES = ("data", "blob", "about")
TILE_WAIT_MS = 60_000
# The server answers 503 when its on-the-fly pool is full (e.g. while the composites of tiles a
# page no longer shows run on); the viewer asks again. Chromium logs each such answer.
SERVER_BUSY = "the server responded with a status of 503"

# In the page: the main season layer's images at the zoom it draws, whether all have loaded, and a
# checksum of each one's pixels (the images are same-origin blobs, so a canvas may read them).
TILES_JS = """(role) => {
  const layer = window.s2viewer.layers[role];
  if (!layer) return null;
  const imgs = [...layer.getContainer().querySelectorAll('img[data-url]')]
    .filter((img) => Number(img.dataset.z) === layer._tileZoom);
  return imgs.map((img) => ({url: img.dataset.url, source: img.dataset.source || null,
                             notBuilt: img.dataset.notBuilt || null, error: img.dataset.error || null,
                             complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
}"""
# The tiles of the layer's zoom that the map's view shows (Leaflet keeps others loaded after a pan: a
# page that panned holds tiles a page opened at the same view never asks for, depending on timing).
VISIBLE_TILES_JS = """(role) => {
  const layer = window.s2viewer.layers[role];
  const size = layer.getTileSize();
  const bounds = layer._map.getPixelBounds();
  const min = bounds.min.unscaleBy(size).floor(), max = bounds.max.unscaleBy(size).ceil();
  return [...layer.getContainer().querySelectorAll('img[data-url]')]
    .filter((img) => Number(img.dataset.z) === layer._tileZoom)
    .map((img) => img.dataset.url)
    .filter((url) => {
      const [x, y] = url.split('?')[0].split('/').slice(-2).map((part) => parseInt(part, 10));
      return x >= min.x && x < max.x && y >= min.y && y < max.y;
    });
}"""
PIXELS_JS = """(role) => {
  const layer = window.s2viewer.layers[role];
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', {willReadFrequently: true});
  const out = {};
  for (const img of layer.getContainer().querySelectorAll('img[data-url]')) {
    if (Number(img.dataset.z) !== layer._tileZoom || !img.naturalWidth) continue;
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0, opaque = 0;
    for (let i = 0; i < data.length; i += 4) {
      sum = (sum * 31 + data[i] * 7 + data[i + 1] * 3 + data[i + 2]) % 1000000007;
      if (data[i + 3]) opaque += 1;
    }
    out[img.dataset.url.replace(/\\?.*$/, '').split('/').slice(-3).join('/')] = {sum, opaque};
  }
  return out;
}"""
IDLE_JS = """(role) => {
  const layer = window.s2viewer.layers[role];
  // not during a zoom animation either: its zoomend (which restyles the coverage overlay) comes after
  if (!layer || layer.pending() > 0 || !layer._map || layer._map._animatingZoom) return false;
  const imgs = [...layer.getContainer().querySelectorAll('img[data-url]')]
    .filter((img) => Number(img.dataset.z) === layer._tileZoom);
  return imgs.length > 0 && imgs.every((img) => img.dataset.error || (img.complete && img.naturalWidth > 0));
}"""
# Keeps every state of the loading indicator (installed before the page's own scripts run).
STATUS_LOG_JS = """
window.__statusLog = [];
document.addEventListener('DOMContentLoaded', () => {
  const status = document.getElementById('status');
  new MutationObserver(() => window.__statusLog.push({hidden: status.hidden, pending: status.dataset.pending,
      onTheFly: status.dataset.onTheFly, text: status.textContent.trim()}))
    .observe(status, {attributes: true, childList: true, subtree: true});
});
"""


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname == LOOPBACK


@dataclass
class ViewerPage:
    """A Playwright page on the viewer, with what it requested and what its console said."""

    page: object
    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, query: str = "", wait_tiles: bool = True) -> None:
        self.page.goto(f"{self.base}/{'?' + query if query else ''}")
        self.page.wait_for_function("document.body.dataset.ready === 'true'", timeout=30_000)
        if wait_tiles:
            self.wait_tiles()

    def wait_tiles(self, role: str = "main") -> None:
        """Until the layer has no tile in flight and every image at its zoom has loaded (or failed)."""
        self.page.wait_for_timeout(150)  # let a change reach Leaflet's next frame
        self.page.wait_for_function(IDLE_JS, arg=role, timeout=TILE_WAIT_MS)

    def tiles(self, role: str = "main") -> list[dict]:
        return self.page.evaluate(TILES_JS, role)

    def tile_urls(self, role: str = "main") -> set[str]:
        return {t["url"] for t in self.tiles(role)}

    def visible_tile_urls(self, role: str = "main") -> set[str]:
        """The URLs of the loaded tiles inside the map's view (see `VISIBLE_TILES_JS`)."""
        return set(self.page.evaluate(VISIBLE_TILES_JS, role))

    def pixels(self, role: str = "main") -> dict[str, dict]:
        """Per tile (z/x/y): a checksum of its RGB values and its number of opaque pixels."""
        return self.page.evaluate(PIXELS_JS, role)

    def click_lonlat(self, lon: float, lat: float) -> None:
        point = self.page.evaluate("([lat, lon]) => { const m = window.s2viewer.map; "
                                   "const p = m.latLngToContainerPoint([lat, lon]); "
                                   "const r = m.getContainer().getBoundingClientRect(); "
                                   "return [r.left + p.x, r.top + p.y]; }", [lat, lon])
        self.page.mouse.click(*point)

    def location(self) -> str:
        """The page's URL now (``page.url`` follows ``history.replaceState`` only after a round trip)."""
        return self.page.evaluate("window.location.href")

    def map_view(self) -> tuple[float, float, float]:
        return tuple(self.page.evaluate("() => { const m = window.s2viewer.map; const c = m.getCenter(); "
                                        "return [c.lat, c.lng, m.getZoom()]; }"))

    def outside_loopback(self) -> list[str]:
        return [url for url in self.requests if not is_loopback(url)]

    def unexpected_errors(self) -> list[str]:
        """Console errors other than the logged 503s of tiles the viewer asked for again."""
        return [e for e in self.errors if SERVER_BUSY not in e]


@pytest.fixture(scope="session")
def viewer_archive(tmp_path_factory) -> Path:
    """The server tests' synthetic archive area with scenes of both SEASONS; returns the catalog path."""
    from compositor.testing.synthetic import generate_archive

    root = tmp_path_factory.mktemp("viewer-archive")
    summary = generate_archive(root, seasons=SEASONS, bbox_4326=ARCHIVE_BBOX, pixel_size_m=100.0, seed=4)
    return Path(summary.catalog_path)


@pytest.fixture(scope="session")
def viewer_data(viewer_archive, tmp_path_factory) -> Path:
    """A data folder with BUILT_BLOCK built for both SEASONS (as ``s2seasons build`` would), with the index
    percentiles, the medoid and the QA layer (``--products indices,medoid,qa``), so the inspector shows them."""
    from app.queue import block_bbox_4326
    from compositor.build import run_build
    from compositor.grid import OutputGrid

    data = tmp_path_factory.mktemp("viewer-data")
    bbox = block_bbox_4326(OutputGrid(**GRID).block_by_id(BUILT_BLOCK))
    for season in SEASONS:
        summary = run_build(app_settings(data, viewer_archive), season, bbox, workers=1, progress=False,
                            products="indices,medoid,qa")
        assert [r.block_id for r in summary.results] == [BUILT_BLOCK] and not summary.failed, summary.describe()
    return data


@pytest.fixture(scope="session")
def viewer_server(viewer_data, viewer_archive, tmp_path_factory) -> Iterator[str]:
    """A live ``s2seasons serve`` on loopback over the two built seasons; yields its base URL."""
    log = tmp_path_factory.mktemp("viewer-server") / "server.log"
    with live_server(viewer_data, viewer_archive, log) as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (./scripts/test does) or set S2SEASONS_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def viewer(browser, viewer_server) -> Iterator[ViewerPage]:
    """A fresh page on the viewer; after the test, no request may have left loopback and no error was logged
    (but the server's 503s under load, which the viewer retries)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=viewer_server)
    page = context.new_page()
    result = ViewerPage(page, viewer_server)
    page.on("request", lambda request: result.requests.append(request.url))
    page.on("console", lambda message: message.type == "error" and result.errors.append(message.text))
    page.on("pageerror", lambda error: result.errors.append(f"uncaught: {error}"))
    page.add_init_script(STATUS_LOG_JS)
    try:
        yield result
    finally:
        context.close()
    assert not result.outside_loopback(), f"requests left loopback: {result.outside_loopback()}"
    assert not result.unexpected_errors(), f"console errors: {result.errors}"
