"""What one request learned while it ran: where its pixels came from, and when it started.

The tile middleware opens a `RequestRecord` for each request; the season reader (running in a
worker thread, which inherits the context) writes into it; the middleware turns it into response
headers (``X-S2Seasons-Source``) and decides whether the response may be cached.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

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


def open_record() -> RequestRecord:
    record = RequestRecord()
    _current.set(record)
    return record


def current_record() -> RequestRecord:
    """The record of the running request, or a detached one (a reader used outside a request)."""
    return _current.get() or RequestRecord()
