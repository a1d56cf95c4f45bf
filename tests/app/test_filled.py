"""The gap-filled variant through the server (``variant=filled``): points, tiles, the flag, WMTS, /seasons, files.

Over `tests.conftest.filled_season` (2022-summer filled from 2021-summer and 2022-spring, 300 m, 256 px blocks).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient

from compositor.bands import FILLED
from compositor.layout import SeasonLayout
from compositor.seasons import resolve_season
from tests.app.helpers import decode, tile_of
from tests.conftest import FILL_BLOCK_PX, FILL_OTHER_YEAR, FILL_RESOLUTION_M, FILL_SEASON, flagged_pixel

BASE = f"/seasons/{FILL_SEASON}"


@pytest.fixture(scope="module")
def filled_client(filled_season) -> Iterator[TestClient]:
    from app.main import create_app
    from app.settings import ServerSettings

    settings = ServerSettings(data_dir=filled_season.data, catalog=str(filled_season.catalog),
                              resolution_m=FILL_RESOLUTION_M, block_size_px=FILL_BLOCK_PX)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def pixel_with_flag(data, value: int) -> tuple[tuple[float, float], dict[str, int]]:
    """(lon, lat) of the centre of a pixel whose flag is ``value``, and that pixel's filled and original nir P50."""
    (x, y), lonlat = flagged_pixel(data, value)
    filled = SeasonLayout(data, resolve_season(FILL_SEASON), "EPSG:3035", FILL_RESOLUTION_M, FILLED)
    values = {}
    for layout, key in ((filled, "filled"), (filled.with_variant(""), "original")):
        with rasterio.open(layout.vrt_file("nir", "p50")) as src:
            r, c = src.index(x, y)
            values[key] = int(src.read(1)[r, c])
    return lonlat, values


@pytest.mark.parametrize("flag", [1, 2])
def test_a_point_of_the_variant_gives_the_filled_values_and_the_flag(filled_client, filled_season, flag):
    (lon, lat), values = pixel_with_flag(filled_season.data, flag)
    body = filled_client.get(f"{BASE}/point/{lon},{lat}", params={"variant": FILLED, "bands": "nir",
                                                                  "statistic": "p50"}).json()
    assert body["values"] == [values["filled"]] and values["filled"] != values["original"]
    answer = filled_client.get(f"{BASE}/point/{lon},{lat}", params={"variant": FILLED}).json()
    named = dict(zip(answer["band_names"], answer["values"]))
    assert named["fill_flag"] == flag and named["nir_p50"] == values["filled"]
    plain = filled_client.get(f"{BASE}/point/{lon},{lat}", params={"bands": "nir", "statistic": "p50"}).json()
    assert plain["values"] == [values["original"] or None]  # the season itself: its own value, or none
    # the season series of the variant: the same values (a season without a fill: an entry with its 404)
    series = filled_client.get(f"/seasons/series/point/{lon},{lat}", params={
        "seasons": f"{FILL_OTHER_YEAR},{FILL_SEASON}", "variant": FILLED}).json()["series"]
    assert series[1]["values"] == named
    assert series[0]["values"] is None and series[0]["error"]["status"] == 404


def test_the_flag_tile_is_drawn_with_its_colours(filled_client, filled_season):
    (lon, lat), _ = pixel_with_flag(filled_season.data, 1)
    tile = tile_of((lon, lat), 10)
    response = filled_client.get(f"{BASE}/tiles/WebMercatorQuad/10/{tile.x}/{tile.y}.png",
                                 params={"variant": FILLED, "preset": "fill-flag"})
    assert response.status_code == 200 and response.headers["X-S2Seasons-Source"] in ("built", "mixed")
    rgba = decode(response.content)
    colours = {tuple(rgba[:3, r, c]) for r, c in zip(*np.nonzero(rgba[3]))}
    assert colours <= {(0x2c, 0x7b, 0xb6), (0xfd, 0xae, 0x61), (0xd7, 0x19, 0x1c)} and (0xfd, 0xae, 0x61) in colours


@pytest.mark.parametrize(("path", "params", "status", "detail"), [
    (f"/seasons/{FILL_OTHER_YEAR}/point/10.07,47.97", {"variant": FILLED}, 404,
     f"season {FILL_OTHER_YEAR} has no filled variant: make it with s2seasons fill --season {FILL_OTHER_YEAR}"),
    (f"{BASE}/point/10.07,47.97", {"preset": "fill-flag"}, 400, "add variant=filled"),
    (f"{BASE}/point/10.07,47.97", {"variant": FILLED, "statistic": "medoid", "bands": "nir"}, 400,
     "the filled variant has the bands' p25, p50, p75 and count and fill_flag, not nir_medoid"),
    (f"{BASE}/point/10.07,47.97", {"variant": "smoothed"}, 422, None),
], ids=["no fill made", "flag without the variant", "not in the variant", "unknown variant"])
def test_a_variant_that_cannot_answer_is_a_4xx_saying_why(filled_client, path, params, status, detail):
    response = filled_client.get(path, params=params)
    assert response.status_code == status, response.text
    if detail:
        assert detail in response.json()["detail"]


def test_seasons_wmts_and_files_name_the_variant(filled_client):
    season = filled_client.get(BASE).json()
    assert FILLED in season["products"] and season["filled"]["min_observations"] == 3
    links = season["links"][FILLED]
    assert links["xyz_flag"].endswith("?variant=filled&preset=fill-flag")
    wmts = filled_client.get(f"{BASE}/WebMercatorQuad/WMTSCapabilities.xml", params={"variant": FILLED}).text
    assert "<ows:Identifier>fill-flag</ows:Identifier>" in wmts and "variant=filled" in wmts
    # its Time dimension lists only the seasons that have the variant (the others would answer 404)
    days = {value.split("<")[0] for value in wmts.split("<Value>")[1:]}  # of every layer
    assert days == {resolve_season(FILL_SEASON).start.isoformat()}
    assert "fill-flag" not in filled_client.get(f"{BASE}/WebMercatorQuad/WMTSCapabilities.xml").text
    vrt = filled_client.get(links["flag_vrt"].split("testserver", 1)[-1])
    assert vrt.status_code == 200 and b"Fill flag" in vrt.content
