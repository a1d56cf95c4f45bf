"""The web viewer: ``/`` renders ``templates/viewer.html``; ``/static`` serves ``static/`` (Leaflet vendored).

The page is plain HTML, CSS and JavaScript modules that talk to the server's own JSON and tile
endpoints (``/seasons``, ``/presets``, ``/colorMaps``, the season tiles and point queries), so it
needs no other host: it works offline. The folders are found next to the ``app`` package (the
repository root of an editable install), never relative to the working directory.
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
from compositor.bands import BANDS, STATISTICS

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
VIEWER_TEMPLATE = "viewer.html"


def viewer_config(request: Request) -> dict[str, object]:
    """What the page needs before its first request: URL roots, presets, bands, the on-the-fly minimum zoom."""
    root_path = request.scope.get("root_path", "").rstrip("/")
    settings = getattr(request.app.state, "settings", None)
    return {
        "apiRoot": root_path,
        "staticRoot": f"{root_path}/static",
        "version": __version__,
        "defaultPreset": DEFAULT_PRESET,
        "presets": [p.as_json() for p in PRESETS.values()],
        "bands": [{"name": b.name, "description": b.description} for b in BANDS],
        "statistics": list(STATISTICS),
        "onTheFlyMinZoom": settings.onthefly_min_zoom if settings is not None else None,
    }


def viewer_router(templates_dir: Path = TEMPLATES_DIR, static_dir: Path = STATIC_DIR) -> APIRouter:
    """``GET /`` (the viewer page) and ``/static`` (its scripts, styles and the vendored Leaflet).

    Without the two folders (an install that left them out) the router is empty: the tile server
    runs, ``/`` is a 404 and a warning says why.
    """
    router = APIRouter(tags=["Viewer"])
    if not (templates_dir / VIEWER_TEMPLATE).is_file() or not static_dir.is_dir():
        logger.warning("viewer disabled: %s or %s is missing (install s2seasons from its repository with "
                       "pip install -e .)", templates_dir / VIEWER_TEMPLATE, static_dir)
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
