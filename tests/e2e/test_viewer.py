"""The Leaflet viewer in Debian's Chromium against a live server on loopback.

Every test runs on a fresh page whose requests and console are recorded: the `viewer` fixture fails
a test when any request left 127.0.0.1 or the console logged an error.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

from tests.app.helpers import BUILT_LONLAT, REPO, SEASON, UNBUILT_LONLAT, decode, live_server, tile_of
from tests.conftest import FILL_SEASON, flagged_pixel
from tests.e2e.browser import CHROMIUM, SUMMER, VIEWPORT, ViewerPage

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]
MIN_ZOOM = 9  # tests.app.helpers.app_settings: on the fly from WebMercator zoom 9
UNBUILT = "2022-spring"  # never built: composited on the fly (the archive has no scenes of it: empty tiles)


def at(lonlat: tuple[float, float], z: int) -> str:
    return f"z={z}&lat={lonlat[1]}&lon={lonlat[0]}"


def test_page_loads_offline_without_console_errors(viewer: ViewerPage):
    viewer.open()
    page = viewer.page
    assert page.title().startswith("s2seasons")
    assert page.locator("#season").input_value() == SUMMER  # the latest built season by default
    # the share names what it is of: the bbox each season's build asked for (one block), not the map
    assert page.locator("#season option[data-built]").all_inner_texts() == [
        f"{SEASON} · 100 % of bbox built", f"{SUMMER} · 100 % of bbox built"]
    assert "1 block built (100 % of the bbox its builds were asked for); elsewhere on the fly from zoom 9." in (
        page.locator("#season-info").inner_text())
    assert page.locator('input[name="preset"]:checked').get_attribute("value") == "true-colour"
    assert page.locator("#basemap").is_checked() is False
    assert any("/static/vendor/leaflet/leaflet.js" in url for url in viewer.requests)
    assert any("/tiles/WebMercatorQuad/" in url for url in viewer.requests)
    assert viewer.errors == []  # not even a busy server's 503


# At zoom 11 (the season's finest) the tile under each point also holds some of the other block.
@pytest.mark.parametrize(("lonlat", "sources"), [(BUILT_LONLAT, {"built", "mixed"}), (UNBUILT_LONLAT, {"mixed"})],
                         ids=["built", "unbuilt"])
def test_tiles_load_with_their_source(viewer: ViewerPage, lonlat, sources):
    """No broken image; the tile under the point says where its pixels came from (X-S2Seasons-Source)."""
    viewer.open(f"season={SEASON}&{at(lonlat, 11)}")
    tiles = viewer.tiles()
    assert tiles and all(t["error"] is None and t["complete"] and t["width"] == 256 for t in tiles), tiles
    centre = tile_of(lonlat, 11)
    middle = next(t for t in tiles if f"/11/{centre.x}/{centre.y}.png" in t["url"])
    assert middle["source"] in sources
    assert viewer.pixels()[f"11/{centre.x}/{centre.y}.png"]["opaque"] > 0.3 * 256 * 256
    if lonlat == UNBUILT_LONLAT:
        assert "on-the-fly" in {t["source"] for t in tiles}
        log = viewer.page.evaluate("window.__statusLog")
        assert any(int(s["onTheFly"] or 0) > 0 and "on the fly" in s["text"] for s in log), log
    assert viewer.page.locator("#status").is_hidden()


def test_switching_season_preset_and_statistic_changes_tiles(viewer: ViewerPage):
    viewer.open(f"season={SEASON}&{at(BUILT_LONLAT, 11)}")
    page = viewer.page
    seen_urls = [viewer.tile_urls()]
    seen_pixels = [viewer.pixels()]
    steps = [
        (lambda: page.select_option("#season", SUMMER), f"/seasons/{SUMMER}/"),
        (lambda: page.click('label.preset:has(input[value="ndvi"])'), "preset=ndvi"),
        (lambda: page.click('label.segment:has(input[value="p75"])'), "statistic=p75"),
        (lambda: page.click('label.preset:has(input[value="custom"])'), "bands=nir%2Cswir16%2Cred"),
        (lambda: page.select_option("#band-r", "swir22"), "bands=swir22%2Cswir16%2Cred"),
    ]
    for action, expected in steps:
        action()
        viewer.wait_tiles()
        urls = viewer.tile_urls()
        assert urls and all(expected in url for url in urls), (expected, urls)
        assert not urls & seen_urls[-1]
        pixels = viewer.pixels()
        changed = [key for key in pixels if key in seen_pixels[-1] and pixels[key] != seen_pixels[-1][key]]
        assert changed, f"no tile changed its pixels after {expected}"
        seen_urls.append(urls)
        seen_pixels.append(pixels)
    assert "season=2022-summer" in viewer.location() and "bands=swir22%2Cswir16%2Cred" in viewer.location()


def test_count_preset_ignores_the_statistic_and_has_a_colour_legend(viewer: ViewerPage):
    viewer.open(f"season={SEASON}&preset=count&statistic=p25&{at(BUILT_LONLAT, 10)}")
    urls = viewer.tile_urls()
    assert all("preset=count" in url and "statistic" not in url for url in urls)
    assert viewer.page.locator('input[name="statistic"]').first.is_disabled()
    ramp = viewer.page.locator(".legend-ramp")
    assert ramp.get_attribute("data-colormap") == "viridis"
    viewer.page.wait_for_function("getComputedStyle(document.querySelector('.legend-ramp')).backgroundImage"
                                  ".includes('linear-gradient')")
    assert viewer.page.locator(".legend-labels").inner_text().split() == ["0", "observations", "30"]


@pytest.mark.parametrize("lonlat", [BUILT_LONLAT, UNBUILT_LONLAT], ids=["built", "unbuilt"])
def test_inspector_shows_the_point_endpoint_values(viewer: ViewerPage, lonlat):
    viewer.open(f"season={SEASON}&{at(lonlat, 11)}", wait_tiles=False)
    viewer.click_lonlat(*lonlat)
    page = viewer.page
    page.wait_for_function("document.getElementById('inspector').dataset.state === 'ready' && "
                           "document.getElementById('chart').dataset.state === 'ready'", timeout=60_000)
    point_url = next(url for url in viewer.requests if re.search(rf"/seasons/{SEASON}/point/[-\d.]+,[-\d.]+$", url))
    expected = httpx.get(point_url, timeout=60).json()
    shown = page.evaluate("() => [...document.querySelectorAll('#inspector-table tr:not(.index-row) td')]"
                          ".map((td) => [td.dataset.band + '_' + td.dataset.kind, td.dataset.value, td.textContent])")
    # 6 bands x 4, then 3 indices x 3, the medoid's 6 bands and date, and the QA layer: built with --products
    # indices,medoid,qa
    assert len(shown) == 24 and expected["band_names"][-1] == "qa_seen" and len(expected["band_names"]) == 41
    values = dict(zip(expected["band_names"], expected["values"]))
    for name, raw, text in shown:
        assert float(raw) == values[name], name
        assert text == str(round(values[name]))
    assert sum(v for k, v in values.items() if k.endswith("_count")) > 0
    indices = page.evaluate("() => [...document.querySelectorAll('#inspector-table tr.index-row')]"
                            ".map((tr) => [tr.querySelector('th').textContent, tr.querySelectorAll('td')[1].textContent])")
    assert [name for name, _ in indices] == ["NDVI", "NBR", "NDWI"]
    assert indices[0][1] == f"{values['ndvi_p50'] * 0.0001:.3f}"
    # the season was built with the QA layer (on the fly too): "n of m clear", from the point answer
    clear = max(v for k, v in values.items() if k.endswith("_count"))
    assert clear <= values["qa_seen"]
    assert page.locator("#inspector-clear").inner_text().startswith(f"{round(clear)} of {round(values['qa_seen'])} "
                                                                    "observations clear")
    # the medoid: its date (day of year within the season) and its six bands, from the point answer
    doy = values["medoid_doy"]
    assert 1 <= doy <= 366
    day = next(d for d in (dt.date(2021, 1, 1) + dt.timedelta(days=doy - 1), dt.date(2022, 1, 1)
                           + dt.timedelta(days=doy - 1)) if dt.date(2021, 12, 2) <= d <= dt.date(2022, 3, 20))
    medoid = page.locator("#inspector-medoid")
    assert medoid.get_attribute("data-date") == day.isoformat()
    assert medoid.inner_text().startswith(f"Medoid: the observation of {day.isoformat()} · blue "
                                          f"{round(values['blue_medoid'])}, green")

    lon, lat = urlsplit(point_url).path.rsplit("/", 1)[1].split(",")
    dots = page.evaluate("() => [...document.querySelectorAll('#chart circle')]"
                         ".map((c) => [c.dataset.season, Number(c.dataset.value)])")
    assert [season for season, _ in dots] == [SEASON, SUMMER]
    # every dot inside the plot: between the lowest and the highest grid line (a dot above the top tick was a bug)
    inside = page.evaluate("() => { const ys = [...document.querySelectorAll('#chart .chart-grid line')]"
                           ".map((l) => Number(l.getAttribute('y1'))); return [...document.querySelectorAll("
                           "'#chart circle')].every((c) => Number(c.getAttribute('cy')) >= Math.min(...ys) - 0.5 && "
                           "Number(c.getAttribute('cy')) <= Math.max(...ys) + 0.5); }")
    assert inside
    for season, value in dots:
        body = httpx.get(f"{viewer.base}/seasons/{season}/point/{lon},{lat}?bands=red&statistic=p50", timeout=60).json()
        assert value == body["values"][0]
    # the chart is drawn from one series request of the band's P50 (not one point request per season)
    series = [url for url in viewer.requests if "/seasons/series/point/" in url]
    assert series == [f"{viewer.base}/seasons/series/point/{lon},{lat}?seasons={SEASON}%2C{SUMMER}&bands=red"
                      "&statistic=p50"]
    assert [url for url in viewer.requests if re.search(r"/seasons/[^/]+/point/", url)
            and "/seasons/series/" not in url] == [point_url]
    if lonlat == BUILT_LONLAT:  # (cheap where built) the whole series: the season's index percentiles too
        entries = httpx.get(f"{viewer.base}/seasons/series/point/{lon},{lat}?seasons={SEASON}", timeout=60).json()
        assert len(entries["series"][0]["values"]) == 24 + 9  # built with --products indices
        assert entries["series"][0]["values"] == {name: values[name] for name in entries["series"][0]["values"]}


def test_medoid_statistic_shows_the_medoid_tiles(viewer: ViewerPage):
    """The Medoid button: tiles of the medoid observation (built with --products medoid, or on the fly)."""
    viewer.open(f"season={SEASON}&{at(BUILT_LONLAT, 12)}")
    viewer.page.click('label.segment:has(input[value="medoid"])')
    viewer.wait_tiles()
    tiles = viewer.page.evaluate("() => { const l = window.s2viewer.layers.main; return [...l.getContainer()"
                                 ".querySelectorAll('img[data-url]')].filter((i) => Number(i.dataset.z) === l._tileZoom)"
                                 ".map((i) => [i.dataset.url, i.complete && i.naturalWidth > 0]); }")
    assert tiles and all("statistic=medoid" in url and loaded for url, loaded in tiles), tiles
    assert "medoid" in viewer.page.locator("#statistic-hint").inner_text()
    assert parse_qs(urlsplit(viewer.location()).query)["statistic"] == ["medoid"]
    assert not viewer.unexpected_errors()


def test_permalink_restores_the_view(viewer: ViewerPage, browser):
    viewer.open(f"season={SEASON}&{at(BUILT_LONLAT, 10)}")
    page = viewer.page
    page.select_option("#season", SUMMER)
    page.click('label.preset:has(input[value="colour-infrared"])')
    page.click('label.segment:has(input[value="p25"])')
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + 500, box["y"] + 400)
    page.mouse.down()
    page.mouse.move(box["x"] + 400, box["y"] + 330, steps=5)
    page.mouse.up()
    page.click(".leaflet-control-zoom-in")
    page.wait_for_function("window.s2viewer.map.getZoom() === 11")
    viewer.wait_tiles()
    link = viewer.location()
    query = parse_qs(urlsplit(link).query)
    assert query["season"] == [SUMMER] and query["preset"] == ["colour-infrared"] and query["statistic"] == ["p25"]
    assert query["z"] == ["11"]
    view, urls = viewer.map_view(), viewer.visible_tile_urls()

    restored = ViewerPage(page.context.new_page(), viewer.base)
    restored.page.on("request", lambda request: viewer.requests.append(request.url))
    restored.page.on("console", lambda message: message.type == "error" and viewer.errors.append(message.text))
    restored.page.goto(link)
    restored.page.wait_for_function("document.body.dataset.ready === 'true'")
    restored.wait_tiles()
    assert restored.page.locator("#season").input_value() == SUMMER
    assert restored.page.locator('input[name="preset"]:checked').get_attribute("value") == "colour-infrared"
    assert restored.page.locator('input[name="statistic"]:checked').get_attribute("value") == "p25"
    assert restored.map_view() == pytest.approx(view, abs=1e-4)
    assert urls and restored.visible_tile_urls() == urls


def test_copy_buttons_give_working_xyz_wmts_and_wms_urls(viewer: ViewerPage):
    viewer.open(f"season={SEASON}&preset=ndvi&statistic=p75&{at(BUILT_LONLAT, 11)}")
    page = viewer.page
    page.click("#copy-xyz")
    page.wait_for_function("document.getElementById('share-hint').textContent.startsWith('Copied')")
    xyz = page.evaluate("navigator.clipboard.readText()")
    assert xyz == page.locator("#share-output").input_value()
    assert xyz == (f"{viewer.base}/seasons/{SEASON}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"
                   "?preset=ndvi&statistic=p75")
    tile = tile_of(BUILT_LONLAT, 11)
    response = httpx.get(xyz.format(z=11, x=tile.x, y=tile.y), timeout=60)
    assert response.status_code == 200 and decode(response.content).shape[0] == 4

    page.click("#copy-wmts")
    page.wait_for_function("document.getElementById('share-output').dataset.kind === 'copy-wmts'")
    wmts = page.evaluate("navigator.clipboard.readText()")
    assert wmts == f"{viewer.base}/seasons/{SEASON}/WebMercatorQuad/WMTSCapabilities.xml?preset=ndvi&statistic=p75"
    capabilities = httpx.get(wmts, timeout=60)
    assert capabilities.status_code == 200 and "<ows:Identifier>custom</ows:Identifier>" in capabilities.text
    assert "layer 'custom'" in page.locator("#share-hint").inner_text()

    page.click("#copy-wms")
    page.wait_for_function("document.getElementById('share-output').dataset.kind === 'copy-wms'")
    wms = page.evaluate("navigator.clipboard.readText()")
    assert wms == f"{viewer.base}/wms"
    assert "<Dimension name=\"time\"" in httpx.get(wms, timeout=60).text  # QGIS' connection URL: the capabilities
    assert "temporal controller" in page.locator("#share-hint").inner_text()

    page.click("#copy-link")
    page.wait_for_function("document.getElementById('share-output').dataset.kind === 'copy-link'")
    assert page.evaluate("navigator.clipboard.readText()") == viewer.location()


def test_compare_swipes_between_two_seasons(viewer: ViewerPage):
    viewer.open(f"season={SEASON}&{at(BUILT_LONLAT, 11)}")
    page = viewer.page
    page.check("#compare")
    page.select_option("#compare-season", SUMMER)
    viewer.wait_tiles("compare")
    assert all(f"/seasons/{SUMMER}/" in url for url in viewer.tile_urls("compare"))
    assert all(f"/seasons/{SEASON}/" in url for url in viewer.tile_urls("main"))
    assert f"compare={SUMMER}" in viewer.location() and "split=0.500" in viewer.location()

    def clip_x(pane: str) -> float:
        clip = page.evaluate(f"window.s2viewer.map.getPane('{pane}').style.clipPath")
        return float(re.findall(r"(-?[\d.]+)px", clip)[2 if pane == "seasonLeft" else 0])

    box = page.locator("#map").bounding_box()
    origin = page.evaluate("window.s2viewer.map.containerPointToLayerPoint([0, 0]).x")
    assert clip_x("seasonLeft") == pytest.approx(origin + box["width"] / 2, abs=1)
    assert clip_x("seasonRight") == pytest.approx(origin + box["width"] / 2, abs=1)
    bar = page.locator("#swipe-bar").bounding_box()
    page.mouse.move(bar["x"] + bar["width"] / 2, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + 200, steps=4)
    page.mouse.up()
    assert clip_x("seasonRight") == pytest.approx(origin + box["width"] * 0.25, abs=2)
    assert "split=0.25" in viewer.location()
    assert page.locator("#swipe-right").inner_text() == f"{SUMMER} ▶"

    # the middle of the map shows the right season, then the left one once the bar passed it
    middle = {"x": box["x"] + box["width"] / 2 - 20, "y": box["y"] + box["height"] / 2 + 40, "width": 40, "height": 40}
    summer = page.screenshot(clip=middle)
    bar = page.locator("#swipe-bar").bounding_box()
    page.mouse.move(bar["x"] + bar["width"] / 2, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + 200, steps=4)
    page.mouse.up()
    assert "split=0.75" in viewer.location()
    winter = page.screenshot(clip=middle)
    assert summer != winter
    page.uncheck("#compare")
    assert page.evaluate("window.s2viewer.map.getPane('seasonRight').style.clipPath") == ""
    assert page.locator("#swipe").is_hidden()


PANE_STATE_JS = """(pane) => {
  const root = window.s2viewer.map.getPane(pane);
  const outside = root.querySelector('path.cov-outside');
  return {clip: root.style.clipPath, outside: outside && outside.dataset.state,
          built: root.querySelectorAll('path.cov-block-built').length};
}"""


@pytest.mark.parametrize(("left", "right"), [(SEASON, UNBUILT), (UNBUILT, SUMMER)],
                         ids=["built-left", "built-right"])
def test_compare_shows_each_seasons_coverage_on_its_side(viewer: ViewerPage, left, right):
    """Left of the swipe bar the left season's coverage, right of it the right season's, each clipped like
    its tiles; the notes under the seasons' names say how each is served at this zoom."""
    viewer.open(f"season={left}&{at(BUILT_LONLAT, MIN_ZOOM)}")
    page = viewer.page
    page.check("#compare")
    page.select_option("#compare-season", right)
    viewer.wait_tiles("compare")
    left_pane, right_pane = page.evaluate(PANE_STATE_JS, "coverage"), page.evaluate(PANE_STATE_JS, "coverageRight")
    season_clips = [page.evaluate(f"window.s2viewer.map.getPane('{pane}').style.clipPath")
                    for pane in ("seasonLeft", "seasonRight")]
    assert all(season_clips) and left_pane["clip"] == season_clips[0] and right_pane["clip"] == season_clips[1]
    assert page.evaluate("window.s2viewer.map.getPane('pendingRight').style.clipPath") == season_clips[1]
    built, unbuilt = (left_pane, right_pane) if left == SEASON else (right_pane, left_pane)
    assert built["built"] == 1 and unbuilt["built"] == 0
    assert built["outside"] == unbuilt["outside"] == "on-the-fly"  # the unbuilt season: everywhere
    notes = {side: page.locator(f"#swipe-{side}-note") for side in ("left", "right")}
    built_note, unbuilt_note = (notes["left"], notes["right"]) if left == SEASON else (notes["right"], notes["left"])
    assert built_note.get_attribute("data-state") == "built" and "built: 100 % of bbox" in built_note.inner_text()
    assert unbuilt_note.get_attribute("data-state") == "on-the-fly"
    assert "composited on the fly" in unbuilt_note.inner_text()

    page.click(".leaflet-control-zoom-out")
    side = "coverage" if left == UNBUILT else "coverageRight"
    page.wait_for_function(f"({PANE_STATE_JS})('{side}').outside === 'not-built'")
    assert unbuilt_note.get_attribute("data-state") == "not-built"
    assert unbuilt_note.inner_text().strip() == "not built at this zoom"
    assert "elsewhere not built at this zoom" in built_note.inner_text()

    page.uncheck("#compare")  # one season again: its overlay over the whole map, the right one gone
    assert page.evaluate(PANE_STATE_JS, "coverage")["clip"] == ""
    assert page.locator(".leaflet-coverageRight-pane path").count() == 0
    assert page.locator("path.cov-outside").count() == 1


