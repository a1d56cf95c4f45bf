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
  S3 way to create only if absent) and renewed by its holder (`compositor.storage.locks`). A block's
  files go under a prefix of their own build (``blocks/<id>/<build>/``), then the manifest that names
  that prefix replaces the old one in one PUT: a reader that follows one manifest (the server, the
  season VRTs, the STAC items) never mixes two builds. The files of a replaced build stay until
  `compositor.index.remove_replaced_builds` removes them, an hour after the swap, so readers that
  still hold the old manifest (a server between two listings, a VRT not yet rewritten) keep working.

Credentials and endpoint come from the standard AWS environment variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``; ``AWS_ENDPOINT_URL`` for a
non-AWS server), read by obstore for writes and translated into GDAL's options for reads.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import urlsplit

from compositor.errors import InvalidInputError
from compositor.storage.base import MANIFEST, Accept, OutputStore
from compositor.storage.folder import FolderStore
from compositor.storage.s3 import S3Store, endpoint_url

__all__ = ["MANIFEST", "Accept", "FolderStore", "OutputStore", "S3Store", "open_store",
           "output_location"]



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
    return store.user_location


def open_store(location: str | os.PathLike | OutputStore) -> OutputStore:
    """The store for a folder path or an ``s3://bucket/prefix`` URL."""
    if isinstance(location, OutputStore):
        return location
    return _open(os.fspath(location), endpoint_url())
