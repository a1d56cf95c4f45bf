"""A slow HTTP link on loopback: a folder served over HTTP/1.1 with added latency and a bandwidth cap.

For benchmarks that read COGs over HTTP as from Earth Search, without the internet. `SlowLinkServer`
serves the files under one folder (GET and HEAD; single byte ranges answered 206; keep-alive) with:

* latency: every request's answer starts ``latency_ms`` after its request line and headers arrived (one
  round trip of a link with that delay; TCP connection set-up adds nothing on top);
* bandwidth: response bytes (headers and bodies) of every connection share one link of
  ``bandwidth_mbit`` Mbit/s, first come first served, in chunks of 64 KiB; 0 means no cap.

A request with several ranges (``bytes=0-9,20-29``) gets the whole file with 200, as HTTP allows a
server to ignore Range; such requests are counted. Python's ``http.server`` speaks HTTP/1.1 only, so
``GDAL_HTTP_MULTIPLEX``/HTTP/2 cannot show anything through this server.

`LinkStats` counts requests, response bytes and new connections; `rewrite_catalog` writes a copy of a
STAC ItemCollection whose asset hrefs point at the server.

    python -m benchmarks.slowlink FOLDER --latency-ms 50 --bandwidth-mbit 100 --port 8001
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
CHUNK_BYTES = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class LinkCounts:
    """What went through the link between two `LinkStats.snapshot` calls."""

    requests: int = 0
    gets: int = 0
    heads: int = 0
    ranged: int = 0  # answered 206
    multirange: int = 0  # several ranges asked, whole file sent
    missing: int = 0  # answered 404 (a client probing for files that are not there)
    bytes: int = 0  # response bytes, headers included
    connections: int = 0  # new TCP connections

    def __sub__(self, other: LinkCounts) -> LinkCounts:
        return LinkCounts(*(getattr(self, f) - getattr(other, f) for f in self.__dataclass_fields__))

    def as_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class LinkStats:
    """Thread-safe counters of one server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(LinkCounts.__dataclass_fields__, 0)
        self.paths: list[str] = []  # every path asked, in order

    def add(self, **increments: int) -> None:
        with self._lock:
            for key, value in increments.items():
                self._counts[key] += value

    def asked(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)

    def snapshot(self) -> LinkCounts:
        with self._lock:
            return LinkCounts(**self._counts)


class SharedLink:
    """A link of ``bandwidth_bps`` bits per second shared by every connection, first come first served."""

    def __init__(self, bandwidth_bps: float) -> None:
        self.bandwidth_bps = bandwidth_bps
        self._lock = threading.Lock()
        self._free_at = 0.0  # monotonic time when the link has sent everything reserved so far

    def send(self, wfile, data: bytes, stats: LinkStats | None = None) -> None:
        """Write ``data`` no faster than the link allows (bytes of other connections queue before); each
        chunk is counted in ``stats`` just before it is written (a transfer the client aborts counts the
        chunks begun)."""
        for start in range(0, len(data), CHUNK_BYTES):
            chunk = data[start:start + CHUNK_BYTES]
            if self.bandwidth_bps > 0:
                with self._lock:
                    begin = max(time.monotonic(), self._free_at)
                    self._free_at = begin + len(chunk) * 8 / self.bandwidth_bps
                    done_at = self._free_at
                delay = done_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if stats is not None:
                stats.add(bytes=len(chunk))
            wfile.write(chunk)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.stats.add(connections=1)

    def log_message(self, format: str, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        arrived = time.monotonic()
        self.server.stats.add(requests=1, **({"gets": 1} if body else {"heads": 1}))
        self.server.stats.asked(self.path)
        file = self._file()
        wait = self.server.latency_s - (time.monotonic() - arrived)
        if wait > 0:
            time.sleep(wait)
        if file is None:
            self.server.stats.add(missing=1)
            self._send(404, {"Content-Type": "text/plain"}, b"not found\n", body)
            return
        size = file.stat().st_size
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "Last-Modified": email.utils.formatdate(file.stat().st_mtime, usegmt=True)}
        requested = self.headers.get("Range")
        span = None
        if requested is not None:
            match = _RANGE.match(requested.strip())
            if match is None:
                self.server.stats.add(multirange=1)  # several ranges (or a form not handled): whole file, 200
            else:
                span = _byte_span(match.group(1), match.group(2), size)
                if span is None:
                    headers["Content-Range"] = f"bytes */{size}"
                    self._send(416, headers, b"", body)
                    return
        with file.open("rb") as handle:
            if span is None:
                payload = handle.read() if body else b""
                self._send(200, {**headers, "Content-Length": str(size)}, payload, body, length=size)
                return
            first, last = span
            handle.seek(first)
            payload = handle.read(last - first + 1) if body else b""
        self.server.stats.add(ranged=1)
        self._send(206, {**headers, "Content-Range": f"bytes {first}-{last}/{size}"}, payload, body,
                   length=last - first + 1)

    def _file(self) -> Path | None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        root = self.server.root
        candidate = (root / path).resolve()
        if root != candidate and root not in candidate.parents:
            return None
        return candidate if candidate.is_file() else None

    def _send(self, status: int, headers: dict[str, str], payload: bytes, body: bool, length: int | None = None) -> None:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                 f"Date: {email.utils.formatdate(usegmt=True)}", "Connection: keep-alive"]
        headers = {"Content-Length": str(len(payload) if length is None else length), **headers}
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        data = head + (payload if body else b"")
        self.server.link.send(self.wfile, data, self.server.stats)
        self.wfile.flush()
        self.log_request(status)


