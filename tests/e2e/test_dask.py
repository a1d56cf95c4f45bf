"""Builds on a real Dask cluster: `dask scheduler` and `dask worker` processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.compositor.test_build import pixel_checksums
from tests.conftest import SYNTH_BBOX, SYNTH_BLOCK_PX, SYNTH_RESOLUTION_M, SYNTH_SEASON, build_synthetic

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
BIN = Path(sys.executable).parent


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Cluster:
    def __init__(self, folder: Path):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return json.loads(self.scheduler_file.read_text())["address"]

    def start(self, n_workers: int) -> None:
        self.scheduler = _spawn([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file", str(self.scheduler_file)],
                                self.folder / "scheduler.log")
        deadline = time.monotonic() + 60
        while not self.scheduler_file.exists():
            assert time.monotonic() < deadline, (self.folder / "scheduler.log").read_text()
            time.sleep(0.2)
        for i in range(n_workers):
            self.add_worker(f"w{i}")
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=120)

    def add_worker(self, name: str) -> subprocess.Popen:
        worker = _spawn([str(BIN / "dask"), "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                         "--no-nanny", "--no-dashboard", "--name", name, "--host", "127.0.0.1",
                         "--local-directory", str(self.folder / name)], self.folder / f"{name}.log")
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            _stop(worker)
        if self.scheduler:
            _stop(self.scheduler)


@contextmanager
def dask_cluster(folder: Path, n_workers: int = 2) -> Iterator[Cluster]:
    cluster = Cluster(folder)
    try:
        cluster.start(n_workers)
        yield cluster
    finally:
        cluster.stop()


def _cli_build(archive: Path, out: Path, scheduler: str) -> list[str]:
    return [str(BIN / "s2seasons"), "build", "--season", SYNTH_SEASON, "--bbox", ",".join(map(str, SYNTH_BBOX)),
            "--catalog", str(archive / "catalog.json"), "--out", str(out), "--resolution", str(SYNTH_RESOLUTION_M),
            "--block-size", str(SYNTH_BLOCK_PX), "--scheduler", scheduler]


def _wait_for_manifests(out: Path, at_least: int, timeout_s: float = 180) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = len(list((out / SYNTH_SEASON / "blocks").glob("*/manifest.json")))
        if n >= at_least:
            return n
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} blocks built in {timeout_s} s")


def test_cluster_build_equals_local_build(built_season, synthetic_archive, tmp_path):
    with dask_cluster(tmp_path) as cluster:
        summary = build_synthetic(synthetic_archive, tmp_path / "data", scheduler=cluster.address)
    assert not summary.failed and summary.counts["built"] == len(summary.results)
    assert pixel_checksums(tmp_path / "data") == pixel_checksums(built_season)
    assert list((tmp_path / "data" / SYNTH_SEASON).glob("s2l2a_red_p50_*.vrt"))  # season outputs too


def test_sigkill_of_a_worker_mid_build_still_completes(built_season, synthetic_archive, tmp_path):
    out = tmp_path / "data"
    with dask_cluster(tmp_path, n_workers=2) as cluster:
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(
            summary=build_synthetic(synthetic_archive, out, scheduler=cluster.address)))
        thread.start()
        _wait_for_manifests(out, 1)
        os.killpg(cluster.workers[0].pid, signal.SIGKILL)  # a spot machine disappears
        thread.join(300)
        assert not thread.is_alive()
    summary = result["summary"]
    assert not summary.failed, summary.describe()
    assert pixel_checksums(out) == pixel_checksums(built_season)


def test_killed_client_rerun_resumes_without_redoing_blocks(built_season, synthetic_archive, tmp_path):
    out = tmp_path / "data"
    with dask_cluster(tmp_path, n_workers=1) as cluster:
        client = subprocess.Popen(_cli_build(synthetic_archive, out, cluster.address), start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_manifests(out, 1)
        os.killpg(client.pid, signal.SIGKILL)
        client.wait()
        time.sleep(1.0)  # let the scheduler notice the client is gone and drop its tasks
        done_before = {p.parent.name: p.stat().st_mtime_ns for p in (out / SYNTH_SEASON / "blocks").glob("*/manifest.json")}
        assert done_before
        rerun = subprocess.run(_cli_build(synthetic_archive, out, cluster.address), capture_output=True, text=True,
                               timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = {p.parent.name: p.stat().st_mtime_ns for p in (out / SYNTH_SEASON / "blocks").glob("*/manifest.json")}
    assert all(after[b] == t for b, t in done_before.items())  # built blocks were not redone
    assert f"{len(done_before)} skipped" in rerun.stdout or "skipped" in rerun.stdout
    assert pixel_checksums(out) == pixel_checksums(built_season)


def test_two_builds_at_once_do_not_corrupt_or_duplicate(built_season, synthetic_archive, tmp_path):
    out = tmp_path / "data"
    with dask_cluster(tmp_path, n_workers=2) as cluster:
        procs = [subprocess.Popen(_cli_build(synthetic_archive, out, cluster.address), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    blocks = out / SYNTH_SEASON / "blocks"
    assert not [p for p in blocks.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert pixel_checksums(out) == pixel_checksums(built_season)
    for folder in (p for p in blocks.iterdir() if not p.name.startswith(".")):
        assert len(list(folder.glob("*.tif"))) == 24 and (folder / "manifest.json").exists()
