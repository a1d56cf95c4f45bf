"""Progress without a terminal: a line every interval and at the end (a log shows that long work goes on),
the tqdm bar on a terminal, and a build and export run with stdout to a pipe saying what they do."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from compositor.progress import INTERVAL_ENV, Progress, duration, phase, progress_interval_s
from tests.conftest import SYNTH_BLOCK_PX, SYNTH_RESOLUTION_M, SYNTH_SEASON


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def wait_for_lines(stream: io.StringIO, pattern: str, count: int = 1, timeout_s: float = 10.0) -> list[str]:
    """The stream's lines once ``count`` of them match ``pattern`` (the ticker is a thread: no fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = stream.getvalue().splitlines()
        if sum(bool(re.fullmatch(pattern, line)) for line in lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def test_off_a_terminal_progress_is_a_line_every_interval_and_at_the_end():
    out = io.StringIO()
    bar = Progress("blocks", 4, initial=1, stream=out, interval_s=0.05)
    bar.set_postfix(built=0, failed=0)
    waiting = r"blocks: 1/4 \(25 %\), built 0, failed 0, \d+ s elapsed"  # skipped blocks give no estimate
    assert sum(re.fullmatch(waiting, line) is not None for line in wait_for_lines(out, waiting, 2)) >= 2
    bar.update(1)
    bar.set_postfix(built=1, failed=0)
    going = r"blocks: 2/4 \(50 %\), built 1, failed 0, \d+ s elapsed, ~\d+ s left"
    assert any(re.fullmatch(going, line) for line in wait_for_lines(out, going))
    bar.update(2)
    bar.set_postfix(built=2, failed=1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"blocks: 4/4 \(100 %\), built 2, failed 1, \d+ s elapsed", lines[-1])
    time.sleep(0.2)
    assert out.getvalue().splitlines() == lines, "the ticker stopped at close"
    assert "\r" not in out.getvalue()


def test_progress_takes_callbacks_of_done_and_total_and_unknown_totals():
    out = io.StringIO()
    with Progress("scenes", stream=out, interval_s=60) as bar:
        assert bar.line().startswith("scenes: 0, ")
        bar.report(0, 8)
        bar.report(6, 8)
    (line,) = out.getvalue().splitlines()
    assert re.fullmatch(r"scenes: 6/8 \(75 %\), \d+ s elapsed, ~\d+ s left", line)


def test_on_a_terminal_progress_is_the_tqdm_bar_and_disabled_says_nothing():
    tty = Terminal()
    with Progress("blocks", 3, stream=tty, interval_s=0.01) as bar:
        bar.set_postfix(built=1)
        bar.update(1)
        time.sleep(0.1)
    shown = tty.getvalue()
    assert "\r" in shown and "blocks:" in shown and "1/3" in shown and "built=1" in shown
    assert "elapsed" not in shown
    quiet = io.StringIO()
    with Progress("blocks", 3, stream=quiet, interval_s=0.01, enabled=False) as bar:
        bar.update(3)
        time.sleep(0.05)
    assert quiet.getvalue() == ""


def test_a_phase_says_when_it_starts_while_it_lasts_and_when_a_long_one_ends():
    out = io.StringIO()
    with phase("searching the catalog", stream=out, interval_s=0.05):
        lines = wait_for_lines(out, r"searching the catalog: 0 s elapsed")
    assert lines[0] == "searching the catalog ..."
    assert out.getvalue().splitlines()[-1] == "searching the catalog: done in 0 s"
    quick = io.StringIO()
    with phase("reading", stream=quick, interval_s=60):
        pass
    with phase("writing", stream=quick, interval_s=60, say_end=True):
        pass
    assert quick.getvalue().splitlines() == ["reading ...", "writing ...", "writing: done in 0 s"]
    tty = Terminal()
    with phase("searching", stream=tty, interval_s=0.01):
        time.sleep(0.1)
    assert tty.getvalue() == "searching ...\n"


def test_interval_from_the_environment(monkeypatch, caplog):
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert progress_interval_s() == 10.0
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    assert progress_interval_s() == 0.5
    for wrong in ("ten", "0", "-3", "nan", "inf"):
        monkeypatch.setenv(INTERVAL_ENV, wrong)
        with caplog.at_level(logging.WARNING, logger="compositor.progress"):
            assert progress_interval_s() == 10.0
        assert INTERVAL_ENV in caplog.text
        caplog.clear()


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (35.2, "35 s"), (99, "99 s"), (100, "1 min 40 s"),
                                               (725, "12 min 05 s"), (7500, "2 h 05 min")])
def test_durations(seconds, text):
    assert duration(seconds) == text


PROGRESS_LINE = re.compile(r"blocks: (\d+)/2 \((\d+) %\), built (\d+), failed (\d+), scenes (\d+), "
                           r"(?:\d+ s|\d+ min \d\d s) elapsed(?:, ~.+ left)?")


def test_build_and_export_with_stdout_to_a_pipe_print_progress_lines(synthetic_archive, tmp_path):
    """The commands as a log sees them: lines with counts while the blocks are built, each step named."""
    out = tmp_path / "data"
    env = {**os.environ, INTERVAL_ENV: "0.5"}
    bbox = "12.2,47.75,12.55,48.05"  # the two eastern blocks of the synthetic region
    build = subprocess.run(
        [sys.executable, "-m", "compositor.cli", "build", "--season", SYNTH_SEASON, "--bbox", bbox,
         "--catalog", str(synthetic_archive / "catalog.json"), "--out", str(out),
         "--resolution", str(SYNTH_RESOLUTION_M), "--block-size", str(SYNTH_BLOCK_PX), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    assert build.returncode == 0, build.stderr
    lines = build.stdout.splitlines()
    assert lines[0] == f"searching {synthetic_archive / 'catalog.json'} for {SYNTH_SEASON} scenes ..."
    assert "checking which of 2 blocks are up to date ..." in lines
    progress = [m for m in map(PROGRESS_LINE.fullmatch, lines) if m]
    assert len(progress) >= 3, build.stdout  # a 2-block build takes seconds: several lines at 0.5 s
    counts = [tuple(map(int, m.groups())) for m in progress]
    assert counts == sorted(counts), "counts only grow"
    assert counts[0][0] < 2 and counts[-1][:4] == (2, 100, 2, 0) and counts[-1][4] > 0
    assert progress[-1].group(0).endswith(" elapsed")  # nothing left at the end
    outputs = lines.index("writing the season outputs (overview rasters, VRTs, STAC catalog) ...")
    assert lines.index(progress[-1].group(0)) < outputs
    ends = [i for i, line in enumerate(lines)
            if re.fullmatch(r"writing the season outputs \(.*\): done in \d+ s", line)]
    assert len(ends) == 1 and ends[0] > outputs
    assert "blocks: 2 built, 0 skipped (up to date), 0 empty (no valid observation), 0 failed" in lines
    assert "\r" not in build.stdout and "it/s" not in build.stdout + build.stderr  # no tqdm bar
    assert "elapsed" not in build.stderr

    export = subprocess.run(
        [sys.executable, "-m", "compositor.cli", "export", "--season", SYNTH_SEASON, "--byte", "--data", str(out),
         "--out", str(tmp_path / "export")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        timeout=300)
    assert export.returncode == 0, export.stderr
    files = len(list((tmp_path / "export" / "blocks").glob("*/*.tif")))
    assert files == 2 * 6 * 4
    assert re.search(rf"^files: {files}/{files} \(100 %\), \d+ s elapsed$", export.stdout, re.MULTILINE), export.stdout
