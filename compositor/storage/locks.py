"""Block locks: two builders of one block never both install it.

In a folder, an ``fcntl`` lock on ``blocks/.locks/<id>.lock``. In an object store, a lock object
created with a conditional PUT (``If-None-Match: *``) and renewed by its holder every
`LOCK_RENEW_S` (a new body, so a new ETag); a waiter that sees the same ETag for `LOCK_STALE_S` on
its own clock (no clock skew involved) replaces exactly that object (``If-Match``): of several
waiters only one can.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath

from compositor.errors import StorageError
from compositor.storage.base import LOCKS, first_line

logger = logging.getLogger(__name__)

LOCK_WAIT_S = 900.0  # how long a builder waits for another one installing the same block
LOCK_STALE_S = 120.0  # a lock object not renewed for this long was left by a builder that died
LOCK_RENEW_S = 20.0  # how often a holder renews its lock object (a new body: a new ETag)


@contextlib.contextmanager
def folder_lock(blocks_dir: Path, block_id: str) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on the block, held while it is installed (released if the process dies)."""
    locks = blocks_dir / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{block_id}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Lease:
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
                logger.warning("%s: lock not renewed: %s", self.key, first_line(exc))

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




@contextlib.contextmanager
def object_lock(client, key: str, path: PurePath, error: Callable[[str, PurePath, BaseException], StorageError],
                wait_s: float | None = None) -> Iterator[Lease]:
    """Hold the lock object at ``path`` while the block is installed.

    Taken with a conditional create (``If-None-Match: *``); renewed every `LOCK_RENEW_S` by its
    holder (a new body, so a new ETag). A waiter that sees the same ETag for `LOCK_STALE_S` on its
    own clock (no clock skew involved) replaces exactly that object (``If-Match``): of several
    waiters only one can. Deleted on release when it is still ours.
    """
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError

    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    owner = f"{uuid.uuid4().hex} {os.uname().nodename} {os.getpid()}"
    deadline = time.monotonic() + wait_s
    seen: tuple[str, float] | None = None  # another holder's ETag and when this waiter first saw it
    pause = 0.2
    while True:
        body = f"{owner} {time.time():.3f}".encode()
        try:
            etag = obstore.put(client, key, body, mode="create")["e_tag"]
            break
        except AlreadyExistsError:
            pass
        except obstore.exceptions.BaseError as exc:
            raise error("lock", path, exc) from None
        try:
            held = obstore.get(client, key)
            held_etag, held_body = held.meta["e_tag"], bytes(held.bytes())
        except FileNotFoundError:
            seen = None
            continue  # released meanwhile
        except obstore.exceptions.BaseError as exc:
            raise error("lock", path, exc) from None
        if held_body.split(b" ")[0] == owner.split(" ")[0].encode():
            etag = held_etag  # our create went through but its answer was lost
            break
        now = time.monotonic()
        if seen is None or seen[0] != held_etag:
            seen = (held_etag, now)  # a new holder, or a live one that renewed its lock
        elif now - seen[1] > LOCK_STALE_S:
            try:
                etag = obstore.put(client, key, body, mode={"e_tag": held_etag})["e_tag"]
                logger.warning("%s: not renewed for %.0f s, its builder is gone: taken over", key, now - seen[1])
                break
            except (PreconditionError, FileNotFoundError):
                seen = None  # another waiter took it over first, or it was released
                continue
            except obstore.exceptions.BaseError as exc:
                raise error("lock", path, exc) from None
        if now > deadline:
            raise StorageError(f"{path} has been held by another builder, renewed all along, for over "
                               f"{wait_s:g} s: a build of the same block is running; wait for it to end")
        time.sleep(pause + random.random() * pause)
        pause = min(2.0, pause * 1.5)
    lease = Lease(client, key, owner, etag)
    try:
        yield lease
    finally:
        lease.release()
