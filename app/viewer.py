"""The web viewer: ``/`` renders ``templates/viewer.html``; ``/static`` serves ``static/`` (Leaflet vendored).

The page is plain HTML, CSS and JavaScript modules that talk to the server's own JSON and tile
endpoints (``/seasons``, ``/presets``, ``/colorMaps``, the season tiles and point queries), so it
needs no other host: it works offline. The repository keeps both folders at its top; a wheel carries
them inside the package as ``app/templates`` and ``app/static`` (pyproject.toml maps them in as package
data). They are found from the ``app`` package's folder, never relative to the working directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from app.presets import DEFAULT_PRESET, PRESETS
from compositor import __version__
from compositor.bands import BANDS, MEDOID, STATISTICS

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
VIEWER_TEMPLATE = "viewer.html"


def viewer_folder(name: str) -> Path:
    """The viewer's folder ``name``: inside the package in a wheel install, beside it in a checkout.

    A checkout (an editable install, the tests) has it at the repository's top, beside ``app``. The folders
    are located, not imported as ``app.templates``/``app.static``: setuptools' editable finder does not import
    a subpackage without ``__init__.py`` mapped to another folder, and the folders hold no Python.
    """
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / name


TEMPLATES_DIR = viewer_folder("templates")
STATIC_DIR = viewer_folder("static")


def viewer_config(request: Request) -> dict[str, object]:
    """What the page needs before its first request: URL roots, presets, bands, the on-the-fly minimum zoom."""
    root_path = request.scope.get("root_path", "").rstrip("/")
    settings = getattr(request.app.state, "settings", None)
    return {
        "apiRoot": root_path,
        "staticRoot": f"{root_path}/static",
        "version": __version__,
        "defaultPreset": DEFAULT_PRESET,
        "presets": [p.as_json() for p in PRESETS.values() if not p.variant],
        "fillFlag": PRESETS["fill-flag"].as_json(),  # the filled variant's flag: an overlay, not a preset card
        "bands": [{"name": b.name, "description": b.description} for b in BANDS],
        "statistics": [*STATISTICS, MEDOID],
        "onTheFlyMinZoom": settings.onthefly_min_zoom if settings is not None else None,
    }


def viewer_router(templates_dir: Path = TEMPLATES_DIR, static_dir: Path = STATIC_DIR) -> APIRouter:
    """``GET /`` (the viewer page) and ``/static`` (its scripts, styles and the vendored Leaflet).

    Without the two folders (an install that left them out) the router is empty: the tile server
    runs, ``/`` is a 404 and a warning says why.
    """
    router = APIRouter(tags=["Viewer"])
    if not (templates_dir / VIEWER_TEMPLATE).is_file() or not static_dir.is_dir():
        logger.warning("viewer disabled: %s or %s is missing (an install without the repository's templates/ "
                       "and static/)", templates_dir / VIEWER_TEMPLATE, static_dir)
        return router
    templates = Jinja2Templates(directory=str(templates_dir))

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def viewer(request: Request) -> HTMLResponse:
        """The viewer; its state (season, preset, statistic, map position...) lives in the query string."""
        config = viewer_config(request)
        return templates.TemplateResponse(request, VIEWER_TEMPLATE, {"config": config,
                                                                     "static_root": config["staticRoot"]})

    router.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    return router
