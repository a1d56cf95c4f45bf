"""Hostile requests: paths that try to leave the data folder, sent raw to a live server, and symlinks planted
in a season folder. Every one is a 4xx and no byte of a file outside the season's outputs comes back."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.helpers import BUILT_BLOCK, SEASON, app_settings

pytestmark = pytest.mark.slow  # the live server

F = f"/seasons/{SEASON}/files"
SECRET = b"s2seasons-secret-outside-the-data-folder"

# Sent byte for byte: no client normalizes the dot segments or the escapes away.
RAW_TARGETS = [
    f"{F}/../../../../../../etc/passwd",
    f"{F}/..%2f..%2f..%2f..%2fetc%2fpasswd",
    f"{F}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    f"{F}/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    f"{F}/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    f"{F}/..%5c..%5c..%5c..%5cetc%5cpasswd",
    f"{F}/blocks/{BUILT_BLOCK}/../../../../../../etc/hostname.tif",
    f"{F}/blocks/{BUILT_BLOCK}/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fhostname.tif",
    f"{F}/catalog/../../season.json",
    f"{F}/overview/..%2f..%2f2022-winter%2fseason.json",
    f"{F}/%2Fetc%2Fpasswd",
    f"{F}//etc/passwd",
    f"{F}/x.tif%00.json",
    f"{F}/..;/..;/etc/passwd",
    "/seasons/..%2f..%2f..%2fetc/files/passwd.tif",
    f"/seasons/%2e%2e/files/{SEASON}/season.json",
    "/seasons/../../../etc/passwd",
    "/../../../../etc/passwd",
    "/static/../../../../etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
]


def raw_get(base: str, target: str, headers: str = "") -> tuple[int, bytes]:
    """Status and body of ``GET target`` written as is on the socket (HTTP/1.1, connection closed after)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("target", RAW_TARGETS)
def test_raw_traversal_is_a_4xx(server, target):
    status, body = raw_get(server.base, target)
    assert 400 <= status < 500, (target, status, body[:200])
    assert b"root:" not in body and b"Traceback" not in body and b"/tmp" not in body


def test_oversize_request_lines_and_headers_are_refused_or_harmless(server):
    """A 100 kB URL is refused by the HTTP layer; a 10 kB one and a 100 kB header are served normally."""
    status, _ = raw_get(server.base, f"{F}/x.tif?" + "a" * 100_000)
    assert status in (400, 414)
    status, body = raw_get(server.base, "/healthz?" + "bands=red&" * 1000)
    assert status == 200
    status, body = raw_get(server.base, "/healthz", "X-Big: " + "y" * 100_000 + "\r\n")
    assert status in (200, 400, 431)
    assert raw_get(server.base, "/healthz")[0] == 200  # and the server is still there


def raw_exchange(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the one answer to ``request`` (bytes as is), read up to its Content-Length:
    the connection stays open (keep-alive, or the server waits for the rest of a body), so reading until it
    closes would hang."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536) or pytest.fail(f"connection closed before the headers: {data[:200]!r}")
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers["content-length"]):
            body += sock.recv(65536) or pytest.fail(f"connection closed in the body: {body[:200]!r}")
    return int(lines[0].split(" ", 2)[1]), headers, body


BODY_LIMIT = 1 << 20


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_too_large_body_is_a_json_413(server, framing):
    """Over 1 MiB of posted body on the real HTTP server: a JSON 413 with a detail, whether the Content-Length
    says so up front (answered before the body is sent) or the chunks add up to it while they stream."""
    head = f"POST /seasons/{SEASON}/feature.png HTTP/1.1\r\nHost: {server.base.removeprefix('http://')}\r\n" \
           "Content-Type: application/json\r\n"
    if framing == "content-length":
        request = f"{head}Content-Length: {2 * BODY_LIMIT}\r\n\r\n".encode() + b'{"type": "Feature"'
    else:
        piece = b"a" * 65536
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(BODY_LIMIT // len(piece) + 1))
        request = f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"
    status, headers, body = raw_exchange(server.base, request)
    assert status == 413, (status, body[:200])
    assert headers["content-type"] == "application/json"
    detail = json.loads(body)["detail"]
    assert "1 MiB (1048576 bytes)" in detail and "at most 100 per FeatureCollection" in detail
    assert headers.get("x-request-id")
    assert raw_get(server.base, "/healthz")[0] == 200  # and the server is still there


@pytest.fixture
def planted(built, tmp_path) -> Path:
    """A copy of the built data with symlinks in the season folder that point outside of it."""
    data = tmp_path / "data"
    shutil.copytree(built.data, data, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret_tif = outside / "secret.tif"
    a_real_cog = next((data / SEASON / "blocks" / BUILT_BLOCK).glob("*_red_p50_*.tif"))
    secret_tif.write_bytes(a_real_cog.read_bytes() + SECRET)  # a valid file of a served kind, outside
    (outside / "secret.json").write_bytes(b'{"secret": "' + SECRET + b'"}')
    season = data / SEASON
    (season / "linked.tif").symlink_to(secret_tif)
    (season / "blocks" / BUILT_BLOCK / "linked.tif").symlink_to(secret_tif)
    (season / "catalog" / "linked.json").symlink_to(outside / "secret.json")
    (season / "catalog" / "linked-dir").symlink_to(outside, target_is_directory=True)
    (season / "overview-linked.vrt").symlink_to("/etc/passwd")
    return data


@pytest.mark.parametrize("relative", [
    "linked.tif", f"blocks/{BUILT_BLOCK}/linked.tif", "catalog/linked.json", "catalog/linked-dir/secret.json",
    "overview-linked.vrt",
])
def test_symlinks_out_of_the_season_folder_are_not_followed(planted, archive, relative):
    with TestClient(create_app(app_settings(planted, archive.catalog))) as client:
        for method in ("GET", "HEAD"):
            response = client.request(method, f"{F}/{relative}")
            assert response.status_code == 404, (method, relative, response.status_code)
            assert SECRET not in response.content and b"root:" not in response.content
        assert client.get(f"{F}/catalog/catalog.json").status_code == 200  # the real files still are served
