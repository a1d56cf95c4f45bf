"""Locust users of the tile server: built tiles, on-the-fly tiles and point queries, as map clients ask.

Requests are named by kind (``built tile``, ``on-the-fly tile``, ``point (built)``, ``point (on the fly)``)
so that locust's statistics come per kind. A built tile that does not come from built blocks, and any
answer but 200, is a failure; for on-the-fly work, a 503 with ``Retry-After`` (the server shedding load
it cannot do within its budget) is recorded as the failure ``busy (503 Retry-After)``, which
``benchmarks/load/run.py`` counts apart from errors.

Where to ask, from the environment (``benchmarks/load/run.py`` sets it):

* ``S2SEASONS_LOAD_SEASON``: the season (default ``2022-winter``);
* ``S2SEASONS_LOAD_BUILT_BBOX`` / ``S2SEASONS_LOAD_UNBUILT_BBOX``: lon/lat boxes inside the built part
  and inside the unbuilt part (defaults: the demo's);
* ``S2SEASONS_LOAD_BUILT_ZOOMS`` / ``S2SEASONS_LOAD_ONTHEFLY_ZOOMS``: WebMercator zooms (``11-14``, ``12-13``);
* ``S2SEASONS_LOAD_MIX``: the tasks' weights (default ``built_tile=6,onthefly_tile=2,point_built=2,point_onthefly=1``).
"""

from __future__ import annotations

import os
import random
import warnings

import morecantile
from locust import FastHttpUser, between

SEASON = os.environ.get("S2SEASONS_LOAD_SEASON", "2022-winter")
BUILT_BBOX = tuple(float(v) for v in os.environ.get("S2SEASONS_LOAD_BUILT_BBOX", "11.0,47.6,11.9,48.2").split(","))
UNBUILT_BBOX = tuple(float(v) for v in os.environ.get("S2SEASONS_LOAD_UNBUILT_BBOX",
                                                      "12.0,47.6,12.9,48.2").split(","))
PRESETS = ("true-colour", "colour-infrared", "ndvi")
DEFAULT_MIX = "built_tile=6,onthefly_tile=2,point_built=2,point_onthefly=1"
BUSY = "busy (503 Retry-After)"
TMS = morecantile.tms.get("WebMercatorQuad")


def zooms(name: str, default: str) -> range:
    first, _, last = os.environ.get(name, default).partition("-")
    return range(int(first), int(last or first) + 1)


def tiles_inside(bbox: tuple[float, float, float, float], zoom_levels: range) -> list[morecantile.Tile]:
    """Every WebMercator tile of ``zoom_levels`` whose whole extent lies inside the lon/lat ``bbox``."""
    west, south, east, north = bbox
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = []
        for z in zoom_levels:
            for tile in TMS.tiles(west, south, east, north, [z]):
                b = TMS.bounds(tile)
                if west <= b.left and b.right <= east and south <= b.bottom and b.top <= north:
                    found.append(tile)
    return found


BUILT_TILES = tiles_inside(BUILT_BBOX, zooms("S2SEASONS_LOAD_BUILT_ZOOMS", "11-14"))
ONTHEFLY_TILES = tiles_inside(UNBUILT_BBOX, zooms("S2SEASONS_LOAD_ONTHEFLY_ZOOMS", "12-13"))
if not BUILT_TILES or not ONTHEFLY_TILES:
    raise SystemExit(f"no whole tile inside the built {BUILT_BBOX} or unbuilt {UNBUILT_BBOX} box at these zooms")


def random_point(bbox: tuple[float, float, float, float]) -> tuple[float, float]:
    west, south, east, north = bbox
    return round(random.uniform(west, east), 5), round(random.uniform(south, north), 5)


class MapUser(FastHttpUser):
    """Someone browsing the map: mostly built tiles, some unbuilt area, a click now and then."""

    wait_time = between(0.2, 1.0)

    def _get(self, url: str, name: str, *, built: bool) -> None:
        with self.client.get(url, name=name, catch_response=True) as response:
            if response.status_code == 200:
                source = response.headers.get("X-S2Seasons-Source")
                if built and source != "built":
                    response.failure(f"expected a built answer, got {source}")
                else:
                    response.success()
            elif response.status_code == 503 and not built and response.headers.get("Retry-After"):
                response.failure(BUSY)
            else:
                response.failure(f"status {response.status_code}")

    def built_tile(self) -> None:
        t = random.choice(BUILT_TILES)
        self._get(f"/seasons/{SEASON}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?preset={random.choice(PRESETS)}",
                  "built tile", built=True)

    def onthefly_tile(self) -> None:
        t = random.choice(ONTHEFLY_TILES)
        self._get(f"/seasons/{SEASON}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?preset=true-colour",
                  "on-the-fly tile", built=False)

    def point_built(self) -> None:
        lon, lat = random_point(BUILT_BBOX)
        self._get(f"/seasons/{SEASON}/point/{lon},{lat}", "point (built)", built=True)

    def point_onthefly(self) -> None:
        lon, lat = random_point(UNBUILT_BBOX)
        self._get(f"/seasons/{SEASON}/point/{lon},{lat}", "point (on the fly)", built=False)


MIX = dict(item.split("=") for item in os.environ.get("S2SEASONS_LOAD_MIX", DEFAULT_MIX).split(","))
MapUser.tasks = [getattr(MapUser, name) for name, weight in MIX.items() for _ in range(int(weight))]
