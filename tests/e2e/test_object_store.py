"""Builds into an object store: a real S3 server (moto's) on loopback, written by obstore, read by GDAL.

The same season is built into a folder (the ``built_season`` fixture) and into ``s3://``; both must
hold the same objects and the same pixels, readable by GDAL over /vsis3/ (rasterio and the gdal-bin
tools), also when the blocks are built by Dask workers or by two builds racing on every block.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import rasterio

from compositor.testing.serving import free_port, serve_process
from compositor.errors import StorageError
from compositor.storage import S3Store, open_store
from tests.compositor.test_build import pixel_checksums
from tests.conftest import SYNTH_BBOX, SYNTH_BLOCK_PX, SYNTH_RESOLUTION_M, SYNTH_SEASON, build_synthetic
from tests.e2e.test_dask import dask_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
BIN = Path(sys.executable).parent
BUCKET = "seasons"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "s2seasons-test", "AWS_SECRET_ACCESS_KEY": "s2seasons-secret",
               "AWS_REGION": "eu-central-1"}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> Iterator[str]:
    """moto's S3 server on a loopback port, with the bucket ``seasons``; yields its endpoint URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        request = urllib.request.Request(
            f"{endpoint}/{BUCKET}", method="PUT",
            data=b"<CreateBucketConfiguration><LocationConstraint>eu-central-1</LocationConstraint>"
                 b"</CreateBucketConfiguration>")
        urllib.request.urlopen(request, timeout=10)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture()
def s3_env(s3_server, monkeypatch) -> str:
    """The AWS environment a user sets for an S3-compatible server (inherited by Dask workers too)."""
    _set_s3_env(monkeypatch, s3_server)
    return s3_server


def _set_s3_env(patch: pytest.MonkeyPatch, endpoint: str) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_S3_ENDPOINT", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_ENDPOINT_URL", endpoint)
    for name, value in CREDENTIALS.items():
        patch.setenv(name, value)


@pytest.fixture(scope="module")
def s3_season(s3_server, synthetic_archive) -> str:
    """The synthetic season built once into ``s3://seasons/shared`` (every band), for the tests that read it.

    `test_server_serves_a_season_from_s3_like_from_a_folder` rebuilds it from half the scenes at its end:
    it is the last test of this module to use it.
    """
    location = f"s3://{BUCKET}/shared"
    with pytest.MonkeyPatch.context() as patch:
        _set_s3_env(patch, s3_server)
        summary = build_synthetic(synthetic_archive, location)
    assert not summary.failed and summary.counts["built"] == len(summary.results), summary.describe()
    return location


def s3_pixel_checksums(location: str) -> dict[str, str]:
    """sha256 of the pixels of every block COG of the season, read by GDAL over /vsis3/."""
    store = open_store(location)
    blocks = store.path(SYNTH_SEASON, "blocks")
    sums = {}
    with rasterio.Env(**store.gdal_options()):
        for path in store.list_files(blocks):
            if path.suffix == ".tif":
                with rasterio.open(path) as src:
                    block_id = path.relative_to(blocks).parts[0]  # the files are under their build's prefix
                    sums[f"{block_id}/{path.name}"] = hashlib.sha256(src.read(1).tobytes()).hexdigest()
    return sums


def relative_files(store, root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in store.list_files(root)}