def test_compare_loading_indicator_waits_for_the_right_season(viewer: ViewerPage):
    """With the right season's tiles held back, the indicator stays on and says the right side is being
    composited on the fly (pulsing squares right of the bar) until those tiles arrived."""
    page = viewer.page
    held, released = [], []

    def hold(route):
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(rf"/seasons/{UNBUILT}/tiles/"), hold)
    viewer.open(f"season={SEASON}&compare={UNBUILT}&{at(BUILT_LONLAT, MIN_ZOOM)}", wait_tiles=False)
    viewer.wait_tiles("main")
    page.wait_for_timeout(300)
    assert held
    status = page.locator("#status")
    assert status.is_visible()
    assert int(status.get_attribute("data-pending-right")) == len(held)
    assert status.get_attribute("data-pending-left") == "0"
    assert int(status.get_attribute("data-on-the-fly")) == len(held)
    assert f"on the fly… · right side ({UNBUILT})" in status.inner_text()
    assert page.locator(".leaflet-pendingRight-pane path.cov-pending").count() == len(held)
    assert page.locator(".leaflet-pending-pane path.cov-pending").count() == 0

    released.append(True)
    for route in held:
        route.continue_()
    viewer.wait_tiles("compare")
    status.wait_for(state="hidden")
    assert page.locator(".leaflet-pendingRight-pane path.cov-pending").count() == 0
    log = page.evaluate("window.__statusLog")
    last_busy = max(i for i, s in enumerate(log) if not s["hidden"])
    assert all(not s["hidden"] for s in log[:last_busy] if int(s["pending"] or 0) > 0), log
    page.uncheck("#compare")
    assert status.get_attribute("data-pending-right") is None


