"""The compiled kernels (numba), loaded before the first window needs them.

Each kernel is compiled once and kept in numba's cache on disk (``cache=True``); a new process still
loads it at its first call (a few tenths of a second each), and requests or blocks arriving at once
would all wait on that load. A server loads them while it starts (`app.services.Services.warm_up`), the
build benchmark before it starts timing (as a build worker loads them once for all its blocks).
"""

from __future__ import annotations

import numpy as np


def load_kernels() -> None:
    """Call every compiled kernel once on a tiny input (numba loads or compiles it)."""
    from compositor.mask import store_masked
    from compositor.medoid import medoid_choice
    from compositor.read import _judge_boxes
    from compositor.stats import percentiles_and_count, percentiles_by_orbit

    stack = np.ones((2, 2, 2), dtype=np.uint16)
    percentiles_and_count(stack)
    percentiles_by_orbit(stack, np.array([1, 2]), (25.0, 50.0, 75.0))
    medoid_choice(np.ones((2, 6, 2, 2), dtype=np.uint16))
    flags = np.zeros((2, 2), dtype=bool)
    boxes = np.zeros((2, 2), dtype=np.int32)
    _judge_boxes(flags, flags, boxes, boxes, boxes, boxes)
    store_masked(np.zeros((2, 2), dtype=np.uint16), np.ones((2, 2), dtype=np.uint16), flags, 0)
