"""ASGI middlewares: request ids and one log line per request, and the season responses' headers and tile cache.

`RequestLogMiddleware` sets ``X-Request-ID`` and logs the request. `BodyLimitMiddleware` bounds request
bodies: a 413 with a JSON ``{"detail": ...}`` like every other error. `SeasonResponseMiddleware` opens
the request record the reader writes into, then:

* adds ``X-S2Seasons-Source`` (built, on-the-fly, mixed, not-built) and, when part of the area was
  left empty, ``X-S2Seasons-Not-Built`` with the reason, to every season response that read data;
  ``X-S2Seasons-Scenes`` counts the source scenes an on-the-fly answer composited, and
  ``X-S2Seasons-Skipped-Scenes`` those it had to leave out;
* listens, while a GET runs, for the client going away (``record.disconnected``), so that a
  cancelled on-the-fly request gives up its place in the waiting room at once;
* for tiles (``/seasons/{season}/tiles/{tms}/{z}/{x}/{y}...``): serves them from the LRU of
  rendered tiles, stores new ones (the key is the full path and query, so every format, preset and
  parameter is its own entry), sets ``ETag`` and ``Cache-Control`` and answers ``If-None-Match``
  with 304. The registry drops a season's entries when one of its blocks gets built.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.cache import CachedTile, SeasonCache
from app.context import SOURCE_BUILT, RequestRecord, open_record, request_id
from app.services import Services
from app.wms import WMS_PATH  # its maps read seasons too

logger = logging.getLogger("app.requests")

TILE_PATH = re.compile(r"^/seasons/(?P<season>[^/]+)/tiles/[^/]+/\d+/\d+/\d+(?:\.[a-z0-9]+)?$")
SEASON_PATH = re.compile(r"^/seasons/(?P<season>[^/]+)/")
SOURCE_HEADER = "X-S2Seasons-Source"
NOT_BUILT_HEADER = "X-S2Seasons-Not-Built"
SKIPPED_HEADER = "X-S2Seasons-Skipped-Scenes"
SCENES_HEADER = "X-S2Seasons-Scenes"
CACHE_HEADER = "X-S2Seasons-Cache"
MAX_AGE_BUILT_S = 3600
MAX_AGE_OTHER_S = 60  # on-the-fly and not-built tiles change when the area gets built
REQUEST_ID_HEADER = "X-Request-ID"
MAX_LOGGED_TARGET = 2000
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_of(headers: Headers) -> str:
    """The client's ``X-Request-ID`` when it is a sane token (128 characters of [A-Za-z0-9._:-]), else a new one."""
    given = headers.get(REQUEST_ID_HEADER)
    if given and _VALID_REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _shorten(text: str, limit: int = MAX_LOGGED_TARGET) -> str:
    """``text`` cut at ``limit`` characters (a 50 kB query makes a 50 kB log line otherwise)."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


@dataclass
class RequestLogMiddleware:
    """The request id and the request log: one line per request at INFO on logger ``app.requests``.

    ``X-Request-ID`` is taken from the request (when sane) or made, set on every answer and kept in a
    context variable for the other log lines of the request. The path is logged as it came (still
    percent-encoded: a decoded ``%0A`` cannot forge a log line), cut at 2000 characters. The line reads
    ``METHOD path?query status milliseconds source=... cache=... skipped=... id=...``; its fields are
    also record attributes (``method``, ``path``, ``status``, ``ms``, ``source``...) for JSON logs.
    """

    app: ASGIApp
    logger: logging.Logger = field(default_factory=lambda: logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id_of(Headers(scope=scope))
        token = request_id.set(rid)
        status = 500
        response_headers: dict[str, str] = {}

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = rid
                response_headers.update((k.lower(), v) for k, v in headers.items()
                                        if k.lower() in (SOURCE_HEADER.lower(), CACHE_HEADER.lower(),
                                                         SKIPPED_HEADER.lower()))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            query = scope.get("query_string", b"").decode("latin-1")
            path = (scope.get("raw_path") or scope["path"].encode("utf-8", "backslashreplace")).decode("latin-1")
            target = _shorten(path + (f"?{query}" if query else ""))
            source = response_headers.get(SOURCE_HEADER.lower())
            cache = response_headers.get(CACHE_HEADER.lower())
            skipped = response_headers.get(SKIPPED_HEADER.lower())
            notes = "".join(f" {k}={v}" for k, v in (("source", source), ("cache", cache), ("skipped", skipped))
                            if v)
            client = scope.get("client")
            self.logger.info("%s %s %d %.1fms%s id=%s", scope["method"], target, status, ms, notes, rid,
                             extra={"request_id": rid, "method": scope["method"], "path": _shorten(path),
                                    "query": _shorten(query) or None, "status": status, "ms": ms, "source": source,
                                    "cache": cache, "skipped_scenes": int(skipped) if skipped else None,
                                    "client": client[0] if client else None})
            request_id.reset(token)


class BodyTooLargeError(HTTPException):
    """A request body that streamed past `BodyLimitMiddleware`'s limit: a 413 the app's handler of
    `HTTPException` answers as JSON (`app.errors`), or the middleware itself when it gets there first."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


