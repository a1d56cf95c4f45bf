"""``s2seasons serve`` in a child process on loopback, as users start it: for tests and benchmarks.

`serve_process` starts it on a free port, waits until ``/healthz`` answers, yields its base URL and
process, and stops it after. Nothing here is imported by the server itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
LOG_TAIL_LINES = 100  # of the server's output, in the error when it does not start
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


class ServerStartError(RuntimeError):
    """The server exited, or did not answer ``/healthz`` in time; the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port free on loopback now (nothing holds it for later)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _healthy(base: str) -> bool:
    try:
        with _DIRECT.open(f"{base}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status (urllib's errors are OSErrors)
        return False


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    return "(the log cannot be read)"


@contextlib.contextmanager
def serve_process(cli: Sequence[str], data: Path, catalog: str | Path, log: Path, *,
                  env: Mapping[str, str] | None = None, cwd: Path | None = None, start_timeout_s: float = 60.0,
                  stop_timeout_s: float = 10.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``CLI serve --data DATA --catalog CATALOG`` on a free loopback port; yields its base URL and process.

    ``cli`` runs the command line interface (the ``s2seasons`` script, or an interpreter and its arguments);
    ``env`` is added to this process's environment; the server's stdout and stderr go to ``log``. Raises
    `ServerStartError` when the server exits before ``/healthz`` answers 200, or ``start_timeout_s`` passes.
    Stops it after: terminated, killed when it has not exited ``stop_timeout_s`` later.
    """
    port = free_port()
    command = [*cli, "serve", "--data", str(data), "--catalog", str(catalog), "--host", HOST, "--port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out,
                                   stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                raise ServerStartError(f"the server exited with {process.returncode}; the end of {log}:\n{_tail(log)}")
            if _healthy(base):
                break
            if time.monotonic() > deadline:
                raise ServerStartError(f"the server did not answer /healthz within {start_timeout_s:g} s; "
                                       f"the end of {log}:\n{_tail(log)}")
            time.sleep(0.2)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
