"""Progress of long work: a tqdm bar on a terminal, a plain line every few seconds anywhere else.

tqdm hides its bar when its stream is not a terminal, so a build, demo or export whose output goes to
a log (``> build.log``, a container, CI) said nothing until it ended. Here the same counts become a
flushed line every ``S2SEASONS_PROGRESS_S`` seconds (10 by default) and one at the end::

    blocks: 12/40 (30 %), built 11, failed 0, scenes 340, 35 s elapsed, ~1 min 30 s left

Everything goes to stdout, with the command's own report (errors and logs go to stderr); a command
whose stdout is a listing (``s2seasons scenes``) passes ``stream=sys.stderr``. The lines come from a
thread, so they keep coming while one block takes minutes; `phase` does the same for steps without
counts (a catalog search, the season outputs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from tqdm import tqdm

logger = logging.getLogger(__name__)

INTERVAL_ENV = "S2SEASONS_PROGRESS_S"
DEFAULT_INTERVAL_S = 10.0


def progress_interval_s() -> float:
    """Seconds between progress lines: ``S2SEASONS_PROGRESS_S``, else 10. A wrong value is a warning, not
    an error: progress is not worth failing a build for."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        logger.warning("%s=%r is not a number of seconds above 0: progress lines every %g s", INTERVAL_ENV, raw,
                       DEFAULT_INTERVAL_S)
        return DEFAULT_INTERVAL_S
    return value


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def duration(seconds: float) -> str:
    """``35 s``, ``12 min 05 s``, ``2 h 05 min``: short enough for a progress line, exact enough for a log."""
    s = max(0, round(seconds))
    if s < 100:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class _Ticker:
    """Calls ``write`` every ``interval_s`` seconds from a daemon thread until stopped."""

    def __init__(self, interval_s: float, write: Callable[[], None]) -> None:
        self._stop = threading.Event()
        self._interval_s = interval_s
        self._write = write
        self._thread = threading.Thread(target=self._run, name="s2seasons-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._write()
            except (OSError, ValueError):  # the stream went away (closed pipe): stop saying anything
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def _write_line(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


class Progress:
    """Counts of ``total`` things done (``None``: unknown), with extra counts (`set_postfix`).

    On a terminal: the tqdm bar. Elsewhere: `line` every ``interval_s`` (default `progress_interval_s`) and once
    at `close`. ``enabled=False`` shows nothing. Use it as a context manager, or call `close`.
    """

    def __init__(self, desc: str, total: int | None = None, *, initial: int = 0, unit: str = "it",
                 enabled: bool = True, stream: TextIO | None = None, interval_s: float | None = None) -> None:
        self.desc = desc
        self.total = total
        self.n = initial
        self._initial = initial
        self._postfix: dict[str, object] = {}
        self._started = time.monotonic()
        self._stream = stream if stream is not None else sys.stdout
        self._bar: tqdm | None = None
        self._ticker: _Ticker | None = None
        self._closed = not enabled
        self._last = ""
        if not enabled:
            return
        if is_terminal(self._stream):
            self._bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, file=self._stream)
        else:
            self._ticker = _Ticker(progress_interval_s() if interval_s is None else interval_s, self._tick)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)

    def report(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` so far: the ``progress(done, total)`` callbacks of `generate_archive` and
        `export_byte`."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        self.update(done - self.n)

    def set_postfix(self, **values: object) -> None:
        """Counts shown after the main one (``built=11, failed=0``), as ``built 11, failed 0``."""
        self._postfix = dict(values)
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def line(self) -> str:
        """``blocks: 12/40 (30 %), built 11, failed 0, 35 s elapsed, ~1 min 30 s left``."""
        n, total = self.n, self.total
        elapsed = time.monotonic() - self._started
        parts = [f"{self.desc}: {n}/{total} ({100 * n // total if total else 100} %)" if total is not None
                 else f"{self.desc}: {n}"]
        parts += [f"{key} {value}" for key, value in self._postfix.items()]
        parts.append(f"{duration(elapsed)} elapsed")
        done_here = n - self._initial  # blocks skipped as up to date took no time: not in the rate
        if total is not None and 0 < done_here and n < total:
            parts.append(f"~{duration(elapsed / done_here * (total - n))} left")
        return ", ".join(parts)

    def _tick(self) -> None:
        self._last = self.line()
        _write_line(self._stream, self._last)

    def close(self) -> None:
        """Stop; off a terminal, the last line (where the work ended, even if it failed)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        if self._ticker is not None:
            self._ticker.stop()
            last = self.line()
            if last != self._last:  # a tick may just have said it
                with contextlib.suppress(OSError, ValueError):
                    _write_line(self._stream, last)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def phase(text: str, *, enabled: bool = True, stream: TextIO | None = None, interval_s: float | None = None,
          say_end: bool = False) -> Iterator[None]:
    """A step without counts: ``text ...`` when it starts; off a terminal ``text: 20 s elapsed`` every
    interval while it lasts and ``text: done in 25 s`` when it ends after such a line (or always with
    ``say_end``), so that a log shows what a quiet minute was spent on and when it ended."""
    if not enabled:
        yield
        return
    out = stream if stream is not None else sys.stdout
    started = time.monotonic()
    ticked = False

    def tick() -> None:
        nonlocal ticked
        ticked = True
        _write_line(out, f"{text}: {duration(time.monotonic() - started)} elapsed")

    _write_line(out, f"{text} ...")
    every = progress_interval_s() if interval_s is None else interval_s
    ticker = None if is_terminal(out) else _Ticker(every, tick)
    try:
        yield
    finally:
        if ticker is not None:
            ticker.stop()
    if ticked or say_end:
        _write_line(out, f"{text}: done in {duration(time.monotonic() - started)}")
