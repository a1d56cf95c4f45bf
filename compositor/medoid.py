"""The medoid of each pixel's observations: one real observation, so that its bands belong together.

S2GM's definition: among the pixel's valid observations (every band has a value), the one whose band
vector has the smallest sum of Euclidean distances to all the others. Chosen over all orbits together
(a medoid is one observation; blending orbits would make it a mix), ties to the earliest observation.

`medoid_choice` is a compiled kernel (numba, no Python objects, the GIL released); `medoid_choice_numpy`
is the same definition written with numpy broadcasting, the reference the tests and
``benchmarks/bench_medoid.py`` compare it with (equal results).
"""

from __future__ import annotations

import numpy as np
from numba import njit

NONE = -1  # no valid observation at the pixel


@njit(cache=True, nogil=True)
def _kernel(values, out):  # pragma: no cover - compiled
    n, b, h, w = values.shape
    index = np.empty(n, dtype=np.int64)
    vectors = np.empty((n, b), dtype=np.float64)
    for y in range(h):
        for x in range(w):
            m = 0
            for i in range(n):
                ok = True
                for k in range(b):
                    if values[i, k, y, x] == 0:
                        ok = False
                        break
                if ok:
                    index[m] = i
                    for k in range(b):
                        vectors[m, k] = values[i, k, y, x]
                    m += 1
            if m == 0:
                out[y, x] = -1
                continue
            best = 0
            best_sum = np.inf
            for i in range(m):
                total = 0.0
                for j in range(m):
                    if i != j:
                        d = 0.0
                        for k in range(b):
                            diff = vectors[i, k] - vectors[j, k]
                            d += diff * diff
                        total += np.sqrt(d)
                    if total >= best_sum:
                        break  # cannot win any more (ties go to the earlier observation)
                if total < best_sum:
                    best_sum = total
                    best = i
            out[y, x] = index[best]


def medoid_choice(values: np.ndarray) -> np.ndarray:
    """``values`` (n_observations, n_bands, h, w) uint16, 0 = no value; per pixel the index of the medoid
    observation, or `NONE` (-1) where no observation has every band: (h, w) int16."""
    if values.ndim != 4 or values.dtype != np.uint16:
        raise ValueError(f"values must be a (n, bands, h, w) uint16 array, got {values.dtype} {values.shape}")
    out = np.empty(values.shape[2:], dtype=np.int16)
    _kernel(np.ascontiguousarray(values), out)
    return out


def medoid_choice_numpy(values: np.ndarray) -> np.ndarray:
    """The same choice with numpy broadcasting (memory n^2 * h * w floats: for tests and benchmarks). Sums are
    accumulated in the kernel's order (bands, then observations, one after the other), so that equal sums
    (identical observations) tie the same way."""
    x = values.astype(np.float64)
    valid = (values > 0).all(axis=1)  # (n, h, w)
    squared = np.zeros((x.shape[0], x.shape[0], *x.shape[2:]))
    for k in range(x.shape[1]):
        diff = x[:, None, k] - x[None, :, k]  # (n, n, h, w)
        squared = squared + diff * diff
    dist = np.sqrt(squared)
    pair = valid[:, None] & valid[None, :]
    total = np.cumsum(np.where(pair, dist, 0.0), axis=1)[:, -1]  # (n, h, w), in order of the other observation
    total = np.where(valid, total, np.inf)
    choice = np.argmin(total, axis=0).astype(np.int16)  # first of equal sums: the earliest
    return np.where(valid.any(axis=0), choice, NONE).astype(np.int16)


def take(values: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Per pixel the chosen observation's layer: ``values`` (n, h, w) by ``choice`` (h, w); 0 where `NONE`."""
    picked = np.take_along_axis(values, np.clip(choice, 0, None)[None].astype(np.intp), axis=0)[0]
    return np.where(choice >= 0, picked, 0).astype(values.dtype)
