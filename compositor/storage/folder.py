"""A folder on a local or shared POSIX file system as an output store."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePath

from compositor.errors import StorageError
from compositor.storage.base import MANIFEST, SEASON_RECORD, Accept, OutputStore
from compositor.storage.locks import folder_lock

logger = logging.getLogger(__name__)


class FolderStore(OutputStore):
    """A folder on a local or shared POSIX file system (NFS, a mounted volume)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.base = Path(folder)
        self.location = str(self.base)

    @property
    def user_location(self) -> Path:
        return Path(self.base)

    def parallel_reads(self, wanted: int) -> int:
        return 1  # local files: more readers only cost CPU

    def signature_ttl_s(self, configured_s: float) -> float:
        return 0.0  # a few stat calls: checked on every request

    def find(self, root: PurePath, relative: str) -> PurePath | None:
        base = Path(root).resolve()
        path = (base / relative).resolve()  # links resolved: nothing outside the season folder
        return path if path.is_relative_to(base) and path.is_file() else None

    def prune_empty_folders(self, folder: PurePath) -> None:
        for path in sorted((p for p in Path(folder).rglob("*") if p.is_dir()), reverse=True):
            if not any(path.iterdir()):
                path.rmdir()

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

    def file_times(self, folder: PurePath) -> dict[PurePath, dt.datetime]:
        times = {}
        for path in self.list_files(folder):
            with contextlib.suppress(OSError):  # removed meanwhile
                times[path] = dt.datetime.fromtimestamp(os.stat(path).st_mtime, dt.UTC)
        return times

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

    def install_block(self, tmp: Path, final: PurePath, accept: Accept, prefix: str = "") -> bool:
        if prefix:
            raise ValueError("a folder store replaces a whole block folder: its builds need no prefix")
        final = Path(final)
        with folder_lock(final.parent, final.name):
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
            return sorted(p.name for p in Path(self.base).iterdir() if (p / SEASON_RECORD).is_file())
        except OSError:
            return []

    def readable(self, timeout_s: float) -> str | None:
        path = Path(self.base)
        try:
            if not path.is_dir():
                logger.warning("readiness: data folder %s does not exist or is not a folder", path)
                return "the data folder (S2SEASONS_DATA_DIR) does not exist or is not a folder"
            with os.scandir(path) as entries:
                next(entries, None)
        except OSError as exc:
            logger.warning("readiness: data folder %s cannot be read: %s", path, exc)
            return "the data folder (S2SEASONS_DATA_DIR) cannot be read"
        return None

    def check(self) -> None:
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the output folder {self.base} ({exc.strerror}): "
                               "choose a writable --out folder") from None
        if not os.access(self.base, os.W_OK):
            raise StorageError(f"the output folder {self.base} is not writable: choose another --out folder")


