"""The server's logs: plain text lines (default) or JSON lines (``log_format=json``), with request ids.

One line per request on logger ``app.requests`` (`app.middleware.RequestLogMiddleware`): method, path,
status, milliseconds, where the pixels came from, the request id. In JSON every line is an object
with ``time``, ``level``, ``logger``, ``message`` and the request's fields; other lines logged while
a request runs (errors, warnings) carry its ``request_id`` too (from the context variable).
"""

from __future__ import annotations

import json
import logging
import time

from app.context import request_id

REQUEST_FIELDS = ("method", "path", "query", "status", "ms", "source", "cache", "skipped_scenes",
                  "client")
PACKAGES = ("app", "compositor")
_HANDLER_NAME = "s2seasons"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            entry["request_id"] = rid
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter("%(asctime)s %(name)s %(message)s")


def configure_logging(log_format: str = "text") -> None:
    """Make the server's logs visible when nothing else configured logging (``s2seasons serve``, uvicorn).

    Request lines and composited chunks (INFO) and the packages' warnings and errors go to stderr in ``log_format``. When
    the host application or the test runner configured the root logger, records go there as usual.
    """
    logging.getLogger("app.requests").setLevel(logging.INFO)
    logging.getLogger("app.onthefly").setLevel(logging.INFO)  # one line per composited chunk
    if logging.getLogger().handlers:
        return
    for name in PACKAGES:
        logger = logging.getLogger(name)
        handler = next((h for h in logger.handlers if h.get_name() == _HANDLER_NAME), None)
        if handler is None:
            handler = logging.StreamHandler()
            handler.set_name(_HANDLER_NAME)
            logger.addHandler(handler)
        handler.setFormatter(make_formatter(log_format))