@dataclass
class BodyLimitMiddleware:
    """Request bodies of at most ``max_bytes``; a larger one is a 413 ``{"detail": detail}`` (application/json).

    A ``Content-Length`` over the limit is answered at once, before the app runs or a byte of the body is
    read. A body without one (chunked) is counted as the app reads it: the read that goes over raises
    `BodyTooLargeError` instead of handing over the bytes. (Starlette's own limit, FastAPI's
    ``max_body_size``, answers a plain-text 413 past the app's middlewares and exception handlers.)
    """

    app: ASGIApp
    max_bytes: int
    detail: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            if received > self.max_bytes:
                raise BodyTooLargeError(self.detail)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.detail)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLargeError:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": self.detail}, status_code=413)(scope, receive, send)


@contextlib.asynccontextmanager
async def watch_disconnect(receive: Receive, record: RequestRecord):
    """A ``receive`` for the app of a request without a body, while a task listens for the client leaving
    and then sets ``record.disconnected`` (on-the-fly waits give up their place; `app.context.wait_result`)."""
    first = await receive()
    if first["type"] != "http.request" or first.get("more_body", False):
        if first["type"] == "http.disconnect":
            record.disconnected.set()
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return first

        yield replay
        return
    gone = asyncio.Event()

    async def listen() -> None:
        with contextlib.suppress(Exception):  # a server whose receive fails after the body: no news then
            while (await receive())["type"] != "http.disconnect":
                pass
            record.disconnected.set()
            gone.set()

    listener = asyncio.create_task(listen())
    delivered = False

    async def app_receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return first
        await gone.wait()
        return {"type": "http.disconnect"}

    try:
        yield app_receive
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


def _cache_key(scope: Scope, season: str) -> tuple:
    query = tuple(sorted(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)))
    return (season, scope["path"], urlencode(query))


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@dataclass
class SeasonResponseMiddleware:
    """Source headers on season responses; cache, ETag and Cache-Control on tiles (module docstring)."""

    app: ASGIApp
    services: Services

    @property
    def cache(self) -> SeasonCache[CachedTile]:
        return self.services.tiles

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "/files/" in scope["path"] or not (
                SEASON_PATH.match(scope["path"]) or scope["path"] == WMS_PATH):
            await self.app(scope, receive, send)
            return
        tile = TILE_PATH.match(scope["path"]) if scope["method"] in ("GET", "HEAD") else None
        request_headers = Headers(scope=scope)
        key = None
        if tile:
            season = await self._season_name(tile["season"])
            if season is not None:
                key = _cache_key(scope, season)
                cached = self.cache.get(key)
                if cached is not None:
                    await self._send_cached(cached, request_headers, scope, send)
                    return
        record = open_record()
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                headers = MutableHeaders(scope=message)
                if record.source:
                    headers[SOURCE_HEADER] = record.source
                if record.not_built:
                    headers[NOT_BUILT_HEADER] = record.not_built
                if record.scenes_read:
                    headers[SCENES_HEADER] = str(len(record.scenes_read))
                if record.skipped_scenes:
                    headers[SKIPPED_HEADER] = str(record.skipped_scenes)
                if not tile or message["status"] != 200:
                    await send(message)
                return
            if not tile or start is None or start["status"] != 200:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._finish_tile(start, b"".join(chunks), key if record.cacheable else None, record.source,
                                        request_headers, scope, send)

        if scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, capture)
            return
        async with watch_disconnect(receive, record) as app_receive:
            await self.app(scope, app_receive, capture)

    async def _season_name(self, name: str) -> str | None:
        registry = self.services.registry
        try:
            # a store may be listed (and a season re-indexed, which invalidates caches): not on the event loop
            return (await anyio.to_thread.run_sync(registry.get, name)).name
        except Exception:
            return None  # the route answers the error

    async def _finish_tile(self, start: Message, body: bytes, key: tuple | None, source: str | None,
                           request_headers: Headers, scope: Scope, send: Send) -> None:
        headers = MutableHeaders(scope=start)
        etag = _etag(body)
        max_age = MAX_AGE_BUILT_S if source == SOURCE_BUILT and NOT_BUILT_HEADER not in headers else MAX_AGE_OTHER_S
        headers["ETag"] = etag
        headers["Cache-Control"] = f"public, max-age={max_age}"
        headers[CACHE_HEADER] = "miss"
        kept = tuple((k, v) for k, v in headers.items()
                     if k.lower() not in ("content-length", "etag", CACHE_HEADER.lower(), "date", "server"))
        if key is not None:
            self.cache.put(key, CachedTile(body, headers.get("content-type", ""), etag, kept))
        if _matches(request_headers.get("if-none-match"), etag):
            await self._send_not_modified(etag, kept, send)
            return
        await send(start)
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _send_cached(self, cached: CachedTile, request_headers: Headers, scope: Scope, send: Send) -> None:
        if _matches(request_headers.get("if-none-match"), cached.etag):
            await self._send_not_modified(cached.etag, cached.headers, send)
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in cached.headers]
        headers += [(b"etag", cached.etag.encode()), (b"content-length", str(len(cached.body)).encode()),
                    (CACHE_HEADER.lower().encode(), b"hit")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else cached.body})

    async def _send_not_modified(self, etag: str, kept: tuple[tuple[str, str], ...], send: Send) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in kept if k.lower() != "content-type"]
        headers.append((b"etag", etag.encode()))
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
