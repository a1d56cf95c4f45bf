"""Load test of the tile server: ``s2seasons serve`` started as users start it, locust headless against it.

Many users for a while, each mixing built tiles, on-the-fly tiles and point queries (``locustfile.py``).
The server's resident memory (RSS, with its children) is sampled all along. Prints, per kind of request:
requests, requests/s, p50 and p99 latency, answers shed as busy (503 with Retry-After, on-the-fly work
only) and errors; writes the same as JSON.

    # the demo's data (made first when missing: s2seasons demo --no-serve --dir DIR)
    PYTHONPATH=. python -m benchmarks.load.run --demo demo-data --users 50 --spawn-rate 10 --duration 60 \\
        --json benchmarks/load/results.json
    # any built data: lon/lat boxes inside its built and unbuilt parts
    PYTHONPATH=. python -m benchmarks.load.run --data DATA --catalog CATALOG --built-bbox W,S,E,N \\
        --unbuilt-bbox W,S,E,N --server-env S2SEASONS_RESOLUTION_M=100

With ``--check``: exit 2 when a built tile or built point failed, or the peak RSS passed ``--max-rss-mb``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from compositor.testing.serving import ServerStartError, serve_process
from compositor.testing.demo import DEMO_BBOX_4326, DEMO_BLOCK_PX, DEMO_BUILD_BBOX_4326, DEMO_RESOLUTION_M

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(sys.executable).parent
BUSY = "busy (503 Retry-After)"
BUILT_KINDS = ("built tile", "point (built)")
DEMO_BUILT_BBOX = ",".join(map(str, DEMO_BUILD_BBOX_4326))
DEMO_UNBUILT_BBOX = ",".join(map(str, (DEMO_BUILD_BBOX_4326[2] + 0.1, *DEMO_BBOX_4326[1:])))  # the unbuilt east
DEMO_ENV = {"S2SEASONS_RESOLUTION_M": str(DEMO_RESOLUTION_M), "S2SEASONS_BLOCK_SIZE_PX": str(DEMO_BLOCK_PX)}


@dataclass
class KindResult:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    busy: int  # 503 with Retry-After: load shed by the on-the-fly pool
    errors: int  # anything else that is not the expected answer


@dataclass
class MemoryResult:
    start_mb: float  # after start-up, before the load
    peak_mb: float
    end_mb: float
    every_5s_mb: list[float]  # the samples, one per 5 s


@contextlib.contextmanager
def serve(data: Path, catalog: str, env: dict[str, str], log: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``s2seasons serve`` on a free loopback port; yields its URL and process, stops it after."""
    try:
        with serve_process([str(BIN / "s2seasons")], data, catalog, log, env=env, stop_timeout_s=15) as (base, server):
            yield base, psutil.Process(server.pid)
    except ServerStartError as exc:
        raise SystemExit(str(exc)) from None


class RssSampler:
    """The resident memory of a process and its children, sampled every ``interval_s`` in a thread."""

    def __init__(self, process: psutil.Process, interval_s: float = 0.5) -> None:
        self.process, self.interval_s = process, interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss_mb(self) -> float:
        with contextlib.suppress(psutil.Error):
            procs = [self.process, *self.process.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs) / 2**20
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.rss_mb())

    def __enter__(self) -> RssSampler:
        self.samples.append(self.rss_mb())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.rss_mb())

    def result(self) -> MemoryResult:
        step = max(1, round(5 / self.interval_s))
        return MemoryResult(round(self.samples[0], 1), round(max(self.samples), 1), round(self.samples[-1], 1),
                            [round(v) for v in self.samples[::step]])