def _byte_span(first: str, last: str, size: int) -> tuple[int, int] | None:
    """Inclusive (first, last) of a single range ``first-last``, clipped to the file; None when unsatisfiable."""
    if first == "" and last == "":
        return None
    if first == "":  # the last N bytes
        n = int(last)
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else None
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    return (start, end) if start <= end and start < size else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, root: Path, latency_s: float, bandwidth_bps: float, port: int = 0) -> None:
        super().__init__((HOST, port), _Handler)
        self.root = root.resolve()
        self.latency_s = latency_s
        self.link = SharedLink(bandwidth_bps)
        self.stats = LinkStats()


class SlowLinkServer:
    """The server of one folder; `start` it (or use it as a context manager), read `url` and `stats`."""

    def __init__(self, root: Path, *, latency_ms: float = 50.0, bandwidth_mbit: float = 100.0, port: int = 0) -> None:
        self.latency_ms = latency_ms
        self.bandwidth_mbit = bandwidth_mbit
        self._server = _Server(Path(root), latency_ms / 1000.0, bandwidth_mbit * 1e6, port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="slowlink", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def stats(self) -> LinkStats:
        return self._server.stats

    def start(self) -> SlowLinkServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SlowLinkServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def slow_link(root: Path, **kwargs) -> Iterator[SlowLinkServer]:
    with SlowLinkServer(root, **kwargs) as server:
        yield server


def rewrite_href(href: str, catalog_dir: Path, root: Path, base_url: str) -> str:
    """``href`` (relative to ``catalog_dir``, or an absolute path) as a URL of the server of ``root``;
    hrefs that are already URLs, or lie outside ``root``, are kept."""
    if urllib.parse.urlsplit(href).scheme not in ("", "file"):
        return href
    path = Path(urllib.parse.urlsplit(href).path if href.startswith("file:") else href)
    if not path.is_absolute():
        path = catalog_dir / path
    path = Path(os.path.normpath(path.resolve()))
    try:
        relative = path.relative_to(root.resolve())
    except ValueError:
        return href
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(relative.as_posix())}"


def rewrite_catalog(catalog: Path, out: Path, base_url: str, root: Path | None = None) -> int:
    """Write to ``out`` a copy of the ItemCollection ``catalog`` with every asset href pointing at
    ``base_url`` (the server of ``root``, by default the catalog's folder); returns the hrefs rewritten."""
    root = root or catalog.parent
    document = json.loads(catalog.read_text())
    features = document["features"] if document.get("type") == "FeatureCollection" else [document]
    rewritten = 0
    for feature in features:
        for asset in feature.get("assets", {}).values():
            if "href" in asset:
                new = rewrite_href(asset["href"], catalog.parent, root, base_url)
                rewritten += new != asset["href"]
                asset["href"] = new
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document))
    return rewritten


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a folder over HTTP/1.1 with added latency and a bandwidth cap.")
    parser.add_argument("folder", type=Path, help="the folder served (e.g. the synthetic archive)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added before every answer (default 50)")
    parser.add_argument("--bandwidth-mbit", type=float, default=100.0,
                        help="cap shared by all connections, Mbit/s; 0 for none (default 100)")
    args = parser.parse_args(argv)
    with SlowLinkServer(args.folder, latency_ms=args.latency_ms, bandwidth_mbit=args.bandwidth_mbit,
                        port=args.port) as server:
        print(f"serving {args.folder} on {server.url} ({args.latency_ms:g} ms, {args.bandwidth_mbit:g} Mbit/s shared)",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
