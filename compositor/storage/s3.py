"""An S3 bucket and prefix as an output store: written with obstore, read by GDAL's /vsis3/."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import uuid
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath, PurePosixPath
from urllib.parse import urlsplit

from compositor.errors import InvalidInputError, StorageError
from compositor.storage.base import LOCKS, MANIFEST, SEASON_RECORD, Accept, OutputStore, first_line
from compositor.storage.locks import Lease, object_lock

logger = logging.getLogger(__name__)

UPLOAD_THREADS = 8
READ_THREADS = 16  # small objects (manifests) read at once from an object store: each read is a round trip
STORE_HINT = ("check that the bucket exists, its region (AWS_REGION), AWS_ENDPOINT_URL (for a non-AWS server) and "
              "the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")


@functools.cache
def _gdal_function(name: str):
    """A function of the GDAL library rasterio runs on (found in this process's mapped libraries), for the
    few GDAL calls rasterio does not wrap; None where it cannot be found."""
    import ctypes
    import importlib

    importlib.import_module("rasterio")  # loads GDAL
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgdal" in line.rsplit("/", 1)[-1]}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            function = getattr(ctypes.CDLL(path), name)
        except (OSError, AttributeError):
            continue
        function.argtypes, function.restype = [ctypes.c_char_p], None
        return function
    logger.warning("GDAL's %s was not found: replaced files of an object store may read stale until restart", name)
    return None


def endpoint_url() -> str | None:
    """The S3 endpoint from the environment (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, or GDAL's
    ``AWS_S3_ENDPOINT`` + ``AWS_HTTPS``), or None for AWS itself."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url:
        return url.rstrip("/")
    host = os.environ.get("AWS_S3_ENDPOINT")
    if host:
        scheme = "http" if os.environ.get("AWS_HTTPS", "YES").upper() in ("NO", "FALSE", "OFF", "0") else "https"
        return host.rstrip("/") if "://" in host else f"{scheme}://{host.rstrip('/')}"
    return None


class S3Store(OutputStore):
    """An S3 bucket and prefix (``s3://bucket/prefix``), written with obstore, read by GDAL's /vsis3/."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not bucket:
            raise InvalidInputError(f"object store URL {url!r} names no bucket: use s3://BUCKET/PREFIX")
        self.location = f"s3://{bucket}/{prefix}".rstrip("/")
        self.bucket, self.prefix = bucket, prefix
        self.base = PurePosixPath("/vsis3", bucket, *([prefix] if prefix else []))
        self.endpoint = endpoint_url()

    @staticmethod
    def _default_region() -> str | None:
        """us-east-1 when the environment names no region (obstore and GDAL both need one)."""
        return None if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") else "us-east-1"

    def _config(self) -> dict[str, object]:
        config: dict[str, object] = {}
        if self.endpoint:
            config["endpoint"] = self.endpoint
        if region := self._default_region():
            config["region"] = region
        return config

    def _client_options(self) -> dict[str, object]:
        client: dict[str, object] = {"connect_timeout": dt.timedelta(seconds=10), "timeout": dt.timedelta(seconds=120)}
        if self.endpoint:
            client["allow_http"] = self.endpoint.startswith("http://")
        return client

    @functools.cached_property
    def _store(self):  # created on first use, in the process that uses it (workers included)
        from obstore.store import S3Store as ObjectStore

        retry = {"max_retries": 4, "retry_timeout": dt.timedelta(seconds=60),
                 "backoff": {"init_backoff": dt.timedelta(seconds=0.2), "max_backoff": dt.timedelta(seconds=8),
                             "base": 2.0}}
        return ObjectStore(self.bucket, prefix=self.prefix or None, config=self._config(),
                           client_options=self._client_options(), retry_config=retry)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_store", None)  # rebuilt from the worker's own environment
        return state

    @property
    def user_location(self) -> str:
        return self.location

    def new_build_prefix(self) -> str:
        return f"build-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

    @contextlib.contextmanager
    def lock(self, path: PurePath, wait_s: float | None = None) -> Iterator[Lease]:
        """Hold the lock object at ``path`` (`compositor.storage.locks.object_lock`)."""
        with object_lock(self._store, self._key(path), path, self._error, wait_s) as lease:
            yield lease

    def _key(self, path: PurePath) -> str:
        try:
            return PurePosixPath(path).relative_to(self.base).as_posix()
        except ValueError:
            raise StorageError(f"{path} is not inside {self.location}") from None

    def _error(self, action: str, path: PurePath | str, exc: BaseException) -> StorageError:
        return StorageError(f"cannot {action} {path} in {self.location}: {first_line(exc)}; {STORE_HINT}")

    def read_bytes(self, path: PurePath) -> bytes | None:
        import obstore

        try:
            return bytes(obstore.get(self._store, self._key(path)).bytes())
        except FileNotFoundError:
            return None
        except obstore.exceptions.BaseError as exc:
            raise self._error("read", path, exc) from None

    def read_jsons(self, paths: Sequence[PurePath]) -> list[dict | None]:
        with ThreadPoolExecutor(READ_THREADS) as pool:
            return list(pool.map(self.read_json, paths))

    def is_file(self, path: PurePath) -> bool:
        import obstore

        try:
            obstore.head(self._store, self._key(path))
            return True
        except FileNotFoundError:
            return False
        except obstore.exceptions.BaseError as exc:
            raise self._error("look up", path, exc) from None

    def list_files(self, folder: PurePath) -> list[PurePath]:
        return sorted(self.file_times(folder))

    def file_times(self, folder: PurePath) -> dict[PurePath, dt.datetime]:
        import obstore

        prefix = self._key(folder)
        found: dict[PurePath, dt.datetime] = {}
        try:
            for batch in obstore.list(self._store, prefix or None):
                for meta in batch:
                    relative = PurePosixPath(meta["path"]).relative_to(prefix) if prefix else meta["path"]
                    relative = PurePosixPath(relative)
                    if not any(part.startswith(".") for part in relative.parts):
                        found[self.base / meta["path"]] = meta["last_modified"]
        except obstore.exceptions.BaseError as exc:
            raise self._error("list", folder, exc) from None
        return found

    def _put(self, local: Path, path: PurePath) -> None:
        import obstore

        try:
            with open(local, "rb") as handle:
                obstore.put(self._store, self._key(path), handle)
        except obstore.exceptions.BaseError as exc:
            raise self._error("write", path, exc) from None

    @contextlib.contextmanager
    def writing(self, path: PurePath) -> Iterator[Path]:
        folder = tempfile.mkdtemp(prefix="s2seasons-put-")
        tmp = Path(folder) / PurePosixPath(path).name
        try:
            yield tmp
            self._put(tmp, path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def delete(self, path: PurePath) -> None:
        import obstore

        try:
            obstore.delete(self._store, self._key(path))
        except FileNotFoundError:
            pass
        except obstore.exceptions.BaseError as exc:
            raise self._error("delete", path, exc) from None

    @contextlib.contextmanager
    def scratch(self, blocks_dir: PurePath, block_id: str) -> Iterator[Path]:
        tmp = Path(tempfile.mkdtemp(prefix=f"s2seasons-{block_id}-"))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def install_block(self, tmp: Path, final: PurePath, accept: Accept, prefix: str = "") -> bool:
        if not prefix:
            raise ValueError("an object store installs a block's files under a prefix of their build")
        final = PurePosixPath(final)
        with self.lock(final.parent / LOCKS / f"{final.name}.lock") as lease:
            if not accept(self.read_json(final / MANIFEST)):
                return False
            files = sorted(p for p in tmp.iterdir()
                           if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
            with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
                list(pool.map(lambda p: self._put(p, final / prefix / p.name), files))
            lease.check()  # taken over while uploading (this builder looked dead): the other one installs
            self._put(tmp / MANIFEST, final / MANIFEST)  # one PUT: readers switch from the old build to this one
        return True

    def folder_files(self, folder: PurePath) -> list[PurePath]:
        import obstore

        try:
            listing = obstore.list_with_delimiter(self._store, self._key(folder) or None)
        except obstore.exceptions.BaseError as exc:
            raise self._error("list", folder, exc) from None
        return sorted(self.base / m["path"] for m in listing["objects"]
                      if not PurePosixPath(m["path"]).name.startswith("."))

    def manifest_versions(self, blocks_dir: PurePath) -> dict[PurePath, str]:
        import obstore

        prefix = self._key(blocks_dir)
        versions: dict[PurePath, str] = {}
        try:
            for batch in obstore.list(self._store, prefix):
                for meta in batch:
                    parts = PurePosixPath(meta["path"]).relative_to(prefix).parts
                    if len(parts) == 2 and parts[1] == MANIFEST and not parts[0].startswith("."):
                        versions[self.base / meta["path"]] = str(meta["e_tag"] or meta["last_modified"])
        except obstore.exceptions.BaseError as exc:
            raise self._error("list", blocks_dir, exc) from None
        return versions

    def change_signature(self, season_root: PurePath) -> tuple:
        import obstore

        try:
            listing = obstore.list_with_delimiter(self._store, self._key(season_root))
        except obstore.exceptions.BaseError as exc:
            raise self._error("list", season_root, exc) from None
        return tuple(sorted((m["path"], str(m["e_tag"] or m["last_modified"])) for m in listing["objects"]))

    def season_names(self) -> list[str]:
        import obstore

        try:
            listing = obstore.list_with_delimiter(self._store, None)
        except obstore.exceptions.BaseError as exc:
            raise self._error("list", self.base, exc) from None
        names = [PurePosixPath(p).name for p in listing["common_prefixes"]]
        return sorted(n for n in names if not n.startswith(".") and self.is_file(self.path(n, SEASON_RECORD)))

    def signed_url(self, path: PurePath, expires_s: float = 3600.0) -> str:
        """A presigned GET URL of ``path`` (byte ranges work on it), for clients without credentials."""
        import obstore

        try:
            return obstore.sign(self._store, "GET", self._key(path), dt.timedelta(seconds=expires_s))
        except obstore.exceptions.BaseError as exc:
            raise self._error("sign a URL of", path, exc) from None

    def check(self) -> None:
        """List the prefix, then create a probe object twice: the second create must be refused, or the
        server ignores conditional writes, which the block locks need."""
        import obstore
        from obstore.exceptions import AlreadyExistsError

        endpoint = self.endpoint or "AWS"
        probe = f"{LOCKS}/probe-{uuid.uuid4().hex}"
        try:
            obstore.list_with_delimiter(self._store, None)
            obstore.put(self._store, probe, b"s2seasons write check", mode="create")
            try:
                obstore.put(self._store, probe, b"s2seasons write check", mode="create")
                refused = False
            except AlreadyExistsError:
                refused = True
            obstore.delete(self._store, probe)
        except obstore.exceptions.BaseError as exc:
            raise StorageError(f"cannot list and write {self.location} at {endpoint}: {first_line(exc)}; "
                               f"{STORE_HINT}") from None
        if not refused:
            raise StorageError(f"the S3 server at {endpoint} ignores conditional writes (If-None-Match), which "
                               "s2seasons needs to lock blocks: use AWS S3, MinIO or another server that has them, "
                               "or build into a shared folder")

    def readable(self, timeout_s: float) -> str | None:
        import obstore
        from obstore.store import S3Store as ObjectStore

        quick = ObjectStore(self.bucket, prefix=self.prefix or None, config=self._config(),
                            client_options={**self._client_options(), "timeout": dt.timedelta(seconds=timeout_s),
                                            "connect_timeout": dt.timedelta(seconds=timeout_s)},
                            retry_config={"max_retries": 0, "retry_timeout": dt.timedelta(seconds=timeout_s)})
        try:
            obstore.list_with_delimiter(quick, None)
        except obstore.exceptions.BaseError as exc:
            logger.warning("readiness: cannot list %s: %s", self.location, first_line(exc))
            return "the object store (S2SEASONS_DATA_DIR) cannot be listed: check its endpoint and credentials"
        return None

    def forget_cached_reads(self, folder: PurePath) -> None:
        import rasterio

        clear = _gdal_function("VSICurlPartialClearCache")
        if clear is not None:
            with rasterio.Env(**self.gdal_options()):  # GDAL matches cached URLs: it needs the endpoint
                clear(f"{PurePosixPath(folder)}/".encode())

    def gdal_options(self) -> dict[str, str]:
        options = {"AWS_NO_SIGN_REQUEST": "NO",  # scene reads may set YES; our outputs are private
                   "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}  # no listing of a block's prefix per open
        if self.endpoint:
            endpoint = urlsplit(self.endpoint)
            options.update(AWS_S3_ENDPOINT=endpoint.netloc, AWS_HTTPS="YES" if endpoint.scheme == "https" else "NO",
                           AWS_VIRTUAL_HOSTING="FALSE")
        if region := self._default_region():
            options["AWS_REGION"] = region
        return options


