"""Where a build's outputs live: a folder (local or shared by every worker), or an object store.

``open_store(location)`` takes what the user gave as ``--out`` (or ``S2SEASONS_DATA_DIR``): a folder
path, or an object store URL ``s3://bucket/prefix`` (AWS S3 or an S3-compatible server with
conditional writes, such as MinIO). Every output is addressed by the path GDAL opens it with, so the same
`SeasonLayout` names work for both: a local path, or ``/vsis3/bucket/prefix/...``. Only the writes,
listings and small reads (manifests, ``season.json``) go through the store; rasters are read by GDAL.

Both stores keep the promise the build relies on: a block is listed (its ``manifest.json``
exists) only when all its files are complete, and two builders of one block never both install it.

- A folder: files are written under hidden temporary names and renamed into place; a block is
  installed by renaming its complete temporary folder under an ``fcntl`` lock.
- An object store: every object PUT is atomic (a reader sees the old or the new object). A block
  is installed under a lock object created with a conditional PUT (``If-None-Match: *``, the
  S3 way to create only if absent) and renewed by its holder: the old manifest is deleted first
  (the block is then unlisted), its files are uploaded, and the new manifest last. A lock not
  renewed for `LOCK_STALE_S` is replaced by one waiter (``If-Match`` on its ETag). Unlike the
  folder's rename, files are replaced one by one: a season VRT read during a rebuild, or after a
  builder died mid-upload, can mix two builds of that block until it is installed again.

Credentials and endpoint come from the standard AWS environment variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``; ``AWS_ENDPOINT_URL`` for a
non-AWS server), read by obstore for writes and translated into GDAL's options for reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath, PurePosixPath
from urllib.parse import urlsplit

from compositor.errors import InvalidInputError, StorageError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCKS = ".locks"
LOCK_WAIT_S = 900.0  # how long a builder waits for another one installing the same block
LOCK_STALE_S = 120.0  # a lock object not renewed for this long was left by a builder that died
LOCK_RENEW_S = 20.0  # how often a holder renews its lock object (a new body: a new ETag)
UPLOAD_THREADS = 8
READ_THREADS = 16  # small objects (manifests) read at once from an object store: each read is a round trip
STORE_HINT = ("check that the bucket exists, its region (AWS_REGION), AWS_ENDPOINT_URL (for a non-AWS server) and "
              "the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
OBJECT_STORE_SCHEMES = ("s3",)

Accept = Callable[[dict | None], bool]


class OutputStore(ABC):
    """The outputs of every season under one location; paths are the ones GDAL opens."""

    location: str
    base: PurePath

    def path(self, *parts: str) -> PurePath:
        return self.base.joinpath(*parts)

    @property
    def is_local(self) -> bool:
        return False

    @abstractmethod
    def read_bytes(self, path: PurePath) -> bytes | None:
        """The content of ``path``, or None when it does not exist."""

    def read_json(self, path: PurePath) -> dict | None:
        """The JSON object at ``path``, or None when it is absent or not a JSON object. A store that cannot
        be read raises `StorageError`: an unreachable bucket is not an unbuilt season."""
        data = self.read_bytes(path)
        try:
            value = json.loads(data) if data is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def read_jsons(self, paths: Sequence[PurePath]) -> list[dict | None]:
        """`read_json` of each path, in order."""
        return [self.read_json(p) for p in paths]

    @abstractmethod
    def is_file(self, path: PurePath) -> bool: ...

    @abstractmethod
    def list_files(self, folder: PurePath) -> list[PurePath]:
        """Every file below ``folder`` (recursively), hidden names and temporaries left out, sorted."""

    def manifests(self, blocks_dir: PurePath) -> list[PurePath]:
        """The ``<blocks_dir>/<block id>/manifest.json`` paths (temporary folders left out), sorted."""
        return sorted(self.manifest_versions(blocks_dir))

    @abstractmethod
    @contextlib.contextmanager
    def writing(self, path: PurePath) -> Iterator[Path]:
        """A local file to write ``path``'s new content into; put in place in one step on success."""

    def write_text(self, path: PurePath, text: str) -> None:
        with self.writing(path) as tmp:
            tmp.write_text(text)

    @abstractmethod
    def delete(self, path: PurePath) -> None:
        """Remove the file at ``path`` (nothing when it is absent)."""

    @abstractmethod
    @contextlib.contextmanager
    def scratch(self, blocks_dir: PurePath, block_id: str) -> Iterator[Path]:
        """A private local folder to build one block in; removed afterwards."""

    @abstractmethod
    def install_block(self, tmp: Path, final: PurePath, accept: Accept) -> bool:
        """Put the complete block in ``tmp`` (manifest included) in place at ``final``.

        Under the block's lock, ``accept(current manifest or None)`` decides: False keeps what is
        there (returns False). Readers never see a block whose manifest lists files not yet there.
        """

    def clean_stale(self, blocks_dir: PurePath, older_than_s: float) -> int:
        """Remove temporaries that killed builds left behind; how many were removed."""
        return 0

    def check(self) -> None:
        """Raise `StorageError` (saying what to change) when the location cannot be written."""

    def readable(self, timeout_s: float) -> str | None:
        """None when the location can be listed within about ``timeout_s``, else why not (for /readyz)."""
        return None

    def forget_cached_reads(self, folder: PurePath) -> None:
        """Drop what GDAL cached of the files under ``folder`` (they were replaced under the same names)."""

    @abstractmethod
    def folder_files(self, folder: PurePath) -> list[PurePath]:
        """The files directly in ``folder`` (not below), hidden names left out, sorted."""

    @abstractmethod
    def manifest_versions(self, blocks_dir: PurePath) -> dict[PurePath, str]:
        """The block manifests under ``blocks_dir`` with a tag that changes whenever one is replaced."""

    @abstractmethod
    def change_signature(self, season_root: PurePath) -> tuple:
        """A value that changes when a build installs a block or rewrites the season's files. A folder
        notices every block at once (folder times); an object store, when a build rewrites the season
        files at its end (the ETags of the season folder's own files)."""

    @abstractmethod
    def season_names(self) -> list[str]:
        """Names of the top-level folders that hold a ``season.json`` (built seasons)."""

    def gdal_options(self) -> dict[str, str]:
        """GDAL configuration to read this store's paths (nothing for a folder)."""
        return {}

    def __str__(self) -> str:
        return self.location


