"""Liveness and readiness for orchestrators and load balancers.

* ``/healthz``: the process answers (nothing else is checked: restart it when this fails).
* ``/readyz``: the server can do its work: the data folder is readable, and the scene catalog is
  reachable (a local catalog file or folder exists and is readable; a STAC API's landing page
  answers within ``readyz_timeout_s``). The result is kept ``readyz_cache_s`` seconds, so probes
  never flood the catalog. 503 names the failing checks (never a path: those are logged).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from compositor import __version__
from compositor.catalog import is_remote
from app.settings import ServerSettings
from compositor.storage import open_store

logger = logging.getLogger(__name__)

OK = "ok"
MAX_LANDING_BYTES = 1 << 20


def check_data_dir(location: Path | str, timeout_s: float = 2.0) -> str:
    """``ok``, or why the data folder (or object store) cannot be read (`OutputStore.readable`)."""
    return open_store(location).readable(timeout_s) or OK


def check_catalog(catalog: str, timeout_s: float) -> str:
    """``ok``, or why the catalog cannot be reached: a STAC API's landing page must answer JSON in time."""
    if is_remote(catalog):
        try:
            with urllib.request.urlopen(catalog, timeout=timeout_s) as response:
                json.loads(response.read(MAX_LANDING_BYTES))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.warning("readiness: STAC API %s: %s", catalog, exc)
            return f"the STAC API did not answer with its landing page within {timeout_s:g} s"
        return OK
    path = Path(catalog)
    if not path.exists() or not os.access(path, os.R_OK):
        logger.warning("readiness: catalog %s is missing or not readable", path)
        return "the local catalog (S2SEASONS_CATALOG) is missing or not readable"
    return OK


@dataclass
class Readiness:
    """The checks of ``/readyz``, run at most once per ``settings.readyz_cache_s``."""

    settings: ServerSettings
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _checked_at: float = -float("inf")
    _result: dict[str, str] = field(default_factory=dict)

    def checks(self) -> dict[str, str]:
        with self._lock:  # concurrent probes wait for one run of the checks
            if time.monotonic() - self._checked_at >= self.settings.readyz_cache_s or not self._result:
                self._result = {
                    "data_dir": check_data_dir(self.settings.data_dir, self.settings.readyz_timeout_s),
                    "catalog": check_catalog(self.settings.catalog, self.settings.readyz_timeout_s),
                }
                self._checked_at = time.monotonic()
            return dict(self._result)


def health_router(settings: ServerSettings) -> APIRouter:
    router = APIRouter(tags=["Service"])
    readiness = Readiness(settings)

    @router.get("/healthz", summary="Liveness: the process answers")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "version": __version__}

    @router.get("/readyz", summary="Readiness: the data folder is readable and the scene catalog reachable",
                responses={503: {"description": "A check failed; ``detail`` says which."}})
    def readyz(request: Request) -> JSONResponse:
        checks = readiness.checks()
        failed = {name: message for name, message in checks.items() if message != OK}
        if failed:
            return JSONResponse({"status": "unavailable", "checks": checks, "detail": "; ".join(failed.values())},
                                status_code=503, headers={"Retry-After": str(max(1, round(settings.readyz_cache_s)))})
        return JSONResponse({"status": "ready", "checks": checks, "version": __version__})

    return router
