"""The interface every output store keeps (`OutputStore`), whatever is behind it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePath

MANIFEST = "manifest.json"
SEASON_RECORD = "season.json"  # a season folder's record (`compositor.index`): what makes a folder a season
LOCKS = ".locks"

Accept = Callable[[dict | None], bool]


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class OutputStore(ABC):
    """The outputs of every season under one location; paths are the ones GDAL opens."""

    location: str
    base: PurePath

    def path(self, *parts: str) -> PurePath:
        return self.base.joinpath(*parts)

    @property
    @abstractmethod
    def user_location(self) -> Path | str:
        """The location as a user gives it: a folder's `Path`, or the ``s3://`` URL."""

    def parallel_reads(self, wanted: int) -> int:
        """How many files to read at once: ``wanted`` where each read waits a round trip, else fewer."""
        return wanted

    def signature_ttl_s(self, configured_s: float) -> float:
        """How long a `change_signature` stays fresh: ``configured_s`` where a listing is a request."""
        return configured_s

    def find(self, root: PurePath, relative: str) -> PurePath | None:
        """The file at ``relative`` below ``root``, or None when there is none (or it would lie outside)."""
        path = root / relative
        return path if self.is_file(path) else None

    def signed_url(self, path: PurePath, expires_s: float = 3600.0) -> str | None:
        """A URL a client without credentials can GET (byte ranges work), valid ``expires_s``; None where the
        server itself serves the store's files (a folder)."""
        return None

    def new_build_prefix(self) -> str:
        """The folder (below the block's) a new build of a block writes its files into; "" for the block folder
        itself (a store that replaces a whole block folder in one step)."""
        return ""

    def prune_empty_folders(self, folder: PurePath) -> None:
        """Remove the empty folders below ``folder`` (an object store has none)."""

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

    @abstractmethod
    def file_times(self, folder: PurePath) -> dict[PurePath, dt.datetime]:
        """Every file below ``folder`` (as `list_files`) with when it was last written (UTC)."""

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
    def install_block(self, tmp: Path, final: PurePath, accept: Accept, prefix: str = "") -> bool:
        """Put the complete block in ``tmp`` (manifest included) in place at ``final``, its files in the
        folder ``prefix`` (`new_build_prefix`) below it.

        Under the block's lock, ``accept(current manifest or None)`` decides: False keeps what is
        there (returns False). Readers never see a block whose manifest lists files not yet there.
        """

    def clean_stale(self, blocks_dir: PurePath, older_than_s: float) -> int:
        """Remove temporaries that killed builds left behind; how many were removed."""
        return 0

    def check(self) -> None:
        """Raise `StorageError` (saying what to change) when the location cannot be written."""

    @abstractmethod
    def readable(self, timeout_s: float) -> str | None:
        """None when the location can be listed within about ``timeout_s``, else why not, in words a client may
        read (for /readyz: what to check, no paths or credentials; the details are logged)."""

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


