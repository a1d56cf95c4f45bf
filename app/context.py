"""What one request learned while it ran: where its pixels came from, and when it started.

The tile middleware opens a `RequestRecord` for each request; the season reader (running in a
worker thread, which inherits the context) writes into it; the middleware turns it into response
headers (``X-S2Seasons-Source``, ``X-S2Seasons-Scenes``, ``X-S2Seasons-Skipped-Scenes``), decides whether the response
may be cached, and sets ``disconnected`` when the client goes away, so that on-the-fly waits
(`wait_result`) give up their place at once. The request id (``X-Request-ID``) is a context
variable of its own, set for every request (logs carry it).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from app.errors import ClientDisconnectedError, ScenesUnavailableError

T = TypeVar("T")
DISCONNECT_POLL_S = 0.2

SOURCE_BUILT = "built"
SOURCE_ONTHEFLY = "on-the-fly"
SOURCE_MIXED = "mixed"
SOURCE_NOT_BUILT = "not-built"


@dataclass
class RequestRecord:
    """Mutable per-request notes; ``started`` is a `time.monotonic` value."""

    started: float = field(default_factory=time.monotonic)
    sources: set[str] = field(default_factory=set)
    not_built: str | None = None  # why part of the answer was left empty, if it was
    cacheable: bool = True
    skipped_scenes: int = 0  # source scenes that could not be read (on the fly)
    scenes_read: set[str] = field(default_factory=set)  # source scenes composited on the fly for the answer
    disconnected: threading.Event = field(default_factory=threading.Event)

    def add_source(self, source: str) -> None:
        self.sources.add(source)

    @property
    def source(self) -> str | None:
        """One word for all reads of the request: built, on-the-fly, mixed or not-built."""
        drawn = self.sources - {SOURCE_NOT_BUILT}
        if not drawn:
            return SOURCE_NOT_BUILT if self.sources else None
        if len(drawn) == 1:
            return next(iter(drawn))
        return SOURCE_MIXED


_current: ContextVar[RequestRecord | None] = ContextVar("s2seasons_request", default=None)
request_id: ContextVar[str | None] = ContextVar("s2seasons_request_id", default=None)


def open_record() -> RequestRecord:
    record = RequestRecord()
    _current.set(record)
    return record


def open_part_record(request: RequestRecord) -> RequestRecord:
    """A record of one part of ``request`` run in a thread of its own (a season of a series): its own sources and
    scenes, the request's start (so its on-the-fly budget) and the request's client leaving. Set in the calling
    context, which should be a copy of the request's (`contextvars.copy_context`)."""
    record = RequestRecord(started=request.started, disconnected=request.disconnected)
    _current.set(record)
    return record


def merge_record(request: RequestRecord, part: RequestRecord) -> None:
    """What a part of ``request`` learned, into the request's record (its response headers)."""
    request.sources |= part.sources
    request.scenes_read |= part.scenes_read
    request.skipped_scenes += part.skipped_scenes
    request.cacheable = request.cacheable and part.cacheable


def current_record() -> RequestRecord:
    """The record of the running request, or a detached one (a reader used outside a request)."""
    return _current.get() or RequestRecord()


def wait_result(future: Future[T], deadline: float) -> T:
    """``future``'s result, waiting until ``deadline`` (monotonic) at most (`TimeoutError` after).

    Gives up early with `ClientDisconnectedError` when the running request's client went away, so
    that a cancelled request (a map panned on) frees its place among the waiters at once.
    """
    disconnected = current_record().disconnected
    while True:
        remaining = deadline - time.monotonic()
        try:
            return future.result(timeout=max(0.0, min(remaining, DISCONNECT_POLL_S)))
        except FutureTimeout:
            if remaining <= DISCONNECT_POLL_S:
                raise
            if disconnected.is_set():
                raise ClientDisconnectedError("the client closed the connection") from None


def note_scenes(scenes_read: Iterable[str], skipped: Mapping[str, str], usable: bool) -> None:
    """What an on-the-fly answer used: the scenes it read, and those it left out because they could not be
    read (then the answer is never cached); when nothing at all could be used (``usable`` false),
    `ScenesUnavailableError` (503, retry later) instead of an empty answer."""
    record = current_record()
    record.scenes_read.update(scenes_read)
    if not skipped:
        return
    record.cacheable = False
    record.skipped_scenes += len(skipped)
    if not usable:
        raise ScenesUnavailableError(f"none of the scenes could be read ({len(skipped)} skipped): "
                                     + "; ".join(list(skipped.values())[:3]))
