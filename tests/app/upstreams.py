"""Broken upstreams for the tests: loopback HTTP servers that are slow, flaky or silent, and broken scene files."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from compositor.bands import ASSET_KEYS


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free loopback port in a thread; yields ``http://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def slow_stac_handler(delay_s: float) -> type[BaseHTTPRequestHandler]:
    """A STAC API that answers every request (an empty landing page or search) after ``delay_s``."""

    class Slow(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            time.sleep(delay_s)
            body = json.dumps({"type": "Catalog", "id": "slow", "description": "slow", "stac_version": "1.0.0",
                               "links": [], "conformsTo": []}).encode()
            with contextlib.suppress(OSError):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    return Slow


def file_handler(path: Path, fail_first: int = 0) -> tuple[type[BaseHTTPRequestHandler], list[int]]:
    """Serves ``path`` at any URL with Range support; the first ``fail_first`` requests get a 503.
    Returns the handler and the list of statuses it answered (for assertions)."""
    data = path.read_bytes()
    statuses: list[int] = []
    lock = threading.Lock()

    class Files(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            with lock:
                failing = len(statuses) < fail_first
                status = 503 if failing else 200
                statuses.append(status)
            if failing:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            part, first = data, 0
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                first_text, _, last_text = ranged[6:].partition("-")
                first = int(first_text)
                last = min(int(last_text) if last_text else len(data) - 1, len(data) - 1)
                part = data[first:last + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{first + len(part) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if body:
                self.wfile.write(part)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, *args) -> None:
            pass

    return Files, statuses


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers; yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


# --- broken scene files -----------------------------------------------------------------------------

def missing(source: Path, target: Path) -> Path:
    return target.with_name("missing-" + target.name)  # never written


def truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[:min(2048, len(data) // 2)])  # the header, and not all of the pixels
    return target


def corrupt(source: Path, target: Path) -> Path:
    target.write_bytes(os.urandom(source.stat().st_size))
    return target


def broken_catalog(catalog: Path, out: Path, breaks: dict[str, Callable[[Path, Path], Path]],
                   assets: tuple[str, ...] = ("scl",)) -> Path:
    """A copy of an ItemCollection (hrefs made absolute) where ``assets`` of the scenes in ``breaks``
    point to broken files (``breaks[scene id](source file, target file)`` makes one); returns its path."""
    collection = json.loads(catalog.read_text())
    keys = {alias for name in assets for alias in ASSET_KEYS[name]}  # common names or band ids (B04, SCL)
    out.mkdir(parents=True, exist_ok=True)
    for item in collection["features"]:
        for key, asset in item["assets"].items():
            href = asset["href"]
            source = Path(href) if Path(href).is_absolute() else (catalog.parent / href).resolve()
            asset["href"] = str(source)
            if item["id"] in breaks and key in keys:
                asset["href"] = str(breaks[item["id"]](source, out / f"{item['id']}-{key}.tif"))
    path = out / "catalog.json"
    path.write_text(json.dumps(collection))
    return path
