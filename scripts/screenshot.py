#!/usr/bin/env python3
"""Screenshot of the viewer for the README: a built area in true colour with the coverage overlay,
the legend, the controls and the pixel inspector open, taken with Debian's Chromium.

    .venv/bin/python scripts/screenshot.py --url http://127.0.0.1:8000 --out docs/viewer.png

The browser test `tests/e2e/test_viewer.py::test_readme_screenshot` runs it against its live server
(the synthetic test seasons) and, with S2SEASONS_UPDATE_SCREENSHOT=1, writes docs/viewer.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlencode

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 860}
TILES_IDLE = """() => {
  const layer = window.s2viewer.layers.main;
  if (!layer || layer.pending() > 0) return false;
  const imgs = [...layer.getContainer().querySelectorAll('img[data-url]')]
    .filter((img) => Number(img.dataset.z) === layer._tileZoom);
  return imgs.length > 0 && imgs.every((img) => img.dataset.error || (img.complete && img.naturalWidth > 0));
}"""


def take_screenshot(url: str, out: Path, *, season: str, lonlat: tuple[float, float], zoom: int,
                    click: tuple[float, float] | None, chromium: str = CHROMIUM, timeout_s: float = 90.0) -> Path:
    """Open the viewer at ``lonlat``/``zoom`` on ``season`` (true colour, P50), click ``click``, save a PNG."""
    from playwright.sync_api import sync_playwright

    query = urlencode({"season": season, "preset": "true-colour", "statistic": "p50", "z": zoom,
                       "lat": lonlat[1], "lon": lonlat[0]})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.goto(f"{url.rstrip('/')}/?{query}")
            page.wait_for_function("document.body.dataset.ready === 'true'", timeout=timeout_s * 1000)
            page.wait_for_function(TILES_IDLE, timeout=timeout_s * 1000)
            if click:
                point = page.evaluate("([lat, lon]) => { const m = window.s2viewer.map; "
                                      "const p = m.latLngToContainerPoint([lat, lon]); "
                                      "const r = m.getContainer().getBoundingClientRect(); "
                                      "return [r.left + p.x, r.top + p.y]; }", [click[1], click[0]])
                page.mouse.click(*point)
                page.wait_for_function("document.getElementById('chart').dataset.state === 'ready'",
                                       timeout=timeout_s * 1000)
            page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover effects in the picture
            page.wait_for_timeout(400)  # Leaflet's tile fade-in
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()
    return out


def parse_lonlat(text: str) -> tuple[float, float]:
    lon, lat = (float(v) for v in text.split(","))
    return lon, lat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Base URL of a running s2seasons serve, e.g. http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("docs/viewer.png"), help="PNG to write.")
    parser.add_argument("--season", default="2022-summer", help="Season to show.")
    parser.add_argument("--center", type=parse_lonlat, default=(11.50, 47.886), help="Map centre lon,lat.")
    parser.add_argument("--zoom", type=int, default=12, help="Map zoom.")
    parser.add_argument("--click", type=parse_lonlat, default=(11.40, 47.91),
                        help="lon,lat of the inspected pixel ('none' for no inspector).")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium executable.")
    args = parser.parse_args(argv)
    out = take_screenshot(args.url, args.out, season=args.season, lonlat=args.center, zoom=args.zoom,
                          click=args.click, chromium=args.chromium)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
