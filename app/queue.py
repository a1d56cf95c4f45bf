"""Blocks that on-the-fly requests asked for, queued for a batch build (``queue_unbuilt`` setting).

The server never builds by itself: it remembers which grid blocks of a season were composited on
the fly and lists them at ``/seasons/{season}/queue`` with, for each, a lon/lat box that selects
exactly that block and the ``s2seasons build`` command that builds it. A cron job or an operator
runs the commands; the server sees the new blocks and drops its cached tiles of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from compositor.grid import Block

MAX_QUEUED_PER_SEASON = 10_000
INSET_FRACTION = 0.25  # half-width of a block's build box, as a fraction of its lon/lat extent


class BuildQueue:
    """Per season, block ids in the order they were first requested (bounded, oldest dropped first)."""

    def __init__(self) -> None:
        self._queues: dict[str, OrderedDict[str, None]] = {}
        self._lock = threading.Lock()

    def add(self, season: str, block_ids: list[str]) -> None:
        with self._lock:
            queue = self._queues.setdefault(season, OrderedDict())
            for block_id in block_ids:
                queue[block_id] = None
            while len(queue) > MAX_QUEUED_PER_SEASON:
                queue.popitem(last=False)

    def blocks(self, season: str) -> list[str]:
        with self._lock:
            return list(self._queues.get(season, ()))


def block_bbox_4326(block: Block) -> tuple[float, float, float, float]:
    """A lon/lat box well inside the block (around its centre, half its size): ``s2seasons build --bbox``
    with it builds exactly that block and none of its neighbours."""
    west, south, east, north = block.footprint_4326(densify=4).bounds
    cx, cy = (west + east) / 2, (south + north) / 2
    hx, hy = (east - west) * INSET_FRACTION, (north - south) * INSET_FRACTION
    return (round(cx - hx, 6), round(cy - hy, 6), round(cx + hx, 6), round(cy + hy, 6))
