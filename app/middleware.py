"""ASGI middlewares: one log line per request, and the season responses' headers and tile cache.

`SeasonResponseMiddleware` opens the request record the reader writes into, then:

* adds ``X-S2Seasons-Source`` (built, on-the-fly, mixed, not-built) and, when part of the area was
  left empty, ``X-S2Seasons-Not-Built`` with the reason, to every season response that read data;
* for tiles (``/seasons/{season}/tiles/{tms}/{z}/{x}/{y}...``): serves them from the LRU of
  rendered tiles, stores new ones (the key is the full path and query, so every format, preset and
  parameter is its own entry), sets ``ETag`` and ``Cache-Control`` and answers ``If-None-Match``
  with 304. The registry drops a season's entries when one of its blocks gets built.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.cache import CachedTile, SeasonCache
from app.context import SOURCE_BUILT, open_record
from app.services import Services

logger = logging.getLogger("app.requests")

TILE_PATH = re.compile(r"^/seasons/(?P<season>[^/]+)/tiles/[^/]+/\d+/\d+/\d+(?:\.[a-z0-9]+)?$")
SEASON_PATH = re.compile(r"^/seasons/(?P<season>[^/]+)/")
SOURCE_HEADER = "X-S2Seasons-Source"
NOT_BUILT_HEADER = "X-S2Seasons-Not-Built"
CACHE_HEADER = "X-S2Seasons-Cache"
MAX_AGE_BUILT_S = 3600
MAX_AGE_OTHER_S = 60  # on-the-fly and not-built tiles change when the area gets built


@dataclass
class RequestLogMiddleware:
    """``METHOD path?query status milliseconds`` at INFO on logger ``app.requests``, one line per request."""

    app: ASGIApp
    logger: logging.Logger = field(default_factory=lambda: logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            self.logger.info("%s %s %d %.1fms", scope["method"], target, status,
                             (time.perf_counter() - started) * 1000)


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
        if scope["type"] != "http" or not SEASON_PATH.match(scope["path"]) or "/files/" in scope["path"]:
            await self.app(scope, receive, send)
            return
        tile = TILE_PATH.match(scope["path"]) if scope["method"] in ("GET", "HEAD") else None
        request_headers = Headers(scope=scope)
        key = None
        if tile:
            season = self._season_name(tile["season"])
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

        await self.app(scope, receive, capture)

    def _season_name(self, name: str) -> str | None:
        try:
            return self.services.registry.get(name).name  # also notices new blocks, which invalidates
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
