"""Fixtures of the tile server tests: a small synthetic archive, half of it built, apps and a live server.

The archive straddles the boundary of two grid blocks (EPSG:3035, 100 m, 256 px blocks): block
``c172_r107`` (west) is built, ``c173_r107`` (east) is not, so tiles over the boundary are mixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.app.helpers import ARCHIVE_BBOX, BUILT_BLOCK, SEASON, Archive, Built, app_settings, build_block, live_server


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Archive:
    """A synthetic Sentinel-2 archive of 2022-winter over ARCHIVE_BBOX (two orbits, clouds, 100 m pixels)."""
    from compositor.testing.synthetic import generate_archive

    root = tmp_path_factory.mktemp("app-archive")
    summary = generate_archive(root, seasons=(SEASON,), bbox_4326=ARCHIVE_BBOX, pixel_size_m=100.0, seed=4)
    return Archive(root, Path(summary.catalog_path))


@pytest.fixture(scope="session")
def built(archive, tmp_path_factory) -> Built:
    """SEASON with block BUILT_BLOCK built (all bands) and its season outputs (VRTs, overview, STAC)."""
    data = tmp_path_factory.mktemp("app-data")
    build_block(data, archive.catalog, BUILT_BLOCK)
    return Built(archive, data)


@pytest.fixture(scope="session")
def settings(built):
    return app_settings(built.data, built.archive.catalog)


@pytest.fixture(scope="session")
def client(settings) -> Iterator[TestClient]:
    """An app over the built data (TestClient, in process)."""
    from app.main import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def unbuilt_client(archive, tmp_path_factory) -> Iterator[TestClient]:
    """An app over an empty data folder: everything is composited on the fly."""
    from app.main import create_app

    empty = tmp_path_factory.mktemp("app-empty")
    settings = app_settings(empty, archive.catalog)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass(frozen=True)
class LiveServer:
    base: str  # http://127.0.0.1:PORT
    log: Path  # what the server printed


@pytest.fixture(scope="session")
def server(built, tmp_path_factory) -> Iterator[LiveServer]:
    """A live ``s2seasons serve`` process over the built data."""
    log = tmp_path_factory.mktemp("app-server") / "server.log"
    with live_server(built.data, built.archive.catalog, log) as base:
        yield LiveServer(base, log)