def test_build_into_s3_equals_the_folder_build_and_gdal_reads_it(s3_env, s3_season, built_season, tmp_path):
    location = s3_season
    store = open_store(location)
    assert isinstance(store, S3Store)
    season = store.path(SYNTH_SEASON)
    local = built_season / SYNTH_SEASON
    local_files = {p.relative_to(local).as_posix() for p in local.rglob("*")  # GDAL's .aux.xml: other tests'
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(local).parts)
                   and not p.name.endswith(".aux.xml")}
    objects = {p.relative_to(season).as_posix() for p in store.list_files(season)}
    # blocks (each under its build's prefix), manifests, season.json, VRTs, overviews, STAC
    assert {re.sub(r"^(blocks/[^/]+/)build-[^/]+/", r"\1", o) for o in objects} == local_files
    assert all(re.match(r"blocks/[^/]+/build-[^/]+/[^/]+\.tif$", o) for o in objects if o.startswith("blocks/")
               and o.endswith(".tif"))
    import obstore

    assert not [m for batch in obstore.list(store._store) for m in batch if "/.locks/" in m["path"]]  # released
    assert s3_pixel_checksums(location) == pixel_checksums(built_season)

    # the season VRT over /vsis3/: its relative sources resolve in the bucket, same pixels as the folder's
    (vrt_name,) = [n for n in objects if n.startswith("s2l2a_nir_p50_") and n.endswith(".vrt")]
    with rasterio.Env(**store.gdal_options()), rasterio.open(season / vrt_name) as remote, \
            rasterio.open(local / vrt_name) as here:
        assert remote.shape == here.shape and remote.overviews(1) == here.overviews(1)
        assert np.array_equal(remote.read(1), here.read(1))
        assert np.array_equal(remote.read(1, out_shape=(remote.height // 16, remote.width // 16)),
                              here.read(1, out_shape=(here.height // 16, here.width // 16)))

    # every block file is a valid COG where it is stored
    from rio_cogeo.cogeo import cog_validate

    first = sorted(n for n in objects if n.startswith("blocks/") and n.endswith(".tif"))[0]
    with rasterio.Env(**store.gdal_options()):
        valid, errors, _ = cog_validate(str(season / first))
    assert valid, errors

    # the STAC catalog's hrefs are relative and every asset exists in the bucket
    collection_key = next(n for n in objects if n.endswith("collection.json"))
    collection = json.loads(store.read_bytes(season / collection_key))
    for asset in collection["assets"].values():
        target = os.path.normpath(PurePosixPath(collection_key).parent / asset["href"])
        assert target in objects, asset["href"]

    # gdal-bin, configured as the README tells a user
    if shutil.which("gdalinfo"):
        endpoint = s3_env.split("://", 1)[1]
        env = {**os.environ, "AWS_S3_ENDPOINT": endpoint, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}
        info = subprocess.run(["gdalinfo", "-json", f"{season}/{vrt_name}"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["size"] == [remote.width, remote.height]

    # the byte export reads the season from the bucket
    from compositor.build import export_season
    from compositor.settings import Settings

    settings = Settings(resolution_m=SYNTH_RESOLUTION_M, block_size_px=SYNTH_BLOCK_PX)
    remote_export = export_season(settings, SYNTH_SEASON, tmp_path / "from-s3", data_dir=location, bands="red")
    local_export = export_season(settings, SYNTH_SEASON, tmp_path / "from-folder", data_dir=built_season,
                                 bands="red")
    assert [Path(p).relative_to(tmp_path / "from-s3") for p in remote_export] == \
        [Path(p).relative_to(tmp_path / "from-folder") for p in local_export]


def test_rerun_into_s3_skips_every_block_and_rewrites_nothing(s3_env, s3_season, synthetic_archive):
    location = s3_season
    store = open_store(location)
    import obstore

    def tags() -> dict[str, str]:  # ETag and time of every object of the blocks
        listing = obstore.list(store._store, f"{SYNTH_SEASON}/blocks")
        return {m["path"]: f'{m["e_tag"]} {m["last_modified"]}' for batch in listing for m in batch}

    before = tags()
    second = build_synthetic(synthetic_archive, location)
    assert second.counts["skipped"] == len(second.results) and not second.counts["built"]
    assert tags() == before


def test_two_builds_racing_on_every_block_of_s3(s3_env, built_season, synthetic_archive, tmp_path):
    """Two independent builds of the same season into the same prefix at once: the block locks (conditional
    PUTs) let one builder install each block; nothing is duplicated, mixed or left locked."""
    location = f"s3://{BUCKET}/race"
    command = [str(BIN / "s2seasons"), "build", "--season", SYNTH_SEASON, "--bbox", ",".join(map(str, SYNTH_BBOX)),
               "--catalog", str(synthetic_archive / "catalog.json"), "--out", location, "--resolution",
               str(SYNTH_RESOLUTION_M), "--block-size", str(SYNTH_BLOCK_PX), "--workers", "1"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=400) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    # each block installed once: what one build installed, the other found built (or "built meanwhile")
    counts = [re.search(r"blocks: (\d+) built, (\d+) skipped", out).groups() for out, _ in outputs]
    n_blocks = int(counts[0][0]) + int(counts[0][1])
    assert sum(int(built) for built, _ in counts) == n_blocks, outputs
    assert s3_pixel_checksums(location) == pixel_checksums(built_season)
    store = open_store(location)
    blocks = store.path(SYNTH_SEASON, "blocks")
    per_block: dict[str, list[str]] = {}
    for path in store.list_files(blocks):  # blocks/<id>/manifest.json and blocks/<id>/<build prefix>/*.tif
        per_block.setdefault(path.relative_to(blocks).parts[0], []).append(path.name)
    assert all(len(names) == 25 and "manifest.json" in names for names in per_block.values())  # 24 COGs + manifest
    import obstore

    assert not [m for batch in obstore.list(store._store, "race") for m in batch if "/.locks/" in m["path"]]


def test_dask_workers_build_into_s3(s3_env, built_season, synthetic_archive, tmp_path):
    """Workers get the store's URL, not a client; each opens the bucket with its own AWS environment."""
    location = f"s3://{BUCKET}/dask"
    with dask_cluster(tmp_path, n_workers=2) as cluster:
        summary = build_synthetic(synthetic_archive, location, scheduler=cluster.address)
    assert not summary.failed and summary.counts["built"] == len(summary.results), summary.describe()
    assert s3_pixel_checksums(location) == pixel_checksums(built_season)
    store = open_store(location)
    assert store.is_file(store.path(SYNTH_SEASON, "catalog", "catalog.json"))


def test_unreachable_store_or_missing_bucket_fails_before_any_work(s3_env, synthetic_archive, monkeypatch):
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"s3://no-such-bucket/x.*bucket exists"):
        build_synthetic(synthetic_archive, "s3://no-such-bucket/x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError, match=r"cannot list and write s3://seasons/nowhere at http://127\.0\.0\.1:\d+"):
        build_synthetic(synthetic_archive, f"s3://{BUCKET}/nowhere")
    # a store that cannot be read is an error, never "nothing built here" (which would rebuild or hide blocks)
    with pytest.raises(StorageError, match="AWS_ENDPOINT_URL"):
        open_store(f"s3://{BUCKET}/nowhere").read_json(open_store(f"s3://{BUCKET}/nowhere").path("season.json"))
    assert time.monotonic() - started < 120

    command = [str(BIN / "s2seasons"), "build", "--season", SYNTH_SEASON, "--bbox", ",".join(map(str, SYNTH_BBOX)),
               "--catalog", str(synthetic_archive / "catalog.json"), "--out", "ftp://host/data"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "s3://BUCKET/PREFIX" in result.stderr + result.stdout


def half_catalog(archive: Path, folder: Path) -> Path:
    """The archive's catalog without every other acquisition date (all its tiles), hrefs made absolute."""
    collection = json.loads((archive / "catalog.json").read_text())
    dates = sorted({item["properties"]["datetime"][:10] for item in collection["features"]})
    collection["features"] = [item for item in collection["features"]
                              if dates.index(item["properties"]["datetime"][:10]) % 2 == 0]
    for item in collection["features"]:
        for asset in item["assets"].values():
            asset["href"] = str(archive / asset["href"])
    path = folder / "half-catalog.json"
    path.write_text(json.dumps(collection))
    return path


def test_server_serves_a_season_from_s3_like_from_a_folder(s3_env, s3_season, built_season, synthetic_archive,
                                                           tmp_path):
    """``s2seasons serve --data s3://...``: same season list, links, tiles and points as the folder; files
    redirect to presigned URLs that GDAL follows; readiness checks the bucket."""
    import httpx
    import morecantile

    location = s3_season  # rebuilt below from half the scenes: the last test to use it
    cli = [str(BIN / "s2seasons")]
    env = {"S2SEASONS_RESOLUTION_M": str(SYNTH_RESOLUTION_M), "S2SEASONS_BLOCK_SIZE_PX": str(SYNTH_BLOCK_PX),
           "S2SEASONS_STORE_REFRESH_S": "1"}
    catalog = synthetic_archive / "catalog.json"
    centre = ((SYNTH_BBOX[0] + SYNTH_BBOX[2]) / 2, (SYNTH_BBOX[1] + SYNTH_BBOX[3]) / 2)
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = [tms.tile(*centre, z) for z in (4, 7, 10, 12)]  # season overview; blocks, coarse to fine
    with serve_process(cli, location, catalog, tmp_path / "s3.log", env=env) as (remote, _), \
            serve_process(cli, built_season, catalog, tmp_path / "folder.log", env=env) as (local, _), \
            httpx.Client(timeout=60) as http:
        assert http.get(f"{remote}/readyz").json()["checks"]["data_dir"] == "ok"
        listed = http.get(f"{remote}/seasons").text
        assert listed == http.get(f"{local}/seasons").text.replace(local, remote)
        assert SYNTH_SEASON in listed
        meta = http.get(f"{remote}/seasons/{SYNTH_SEASON}").json()
        assert meta == json.loads(http.get(f"{local}/seasons/{SYNTH_SEASON}").text.replace(local, remote))
        assert meta["links"]["vrt"] and meta["links"]["overview"] and meta["links"]["stac"]
        for t in tiles:
            path = f"/seasons/{SYNTH_SEASON}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?preset=true-colour"
            here, there = http.get(f"{local}{path}"), http.get(f"{remote}{path}")
            assert there.status_code == 200 and there.content == here.content, (t, there.text[:200])
        point = f"/seasons/{SYNTH_SEASON}/point/{centre[0]},{centre[1]}"
        assert http.get(f"{remote}{point}").json() == http.get(f"{local}{point}").json()

        vrt_url = meta["links"]["vrt"]["nir_p50"]
        redirect = http.get(vrt_url, follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"].startswith(s3_env)
        assert http.get(vrt_url, follow_redirects=True).status_code == 200
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(f"/vsicurl/{vrt_url}") as src, \
                rasterio.open(next((built_season / SYNTH_SEASON).glob("s2l2a_nir_p50_*.vrt"))) as here:
            window = ((0, 256), (0, 256))  # one block, read through redirects to presigned URLs
            assert np.array_equal(src.read(1, window=window), here.read(1, window=window))
        assert http.get(f"{remote}/seasons/{SYNTH_SEASON}/files/blocks/c0_r0/nothing.tif").status_code == 404

        # half the scenes are withdrawn: a rebuild replaces every block and season file under the same names
        # while the server runs; after its refresh it serves the new pixels (no stale GDAL or tile cache)
        paths = [f"/seasons/{SYNTH_SEASON}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?preset=nir-swir"
                 for t in tiles]
        before = [http.get(f"{remote}{p}").content for p in paths]
        rebuilt = build_synthetic(synthetic_archive, location, catalog=str(half_catalog(synthetic_archive, tmp_path)))
        assert rebuilt.counts["built"] and not rebuilt.failed, rebuilt.describe()
        deadline = time.monotonic() + 60
        while (after := [http.get(f"{remote}{p}").content for p in paths]) == before:
            assert time.monotonic() < deadline, "the server never noticed the rebuild"
            time.sleep(0.5)
    with serve_process(cli, location, catalog, tmp_path / "fresh.log", env=env) as (fresh, _), \
            httpx.Client(timeout=60) as http:
        assert [http.get(f"{fresh}{p}").content for p in paths] == after

    with serve_process(cli, "s3://no-such-bucket/x", catalog, tmp_path / "bad.log", env=env) as (bad, _), \
            httpx.Client(timeout=60) as http:
        ready = http.get(f"{bad}/readyz")
        assert ready.status_code == 503 and "object store" in ready.json()["detail"]


def test_a_renewed_lock_is_kept_and_of_two_waiters_one_takes_a_stale_one(s3_env, monkeypatch):
    import obstore

    import compositor.storage.locks as storage

    monkeypatch.setattr(storage, "LOCK_STALE_S", 1.0)
    monkeypatch.setattr(storage, "LOCK_RENEW_S", 0.2)
    store = open_store(f"s3://{BUCKET}/leases")
    lock = store.path("blocks", ".locks", "c2_r2.lock")
    held: list[tuple[str, float, float]] = []

    def hold(name: str, seconds: float) -> None:
        with store.lock(lock, wait_s=30):
            start = time.monotonic()
            time.sleep(seconds)
            held.append((name, start, time.monotonic()))

    # a live holder renews its lock for 3 s (3x the stale time): nobody takes it over meanwhile
    first = threading.Thread(target=hold, args=("live", 3.0))
    first.start()
    time.sleep(0.3)
    hold("waiter", 0.1)
    first.join()
    assert [h[0] for h in held] == ["live", "waiter"] and held[1][1] >= held[0][2]

    # a lock left by a builder that died; two waiters see it go stale at once: they never overlap
    held.clear()
    obstore.put(store._store, store._key(lock), b"dead-builder 0", mode="create")
    waiters = [threading.Thread(target=hold, args=(f"w{i}", 0.5)) for i in range(2)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    (a, a_start, a_end), (b, b_start, b_end) = sorted(held, key=lambda h: h[1])
    assert b_start >= a_end, held
    assert not store.is_file(lock)


def test_block_lock_waits_then_takes_over_a_stale_lock(s3_env, monkeypatch):
    import compositor.storage.locks as storage

    store = open_store(f"s3://{BUCKET}/locks")
    lock = store.path("blocks", ".locks", "c1_r1.lock")
    with store.lock(lock):
        assert store.is_file(lock)
        with pytest.raises(StorageError, match="held by another builder"):
            with store.lock(lock, wait_s=0.5):
                pass
        monkeypatch.setattr(storage, "LOCK_STALE_S", -1.0)  # the holder died long ago
        with store.lock(lock, wait_s=5):
            assert store.is_file(lock)
    assert not store.is_file(lock)


def test_a_read_during_rebuilds_never_mixes_two_builds_and_replaced_builds_go_after_their_grace(s3_env, tmp_path):
    """A reader that follows the block's manifest (as the server, the VRTs and the STAC items do) while the
    block is rebuilt again and again from two different scenes gets every file of one build, never a mix."""
    from compositor.block import BlockJob, build_block
    from compositor.index import built_blocks, note_outputs_updated, read_manifest, remove_replaced_builds
    from compositor.layout import SeasonLayout
    from compositor.seasons import resolve_season
    from compositor.testing.planted import BLOCK, GRID, SEASON, plant

    bands, kinds = ("red", "swir22"), ("p25", "p50", "p75", "count")
    scenes = [plant(tmp_path / "scenes", name, day=day)[0] for name, day in (("first", 0), ("second", 5))]
    season = resolve_season(SEASON)

    def job(location, scene) -> BlockJob:
        return BlockJob(SeasonLayout(location, season, GRID.crs, GRID.resolution_m), BLOCK, (scene,), bands)

    def read_all(layout) -> tuple[str, ...]:
        """Follow the manifest once, then read every file it names: a fingerprint per file."""
        (built,) = built_blocks(layout, GRID)
        sums = []
        for band in bands:
            for kind in kinds:
                with rasterio.open(built.path(layout, band, kind)) as src:
                    sums.append(hashlib.sha256(src.read(1).tobytes()).hexdigest())
        return tuple(sums)

    # each build's files, from a folder store
    expected = {}
    for scene in scenes:
        local = job(tmp_path / f"folder-{scene.id}", scene)
        assert build_block(local).status == "built"
        expected[read_all(local.layout)] = scene.id
    assert len(expected) == 2  # the two builds differ in every file

    location = f"s3://{BUCKET}/rebuilds"
    layout = job(location, scenes[0]).layout
    assert build_block(job(location, scenes[0])).status == "built"
    seen: list[tuple[str, ...]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        with rasterio.Env(**layout.store.gdal_options()):
            while not stop.is_set():
                try:
                    seen.append(read_all(layout))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 7):
            assert build_block(job(location, scenes[i % 2]), force=True).status == "built"
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(seen) >= 4 and {expected.get(s, "a mix of two builds") for s in seen} == {"first", "second"}

    # the six replaced builds stay for readers holding an old manifest or VRT: until the season outputs (which
    # servers watch) were rewritten after the swap, and their grace has passed since
    store = layout.store
    block_dir = layout.block_dir(BLOCK.id)
    prefixes = {p.parent.name for p in store.list_files(block_dir) if p.suffix == ".tif"}
    assert len(prefixes) == 7
    assert remove_replaced_builds(layout, grace_s=0.0) == 0  # the season outputs still name the old builds
    note_outputs_updated(layout)
    assert remove_replaced_builds(layout) == 0  # an hour's grace
    time.sleep(2.0)
    uploading = block_dir / "build-concurrent" / "upload-in-progress.tif"  # another builder's, manifest to come
    store.write_text(uploading, "not yet")
    assert remove_replaced_builds(layout, grace_s=1.5) == 6 * len(bands) * len(kinds)
    current = read_manifest(layout, BLOCK.id)["prefix"]
    assert {p.parent.name for p in store.list_files(block_dir) if p.suffix == ".tif"} == {current, "build-concurrent"}
    with rasterio.Env(**store.gdal_options()):
        assert expected[read_all(layout)] == "first"  # the last rebuild (i = 6) read the first scene
