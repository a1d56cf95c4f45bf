"""Health and observability: /healthz, /readyz (data folder, catalog), request ids, structured request logs."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from fastapi.testclient import TestClient

from app.logs import JsonFormatter
from app.main import create_app
from tests.app.helpers import BUILT_LONLAT, SEASON, UNBUILT_LONLAT, app_settings, free_port, live_server, tile_url
from tests.app.upstreams import http_server, slow_stac_handler


def counting_stac() -> tuple[type[BaseHTTPRequestHandler], list[str]]:
    """A STAC API landing page that answers at once, and the paths it was asked for."""
    asked: list[str] = []
    lock = threading.Lock()

    class Landing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                asked.append(self.path)
            body = b'{"type": "Catalog", "id": "test", "links": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Landing, asked


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_readyz_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"data_dir": "ok", "catalog": "ok"}


@pytest.mark.parametrize(("what", "message"), [("data_dir", "data folder"), ("catalog", "local catalog")])
def test_readyz_names_the_failing_check(archive, tmp_path, what, message):
    values = {"data_dir": tmp_path, "catalog": archive.catalog}
    values[what] = tmp_path / "gone"
    with TestClient(create_app(app_settings(values["data_dir"], values["catalog"]))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and "retry-after" in response.headers
    body = response.json()
    assert body["checks"][what] != "ok" and message in body["detail"]
    assert str(tmp_path) not in response.text


def test_readyz_asks_the_stac_api_and_keeps_the_answer(tmp_path):
    handler, asked = counting_stac()
    with http_server(handler) as stac:
        with TestClient(create_app(app_settings(tmp_path, f"{stac}/v1", readyz_cache_s=60))) as client:
            assert [client.get("/readyz").status_code for _ in range(5)] == [200] * 5
    assert asked == ["/v1"]


@pytest.mark.parametrize("kind", ["closed", "slow"])
def test_readyz_fails_fast_when_the_stac_api_does_not_answer(tmp_path, kind):
    with http_server(slow_stac_handler(5.0)) as slow:
        catalog = f"{slow}/v1" if kind == "slow" else f"http://127.0.0.1:{free_port()}/v1"
        settings = app_settings(tmp_path, catalog, readyz_timeout_s=0.3)
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            response = client.get("/readyz")
            assert time.monotonic() - started < 2.0
    assert response.status_code == 503
    assert response.json()["checks"]["data_dir"] == "ok" and "STAC API" in response.json()["detail"]


# --- request ids -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/healthz", tile_url(BUILT_LONLAT, 12), "/seasons/1850-winter/info",
                                 f"/seasons/{SEASON}/files/nothing.tif"])
def test_every_answer_has_a_request_id(client, url):
    made = client.get(url)
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert client.get(url).headers["x-request-id"] != made.headers["x-request-id"]
    assert client.get(url, headers={"X-Request-ID": "lb-7f3a.1"}).headers["x-request-id"] == "lb-7f3a.1"
    for bad in ("has spaces", "x" * 200, "semi;colon"):
        assert client.get(url, headers={"X-Request-ID": bad}).headers["x-request-id"] != bad


def test_cached_and_not_modified_tiles_have_a_request_id(client):
    url = tile_url(BUILT_LONLAT, 13, query="preset=nir-swir")
    etag = client.get(url).headers["etag"]
    hit = client.get(url, headers={"X-Request-ID": "hit-1"})
    assert hit.headers["x-s2seasons-cache"] == "hit" and hit.headers["x-request-id"] == "hit-1"
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


# --- request logs ------------------------------------------------------------------------------------------

def test_request_log_records_carry_the_fields(client, caplog):
    with caplog.at_level(logging.INFO, logger="app.requests"):
        response = client.get(tile_url(BUILT_LONLAT, 12, query="preset=ndvi"), headers={"X-Request-ID": "abc-1"})
    record = next(r for r in caplog.records if r.name == "app.requests" and getattr(r, "request_id", "") == "abc-1")
    assert (record.method, record.status, record.source) == ("GET", 200, "built")
    assert record.path == tile_url(BUILT_LONLAT, 12).split("?")[0] and record.query == "preset=ndvi"
    assert record.ms > 0 and record.cache == response.headers["x-s2seasons-cache"]
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["request_id"] == "abc-1" and entry["status"] == 200 and entry["source"] == "built"
    assert "\n" not in line


def test_logged_paths_are_not_decoded(client, caplog):
    """A %0A in the path stays escaped in the log: a client cannot write log lines of its own."""
    with caplog.at_level(logging.INFO, logger="app.requests"):
        client.get("/seasons/x%0A2026-01-01%20app.requests%20GET%20/admin%20200/info")
    message = next(r.getMessage() for r in caplog.records if r.name == "app.requests")
    assert "\n" not in message and "%0A" in message


@pytest.mark.slow
def test_live_server_json_logs_and_a_dead_catalog(built, tmp_path):
    """``s2seasons serve`` with JSON logs and a catalog nobody answers: on-the-fly 503 with Retry-After,
    built tiles, /healthz 200 and /readyz 503; every log line is a JSON object with the request's id."""
    log = tmp_path / "server.log"
    catalog = f"http://127.0.0.1:{free_port()}/v1"
    with live_server(built.data, catalog, log, S2SEASONS_LOG_FORMAT="json") as base:
        onthefly = httpx.get(base + tile_url(UNBUILT_LONLAT, 12), headers={"X-Request-ID": "otf-1"}, timeout=60)
        assert onthefly.status_code == 503 and int(onthefly.headers["retry-after"]) >= 1
        for z in (12, 13, 14):
            built_tile = httpx.get(base + tile_url(BUILT_LONLAT, z), timeout=60)
            assert built_tile.status_code == 200 and built_tile.headers["x-s2seasons-source"] == "built"
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["catalog"] != "ok"
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:  # uvicorn's own warning, in JSON too
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            sock.recv(1024)
        time.sleep(0.3)
    lines = [line for line in log.read_text().splitlines() if line and not line.startswith("s2seasons viewer on")]
    entries = [json.loads(line) for line in lines]  # every log line is a JSON object
    assert any(e["logger"].startswith("uvicorn") and e["level"] == "WARNING" for e in entries)
    requests = [e for e in entries if e["logger"] == "app.requests"]
    assert {e["path"] for e in requests} >= {"/healthz", "/readyz", tile_url(BUILT_LONLAT, 13)}
    assert all({"time", "level", "request_id", "method", "path", "status", "ms"} <= e.keys() for e in requests)
    line = next(e for e in requests if e["request_id"] == "otf-1")
    assert line["status"] == 503
    warning = next(e for e in entries if e["logger"] == "app.errors" and e.get("request_id") == "otf-1")
    assert warning["level"] == "WARNING" and "unreachable" in warning["message"]


