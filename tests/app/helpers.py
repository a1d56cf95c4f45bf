"""Helpers of the server tests: the test geography, settings, one-block builds, live servers, images."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import morecantile
import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from compositor.testing.serving import free_port as free_port  # the tests' free ports too
from compositor.testing.serving import serve_process

REPO = Path(__file__).resolve().parents[2]
SEASON = "2022-winter"
ARCHIVE_BBOX = (11.33, 47.85, 11.55, 47.95)
GRID = {"crs": "EPSG:3035", "resolution_m": 100.0, "block_size_px": 256}
BUILT_BLOCK = "c172_r107"
UNBUILT_BLOCK = "c173_r107"
BUILT_LONLAT = (11.36, 47.90)  # inside the built block, inside the archive's data region
UNBUILT_LONLAT = (11.53, 47.90)  # inside the unbuilt block, inside the data region
BOUNDARY_LONLAT = (11.44, 47.90)  # on the block boundary


@dataclass(frozen=True)
class Archive:
    root: Path
    catalog: Path


@dataclass(frozen=True)
class Built:
    archive: Archive
    data: Path


def app_settings(data: Path, catalog: Path, **overrides):
    """Settings of a test server: the test grid, every scene (as a build reads), a 60 s budget, caches on."""
    from app.settings import ServerSettings

    values = dict(data_dir=data, catalog=str(catalog), **GRID, onthefly_min_zoom=9, onthefly_max_scenes=1000,
                  onthefly_budget_s=60.0, onthefly_workers=2, tile_cache_size=256, catalog_cache_ttl_s=600.0)
    values.update(overrides)
    return ServerSettings(**values)


def build_block(data: Path, catalog: Path, block_id: str, bands: str | None = None) -> None:
    """Build one block of SEASON as ``s2seasons build`` would, with a bbox inside that block only."""
    from app.queue import block_bbox_4326
    from compositor.build import run_build
    from compositor.grid import OutputGrid

    block = OutputGrid(**GRID).block_by_id(block_id)
    summary = run_build(app_settings(data, catalog), SEASON, block_bbox_4326(block), bands=bands, workers=1,
                        progress=False)
    assert [r.block_id for r in summary.results] == [block_id], summary.describe()
    assert not summary.failed, summary.describe()


@contextlib.contextmanager
def live_server(data: Path, catalog: Path, log_path: Path, **env: str) -> Iterator[str]:
    """``s2seasons serve`` in a child process on a free loopback port; yields its base URL, stops it after."""
    environ = {"S2SEASONS_CRS": GRID["crs"], "S2SEASONS_RESOLUTION_M": str(GRID["resolution_m"]),
               "S2SEASONS_BLOCK_SIZE_PX": str(GRID["block_size_px"]), **env}
    cli = [sys.executable, "-c", "from app.cli import run; run()"]
    with serve_process(cli, data, catalog, log_path, env=environ, cwd=REPO) as (base, _):
        yield base


def tile_of(lonlat: tuple[float, float], z: int, tms_id: str = "WebMercatorQuad") -> morecantile.Tile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return morecantile.tms.get(tms_id).tile(*lonlat, z)


def tile_url(lonlat: tuple[float, float], z: int, fmt: str = "png", query: str = "", tms_id: str = "WebMercatorQuad",
             season: str = SEASON) -> str:
    t = tile_of(lonlat, z, tms_id)
    return f"/seasons/{season}/tiles/{tms_id}/{z}/{t.x}/{t.y}.{fmt}" + (f"?{query}" if query else "")


def decode(content: bytes) -> np.ndarray:
    """An image the server returned (png, jpeg, webp, tif) as a (bands, h, w) array."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(content) as memfile, memfile.open() as src:
            return src.read()


def load_npy(content: bytes) -> np.ndarray:
    """A ``.npy`` answer: the data bands followed by the mask band (255 valid, 0 empty)."""
    return np.load(io.BytesIO(content))