def run_locust(base: str, users: int, spawn_rate: float, duration_s: int, prefix: Path, env: dict[str, str]) -> None:
    command = [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "-u", str(users),
               "-r", str(spawn_rate), "-t", f"{duration_s}s", "--host", base, "--csv", str(prefix),
               "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: some requests failed, which the table shows
        raise SystemExit(f"locust failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def read_results(prefix: Path) -> dict[str, KindResult]:
    busy: dict[str, int] = {}
    with open(f"{prefix}_failures.csv", newline="") as f:
        for row in csv.DictReader(f):
            if BUSY in row["Error"]:
                busy[row["Name"]] = busy.get(row["Name"], 0) + int(row["Occurrences"])
    kinds = {}
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            failures = int(row["Failure Count"])
            shed = busy.get(row["Name"], 0)
            kinds[row["Name"]] = KindResult(int(row["Request Count"]), round(float(row["Requests/s"]), 1),
                                            float(row["50%"]), float(row["99%"]), shed, failures - shed)
    return kinds


def table(kinds: dict[str, KindResult]) -> str:
    lines = ["| kind | requests | requests/s | p50 ms | p99 ms | busy 503 | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, k in sorted(kinds.items()):
        lines.append(f"| {name} | {k.requests} | {k.requests_per_s:g} | {k.p50_ms:g} | {k.p99_ms:g} | {k.busy} | "
                     f"{k.errors} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--demo", type=Path, help="the demo's folder (made with s2seasons demo --no-serve if missing)")
    where.add_argument("--data", type=Path, help="a data folder with built seasons")
    parser.add_argument("--catalog", help="the catalog of --data")
    parser.add_argument("--built-bbox", help="lon/lat box inside the built part (with --data)")
    parser.add_argument("--unbuilt-bbox", help="lon/lat box inside the unbuilt part (with --data)")
    parser.add_argument("--season", default="2022-winter")
    parser.add_argument("--built-zooms", default="11-14")
    parser.add_argument("--onthefly-zooms", default="12-13")
    parser.add_argument("--mix", default="built_tile=6,onthefly_tile=2,point_built=2,point_onthefly=1",
                        help="weights of the kinds of request")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the server (settings), repeatable")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--csv", type=Path, help="prefix of locust's CSV files (default: a temporary folder)")
    parser.add_argument("--check", action="store_true", help="exit 2 on built errors or RSS over --max-rss-mb")
    parser.add_argument("--max-rss-mb", type=float, default=2048)
    args = parser.parse_args(argv)

    if args.demo:
        demo = args.demo.resolve()
        data, catalog = demo / "data", str(demo / "archive" / "catalog.json")
        if not Path(catalog).exists() or not data.exists():
            subprocess.run([str(BIN / "s2seasons"), "demo", "--no-serve", "--dir", str(demo)], check=True)
        server_env = dict(DEMO_ENV)
        built_bbox, unbuilt_bbox = DEMO_BUILT_BBOX, DEMO_UNBUILT_BBOX
    else:
        if not (args.catalog and args.built_bbox and args.unbuilt_bbox):
            parser.error("--data needs --catalog, --built-bbox and --unbuilt-bbox")
        data, catalog, server_env = args.data.resolve(), args.catalog, {}
        built_bbox, unbuilt_bbox = args.built_bbox, args.unbuilt_bbox
    server_env.update(kv.split("=", 1) for kv in args.server_env)
    load_env = {"S2SEASONS_LOAD_SEASON": args.season, "S2SEASONS_LOAD_BUILT_BBOX": built_bbox,
                "S2SEASONS_LOAD_UNBUILT_BBOX": unbuilt_bbox, "S2SEASONS_LOAD_BUILT_ZOOMS": args.built_zooms,
                "S2SEASONS_LOAD_ONTHEFLY_ZOOMS": args.onthefly_zooms, "S2SEASONS_LOAD_MIX": args.mix}

    with tempfile.TemporaryDirectory(prefix="s2seasons-load-") as tmp:
        prefix = args.csv or Path(tmp) / "locust"
        log = Path(tmp) / "server.log"
        load_before = os.getloadavg()[0]
        with serve(data, catalog, server_env, log) as (base, process):
            with RssSampler(process) as rss:
                run_locust(base, args.users, args.spawn_rate, args.duration, prefix, load_env)
            server_5xx = sum(1 for line in log.read_text().splitlines() if " 500 " in line)
        kinds = read_results(prefix)
    memory = rss.result()
    command = "PYTHONPATH=. python -m benchmarks.load.run " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"{args.users} users (spawn {args.spawn_rate:g}/s) for {args.duration} s against s2seasons serve, "
          f"{psutil.cpu_count()} cores, load average {load_before:.2f} before (other work on the machine)\n")
    print(table(kinds))
    print(f"\nserver RSS: {memory.start_mb:.0f} MB at start, {memory.peak_mb:.0f} MB peak, {memory.end_mb:.0f} MB "
          f"at the end; {server_5xx} answers of status 500\n\n{command}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": command, "users": args.users, "spawn_rate": args.spawn_rate, "duration_s": args.duration,
            "cores": psutil.cpu_count(), "load_average_before": round(load_before, 2),
            "kinds": {name: asdict(k) for name, k in kinds.items()},
            "rss_mb": asdict(memory), "server_500": server_5xx,
        }, indent=2))
    built_errors = sum(kinds[name].errors for name in BUILT_KINDS if name in kinds)
    if args.check and (built_errors or server_5xx or memory.peak_mb > args.max_rss_mb):
        print(f"check failed: {built_errors} errors on built requests, {server_5xx} answers 500, "
              f"peak RSS {memory.peak_mb:.0f} MB (limit {args.max_rss_mb:g})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