def test_coverage_overlay_marks_built_on_the_fly_and_not_built(viewer: ViewerPage):
    viewer.open(f"season={SEASON}&{at(BUILT_LONLAT, MIN_ZOOM - 1)}")
    page = viewer.page
    assert page.locator(".cov-block-built").count() == 1
    outside = page.locator("path.cov-outside")
    assert outside.get_attribute("data-state") == "not-built"
    assert outside.get_attribute("fill").startswith("url(#")
    assert any(t["notBuilt"] for t in viewer.tiles())
    banner = page.locator("#not-built-banner")
    banner.wait_for(state="visible")
    assert f"below zoom {MIN_ZOOM}" in banner.inner_text()
    banner.locator("button").click()
    page.wait_for_function(f"window.s2viewer.map.getZoom() === {MIN_ZOOM}")
    viewer.wait_tiles()
    assert outside.get_attribute("data-state") == "on-the-fly"
    assert banner.is_hidden()
    assert not any(t["notBuilt"] and t["notBuilt"] != "no scenes" for t in viewer.tiles())
    page.uncheck("#coverage")
    assert page.locator("path.cov-outside").count() == 0 and "coverage=0" in viewer.location()


def test_readme_screenshot(viewer_server, tmp_path):
    """``scripts/screenshot.py`` pictures the viewer; S2SEASONS_UPDATE_SCREENSHOT=1 makes it docs/viewer.png."""
    out = tmp_path / "viewer.png"
    subprocess.run([sys.executable, str(REPO / "scripts" / "screenshot.py"), "--url", viewer_server, "--out", str(out),
                    "--season", SUMMER, "--chromium", CHROMIUM], check=True, timeout=120, cwd=REPO)
    picture = decode(out.read_bytes())
    assert picture.shape[1:] == (860, 1440)
    rgb = picture[:3].reshape(3, -1).T.astype(np.uint32)
    assert len(np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])) > 1000  # imagery, not a blank page
    if os.environ.get("S2SEASONS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(out, REPO / "docs" / "viewer.png")


def test_malformed_links_fall_back_to_defaults(viewer: ViewerPage):
    viewer.open("season=../../etc&preset=nope&statistic=p99&z=abc&lat=91&opacity=7&bands=red,red", wait_tiles=False)
    page = viewer.page
    assert page.locator("#season").input_value() == SUMMER
    assert page.locator('input[name="preset"]:checked').get_attribute("value") == "true-colour"
    assert page.locator('input[name="statistic"]:checked').get_attribute("value") == "p50"
    assert page.locator("#opacity").input_value() == "100"
    assert not any("/seasons/" in url and "etc" in url for url in viewer.requests)
    state = page.evaluate("""async () => {
      const { readView, writeView } = await import('/static/viewer/js/state.js');
      const { retryDelayMs } = await import('/static/viewer/js/tiles.js');
      const options = { presets: ['ndvi'], bands: ['red', 'nir', 'green'] };
      const view = readView('season=2022-summer&bands=nir,red,green&statistic=p25&z=9&lat=47.5&lon=11.25', options);
      return { again: readView(writeView(view), options), view,
               delays: [retryDelayMs('30', 0), retryDelayMs(null, 2), retryDelayMs('1', 5), retryDelayMs('60', 9)] };
    }""")
    assert state["again"] == state["view"]
    assert state["view"]["bands"] == ["nir", "red", "green"] and state["view"]["z"] == 9
    assert state["delays"] == [1000, 4000, 1000, 8000]


# --- the gap-filled variant (tests.conftest.filled_season: 2022-summer filled, bands red, nir and swir16) ---------


@pytest.fixture(scope="module")
def filled_viewer(browser, filled_season, tmp_path_factory) -> Iterator[ViewerPage]:
    """A page on a live server over the filled season (errors and requests checked as `viewer` does)."""
    log = tmp_path_factory.mktemp("filled-server") / "server.log"
    with live_server(filled_season.data, filled_season.catalog, log) as base:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        result = ViewerPage(page, base)
        page.on("request", lambda request: result.requests.append(request.url))
        page.on("console", lambda message: message.type == "error" and result.errors.append(message.text))
        page.on("pageerror", lambda error: result.errors.append(f"uncaught: {error}"))
        try:
            yield result
        finally:
            context.close()
        assert not result.outside_loopback() and not result.unexpected_errors(), (result.errors, result.requests)


def test_filled_variant_toggle_and_fill_flag_overlay(filled_viewer: ViewerPage, filled_season):
    """The Gap-filled toggle draws the season's filled variant (variant=filled), the flag overlay its fill flag with
    a legend of the three classes, and the inspector says where the pixel's values came from."""
    _, lonlat = flagged_pixel(filled_season.data, 1)
    filled_viewer.open(f"season={FILL_SEASON}&bands=nir,swir16,red&filled=1&flag=1&{at(lonlat, 11)}")
    page = filled_viewer.page
    assert page.locator("#filled").is_checked() and page.locator("#fill-flag").is_checked()
    assert all("variant=filled" in url for url in filled_viewer.tile_urls())
    filled_viewer.wait_tiles("flag")
    flags = filled_viewer.tiles("flag")
    assert flags and all("preset=fill-flag" in t["url"] and t["error"] is None and t["complete"] for t in flags)
    assert sum(p["opaque"] for p in filled_viewer.pixels("flag").values()) > 100
    legend = page.locator("#flag-legend .legend-category").all_inner_texts()
    assert legend == ["0 observed", "1 same season, other year", "2 adjacent season"]
    filled_viewer.click_lonlat(*lonlat)
    page.wait_for_function("document.getElementById('inspector').dataset.state === 'ready'", timeout=60_000)
    assert page.locator("#inspector-fill").get_attribute("data-flag") == "1"
    assert "same season, other year" in page.locator("#inspector-fill").inner_text()
    # the chart agrees with the table: the current season's dot is the filled P50 (the series of the variant)
    page.wait_for_function("document.getElementById('chart').dataset.state === 'ready'", timeout=60_000)
    band = page.locator("#chart").get_attribute("data-band")
    shown = page.evaluate(f"() => document.querySelector('#inspector-table td[data-band={band}][data-kind=p50]')"
                          ".dataset.value")
    dot = page.evaluate(f"() => document.querySelector('#chart circle[data-season=\"{FILL_SEASON}\"]')"
                        ".dataset.value")
    assert float(dot) == float(shown)
    assert any("/seasons/series/point/" in url and "variant=filled" in url for url in filled_viewer.requests)
    page.click("#filled")  # off: the season's own values, no variant in the tiles or the link
    filled_viewer.wait_tiles()
    assert not any("variant=" in url for url in filled_viewer.tile_urls())
    assert "filled" not in parse_qs(urlsplit(filled_viewer.location()).query)
    page.wait_for_function("document.getElementById('inspector').dataset.state === 'ready'", timeout=60_000)
    assert page.locator("#inspector-fill").is_hidden()
    # gap filling fills the percentiles: with the medoid the season's own medoid is drawn, not a 400 of the variant
    page.click("#filled")
    filled_viewer.wait_tiles()
    assert all("variant=filled" in url for url in filled_viewer.tile_urls())
    page.click('label.segment:has(input[value="medoid"])')
    page.wait_for_function("document.getElementById('filled-hint').textContent.includes('medoid')", timeout=30_000)
    filled_viewer.wait_tiles()
    urls = filled_viewer.tile_urls()
    assert urls and all("statistic=medoid" in url and "variant=" not in url for url in urls), urls
    assert page.locator("#filled").is_checked()  # the choice stays: back on a percentile, the variant again