def test_the_server_warms_up_before_its_first_request(settings, caplog):
    """Before the first request the server loads the compiled kernels, the coordinate checks between its
    grid and the map CRSs and the local catalog (`Services.warm_up`), so the first tiles do not all do it
    at once; with ``warm_up`` off it does not."""
    calls: list[str] = []
    app = create_app(settings)
    services = app.state.services
    original = services.warm_up
    services.warm_up = lambda: (calls.append("warm"), original())[1]
    with caplog.at_level(logging.INFO, logger="app.services"), TestClient(app) as client:
        assert calls == ["warm"]  # done when the client is up, before any request
        assert client.get("/healthz").status_code == 200
    assert any("warmed up in" in r.getMessage() for r in caplog.records)
    quiet = create_app(settings.model_copy(update={"warm_up": False}))
    quiet.state.services.warm_up = lambda: calls.append("quiet")
    with TestClient(quiet) as client:
        assert client.get("/healthz").status_code == 200
    assert calls == ["warm"]


def test_a_failed_warm_up_leaves_a_server_that_starts(settings, caplog, monkeypatch):
    import app.services as services_module

    def broken() -> None:
        raise RuntimeError("numba cache unwritable")

    monkeypatch.setattr(services_module, "load_kernels", broken)
    with caplog.at_level(logging.WARNING, logger="app.services"), TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get(tile_url(BUILT_LONLAT, 12)).status_code == 200
    assert any("warm-up incomplete (numba cache unwritable)" in r.getMessage() for r in caplog.records)