class FolderStore(OutputStore):
    """A folder on a local or shared POSIX file system (NFS, a mounted volume)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.base = Path(folder)
        self.location = str(self.base)

    @property
    def is_local(self) -> bool:
        return True

    def read_bytes(self, path: PurePath) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except OSError:  # absent, or replaced while being read: as before the store seam, not built
            return None

    def is_file(self, path: PurePath) -> bool:
        return Path(path).is_file()

    def list_files(self, folder: PurePath) -> list[PurePath]:
        root = Path(folder)
        found: list[PurePath] = []
        for parent, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(parent, f) for f in files if not f.startswith(".")]
        return sorted(found)

    def manifests(self, blocks_dir: PurePath) -> list[PurePath]:
        # One directory read per block instead of a walk through every block's files.
        return sorted(p for p in Path(blocks_dir).glob(f"*/{MANIFEST}") if not p.parent.name.startswith("."))

    @contextlib.contextmanager
    def writing(self, path: PurePath) -> Iterator[Path]:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.stem}.tmp-{uuid.uuid4().hex[:12]}{final.suffix}")
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, path: PurePath) -> None:
        Path(path).unlink(missing_ok=True)

    @contextlib.contextmanager
    def scratch(self, blocks_dir: PurePath, block_id: str) -> Iterator[Path]:
        # In the blocks folder itself, so that installing is one rename on the same file system.
        blocks = Path(blocks_dir)
        blocks.mkdir(parents=True, exist_ok=True)
        tmp = blocks / f".{block_id}.tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self, blocks_dir: Path, block_id: str) -> Iterator[None]:
        locks = blocks_dir / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{block_id}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def install_block(self, tmp: Path, final: PurePath, accept: Accept) -> bool:
        final = Path(final)
        with self._lock(final.parent, final.name):
            if not accept(self.read_json(final / MANIFEST)):
                return False
            if final.exists():
                old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
                os.rename(final, old)
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, final)
        return True

    def clean_stale(self, blocks_dir: PurePath, older_than_s: float) -> int:
        removed = 0
        now = time.time()
        blocks = Path(blocks_dir)
        for path in list(blocks.glob(".*.tmp-*")) + list(blocks.glob(".*.old-*")):
            if path.is_dir() and now - path.stat().st_mtime >= older_than_s:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def folder_files(self, folder: PurePath) -> list[PurePath]:
        try:
            return sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError:
            return []

    def manifest_versions(self, blocks_dir: PurePath) -> dict[PurePath, str]:
        versions: dict[PurePath, str] = {}
        for path in self.manifests(blocks_dir):
            try:
                st = os.stat(path)
            except OSError:
                continue  # replaced or removed meanwhile
            versions[path] = f"{st.st_mtime_ns}-{st.st_ino}"
        return versions

    def change_signature(self, season_root: PurePath) -> tuple:
        # A block appears by a rename into blocks/; season files are replaced by renames: folder times.
        values: list[int] = []
        for folder in (season_root, season_root / "blocks", season_root / "overview"):
            try:
                st = os.stat(folder)
                values += [st.st_mtime_ns, st.st_ino]
            except OSError:
                values += [0, 0]
        return tuple(values)

    def season_names(self) -> list[str]:
        try:
            return sorted(p.name for p in Path(self.base).iterdir() if (p / "season.json").is_file())
        except OSError:
            return []

    def check(self) -> None:
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the output folder {self.base} ({exc.strerror}): "
                               "choose a writable --out folder") from None
        if not os.access(self.base, os.W_OK):
            raise StorageError(f"the output folder {self.base} is not writable: choose another --out folder")


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


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _endpoint_url() -> str | None:
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


class _Lease:
    """A held lock object, renewed from a thread every `LOCK_RENEW_S` until it is released."""

    def __init__(self, store, key: str, owner: str, etag: str) -> None:
        self._store, self.key, self.owner, self.etag = store, key, owner, etag
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{key}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        import obstore

        while not self._stop.wait(LOCK_RENEW_S):
            body = f"{self.owner} {time.time():.3f}".encode()
            try:
                self.etag = obstore.put(self._store, self.key, body, mode={"e_tag": self.etag})["e_tag"]
            except (obstore.exceptions.PreconditionError, FileNotFoundError):
                self.lost = True
                return
            except obstore.exceptions.BaseError as exc:  # a passing error: the next renewal may work
                logger.warning("%s: lock not renewed: %s", self.key, _first_line(exc))

    def check(self) -> None:
        if self.lost:
            raise StorageError(f"the lock {self.key} was taken over by another builder (this one did not renew it "
                               f"for {LOCK_STALE_S:g} s): its install is left to that builder")

    def release(self) -> None:
        import obstore

        self._stop.set()
        self._thread.join()
        if self.lost:
            return
        with contextlib.suppress(FileNotFoundError, obstore.exceptions.BaseError):
            if obstore.head(self._store, self.key)["e_tag"] == self.etag:  # still ours
                obstore.delete(self._store, self.key)


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
        self.endpoint = _endpoint_url()

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

    def _key(self, path: PurePath) -> str:
        try:
            return PurePosixPath(path).relative_to(self.base).as_posix()
        except ValueError:
            raise StorageError(f"{path} is not inside {self.location}") from None

    def _error(self, action: str, path: PurePath | str, exc: BaseException) -> StorageError:
        return StorageError(f"cannot {action} {path} in {self.location}: {_first_line(exc)}; {STORE_HINT}")

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
        import obstore

        prefix = self._key(folder)
        found: list[PurePath] = []
        try:
            for batch in obstore.list(self._store, prefix or None):
                for meta in batch:
                    relative = PurePosixPath(meta["path"]).relative_to(prefix) if prefix else meta["path"]
                    relative = PurePosixPath(relative)
                    if not any(part.startswith(".") for part in relative.parts):
                        found.append(self.base / meta["path"])
        except obstore.exceptions.BaseError as exc:
            raise self._error("list", folder, exc) from None
        return sorted(found)

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

    @contextlib.contextmanager
    def lock(self, path: PurePath, wait_s: float = LOCK_WAIT_S) -> Iterator[_Lease]:
        """Hold the lock object at ``path`` while the block is installed.

        Taken with a conditional create (``If-None-Match: *``); renewed every `LOCK_RENEW_S` by its
        holder (a new body, so a new ETag). A waiter that sees the same ETag for `LOCK_STALE_S` on its
        own clock (no clock skew involved) replaces exactly that object (``If-Match``): of several
        waiters only one can. Deleted on release when it is still ours.
        """
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        key = self._key(path)
        owner = f"{uuid.uuid4().hex} {os.uname().nodename} {os.getpid()}"
        deadline = time.monotonic() + wait_s
        seen: tuple[str, float] | None = None  # another holder's ETag and when this waiter first saw it
        pause = 0.2
        while True:
            body = f"{owner} {time.time():.3f}".encode()
            try:
                etag = obstore.put(self._store, key, body, mode="create")["e_tag"]
                break
            except AlreadyExistsError:
                pass
            except obstore.exceptions.BaseError as exc:
                raise self._error("lock", path, exc) from None
            try:
                held = obstore.get(self._store, key)
                held_etag, held_body = held.meta["e_tag"], bytes(held.bytes())
            except FileNotFoundError:
                seen = None
                continue  # released meanwhile
            except obstore.exceptions.BaseError as exc:
                raise self._error("lock", path, exc) from None
            if held_body.split(b" ")[0] == owner.split(" ")[0].encode():
                etag = held_etag  # our create went through but its answer was lost
                break
            now = time.monotonic()
            if seen is None or seen[0] != held_etag:
                seen = (held_etag, now)  # a new holder, or a live one that renewed its lock
            elif now - seen[1] > LOCK_STALE_S:
                try:
                    etag = obstore.put(self._store, key, body, mode={"e_tag": held_etag})["e_tag"]
                    logger.warning("%s: not renewed for %.0f s, its builder is gone: taken over", key, now - seen[1])
                    break
                except (PreconditionError, FileNotFoundError):
                    seen = None  # another waiter took it over first, or it was released
                    continue
                except obstore.exceptions.BaseError as exc:
                    raise self._error("lock", path, exc) from None
            if now > deadline:
                raise StorageError(f"{path} has been held by another builder, renewed all along, for over "
                                   f"{wait_s:g} s: a build of the same block is running; wait for it to end")
            time.sleep(pause + random.random() * pause)
            pause = min(2.0, pause * 1.5)
        lease = _Lease(self._store, key, owner, etag)
        try:
            yield lease
        finally:
            lease.release()

    def install_block(self, tmp: Path, final: PurePath, accept: Accept) -> bool:
        final = PurePosixPath(final)
        with self.lock(final.parent / LOCKS / f"{final.name}.lock") as lease:
            current = self.read_json(final / MANIFEST)
            if not accept(current):
                return False
            if current is not None:
                self.delete(final / MANIFEST)  # the block is invisible until its new manifest is there
            files = sorted(p for p in tmp.iterdir()
                           if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
            with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
                list(pool.map(lambda p: self._put(p, final / p.name), files))
            lease.check()  # taken over while uploading (this builder looked dead): the other one installs
            self._put(tmp / MANIFEST, final / MANIFEST)
            for name in set((current or {}).get("files", [])) - {p.name for p in files}:
                self.delete(final / name)
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
        return sorted(n for n in names if not n.startswith(".") and self.is_file(self.path(n, "season.json")))

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
            raise StorageError(f"cannot list and write {self.location} at {endpoint}: {_first_line(exc)}; "
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
            return f"cannot list {self.location}: {_first_line(exc)}"
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


def is_object_store(location: str | os.PathLike) -> bool:
    return isinstance(location, str) and urlsplit(location).scheme in OBJECT_STORE_SCHEMES


@functools.lru_cache(maxsize=32)
def _open(location: str, endpoint: str | None) -> OutputStore:
    scheme = urlsplit(location).scheme
    if scheme == "s3":
        return S3Store(location)
    if "://" in location:
        raise InvalidInputError(f"output location {location!r}: use a folder path or s3://BUCKET/PREFIX")
    return FolderStore(location)


def output_location(location: str | os.PathLike) -> Path | str:
    """What the user gave as the output location, checked: a Path for a folder, the URL otherwise."""
    store = open_store(location)
    return Path(store.base) if store.is_local else store.location


def open_store(location: str | os.PathLike | OutputStore) -> OutputStore:
    """The store for a folder path or an ``s3://bucket/prefix`` URL."""
    if isinstance(location, OutputStore):
        return location
    return _open(os.fspath(location), _endpoint_url())
