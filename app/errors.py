"""Errors of the library and of rio-tiler mapped to HTTP status codes, in one place.

Bodies are ``{"detail": message}``. A 5xx body never carries a path or a traceback: errors the
client cannot fix say what happened in general terms and are logged in full. Errors that ask the
client to come back later (busy, over budget, catalog unreachable) carry ``Retry-After``.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from morecantile.errors import InvalidZoomError
from rasterio.errors import RasterioError
from rio_tiler.errors import (
    InvalidBufferSize,
    InvalidColorFormat,
    InvalidExpression,
    InvalidFormat,
    PointOutsideBounds,
    RioTilerError,
    TileOutsideBounds,
)
from starlette import status
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from compositor.errors import (
    CatalogError,
    CatalogUnavailableError,
    CompositorError,
    InvalidInputError,
    NoObservationsError,
    SeasonNotFoundError,
    SourceUnavailableError,
    StorageError,
)

logger = logging.getLogger(__name__)


class ServerBusyError(CompositorError):
    """On-the-fly work cannot be done now (queue full, or the time budget ran out): retry later."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFoundError(InvalidInputError):
    """A tile, file or resource the client named does not exist (z/x/y outside the matrix...)."""


class ScenesUnavailableError(SourceUnavailableError):
    """On the fly, no scene of the area could be read (missing, truncated, corrupt, unreachable): retry later."""


class ClientDisconnectedError(CompositorError):
    """The client closed the connection while its request waited (nobody reads the answer)."""


CLIENT_CLOSED_REQUEST = 499  # nginx's code for a request the client gave up on: shows in the request log


# Most specific first: the first class an exception is an instance of decides.
STATUS_CODES: tuple[tuple[type[Exception], int], ...] = (
    (ServerBusyError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ClientDisconnectedError, CLIENT_CLOSED_REQUEST),
    (ScenesUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (SeasonNotFoundError, status.HTTP_404_NOT_FOUND),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (InvalidInputError, status.HTTP_400_BAD_REQUEST),
    (NoObservationsError, status.HTTP_404_NOT_FOUND),
    (CatalogUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (CatalogError, status.HTTP_502_BAD_GATEWAY),
    (SourceUnavailableError, status.HTTP_502_BAD_GATEWAY),
    (StorageError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (TileOutsideBounds, status.HTTP_404_NOT_FOUND),
    (PointOutsideBounds, status.HTTP_404_NOT_FOUND),
    (InvalidExpression, status.HTTP_400_BAD_REQUEST),
    (InvalidBufferSize, status.HTTP_400_BAD_REQUEST),
    (InvalidColorFormat, status.HTTP_400_BAD_REQUEST),
    (InvalidFormat, status.HTTP_400_BAD_REQUEST),
    (InvalidZoomError, status.HTTP_400_BAD_REQUEST),  # minzoom/maxzoom a tile matrix set cannot have
)
CLIENT_SAFE = (InvalidInputError, TileOutsideBounds, PointOutsideBounds, InvalidExpression, InvalidBufferSize,
               InvalidColorFormat, InvalidFormat, InvalidZoomError, NoObservationsError, ClientDisconnectedError)
CATALOG_RETRY_AFTER_S = 30
SCENES_RETRY_AFTER_S = 30


def status_for(exc: Exception) -> int:
    for cls, code in STATUS_CODES:
        if isinstance(exc, cls):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def _public_message(exc: Exception, code: int) -> str:
    if isinstance(exc, CLIENT_SAFE) or isinstance(exc, ServerBusyError):
        return str(exc)
    if isinstance(exc, CatalogUnavailableError):
        return "the scene catalog cannot be reached now; try again later"
    if isinstance(exc, CatalogError):
        return "the scene catalog returned something that is not a usable STAC item"
    if isinstance(exc, ScenesUnavailableError):
        return "none of the source scenes of this area could be read now; try again later"
    if isinstance(exc, SourceUnavailableError):
        return "a source scene could not be read; try again later"
    if isinstance(exc, StorageError):
        return "the store of the built seasons cannot be reached now; try again later"
    return "internal error; it has been logged"


def describe_error(exc: Exception, where: str) -> tuple[int, str]:
    """The status code and public message of ``exc``, logged as the server logs errors (``where``: what failed,
    e.g. ``GET /path``): upstream trouble as a warning, any other 5xx with its traceback."""
    code = status_for(exc)
    if isinstance(exc, (CatalogUnavailableError, ScenesUnavailableError, StorageError)):
        logger.warning("%s: %s", where, exc)  # upstream trouble: no traceback
    elif code >= 500 and not isinstance(exc, ServerBusyError):
        logger.error("%s failed with %d", where, code, exc_info=exc)
    return code, _public_message(exc, code)


def retry_after_s(exc: Exception) -> int | None:
    """Seconds after which a request that failed with ``exc`` may succeed (``Retry-After``); None: never by itself."""
    if isinstance(exc, ServerBusyError):
        return max(1, math.ceil(exc.retry_after_s))
    if isinstance(exc, CatalogUnavailableError):
        return CATALOG_RETRY_AFTER_S
    if isinstance(exc, (ScenesUnavailableError, StorageError)):
        return SCENES_RETRY_AFTER_S
    return None


def error_response(request: Request, exc: Exception) -> JSONResponse:
    code, detail = describe_error(exc, f"{request.method} {request.url.path}")
    retry = retry_after_s(exc)
    headers = {"Retry-After": str(retry)} if retry is not None else {}
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, exc)


async def _handle_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _handle_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with the messages of the invalid parameters (never their internals)."""
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "invalid value"))}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the mapping on ``app``; anything unmapped becomes a logged 500 without details."""
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    for cls in (CompositorError, RioTilerError, RasterioError, InvalidZoomError, Exception):
        app.add_exception_handler(cls, _handle)
