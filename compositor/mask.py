"""Cloud and shadow masking with the Sentinel-2 L2A scene classification (SCL)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numba import njit
from scipy.ndimage import binary_dilation

# SCL classes of Sen2Cor: 0 no data, 1 saturated or defective, 2 dark area, 3 cloud shadow,
# 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium probability,
# 9 cloud high probability, 10 thin cirrus, 11 snow or ice.
SCL_NAMES: dict[int, str] = {
    0: "no data", 1: "saturated or defective", 2: "dark area", 3: "cloud shadow", 4: "vegetation",
    5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud medium probability",
    9: "cloud high probability", 10: "thin cirrus", 11: "snow or ice",
}


def valid_scl_lookup(invalid_classes: Iterable[int]) -> np.ndarray:
    """A 256-entry boolean table: ``table[scl]`` is True where the class is a valid observation."""
    table = np.ones(256, dtype=bool)
    table[list(invalid_classes)] = False
    table[0] = False  # no data is never an observation
    return table


def store_masked(out: np.ndarray, band_dn: np.ndarray, where: np.ndarray, offset_dn: int) -> None:
    """Write reflectance DN (reflectance * 10000) of ``band_dn`` into ``out`` where ``where`` (2-D arrays
    of one shape), leave the rest: ``offset_dn`` (1000 for processing baseline >= 04.00 unless already
    removed) is subtracted, a value that would fall to 0 or below is kept as 1 so that 0 still means
    "no data", and a pixel without data (0) stays 0.

    A scene writes its pixels of an acquisition's layer this way: one pass, without Python's lock (the
    numpy version held it for its boolean indexing while the other read threads waited)."""
    if not (out.shape == band_dn.shape == where.shape and out.ndim == 2):
        raise ValueError(f"shapes differ: {out.shape}, {band_dn.shape}, {where.shape}")
    _store_masked(out, band_dn, where, int(offset_dn))


@njit(cache=True, nogil=True)
def _store_masked(out, band_dn, where, offset_dn):  # pragma: no cover - compiled
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            if where[y, x]:
                value = band_dn[y, x]
                if value == 0:
                    out[y, x] = 0
                else:
                    shifted = np.int64(value) - offset_dn
                    out[y, x] = 1 if shifted < 1 else (65535 if shifted > 65535 else shifted)


def disk_offsets(radius_m: float, res_x_m: float, res_y_m: float) -> np.ndarray:
    """Boolean structuring element: pixels whose centre lies within ``radius_m`` of the centre one.

    ``res_x_m``/``res_y_m`` are the pixel sizes (m); the element has odd sides, True at the centre.
    """
    nx, ny = int(radius_m // res_x_m), int(radius_m // res_y_m)
    dy, dx = np.mgrid[-ny:ny + 1, -nx:nx + 1]
    return (dx * res_x_m) ** 2 + (dy * res_y_m) ** 2 <= radius_m ** 2 * (1 + 1e-9)


def grow_invalid(invalid: np.ndarray, buffer_m: float, res_x_m: float, res_y_m: float) -> np.ndarray:
    """``invalid`` grown by a disk: True where a pixel's centre is within ``buffer_m`` (m) of the
    centre of an invalid pixel. ``buffer_m`` 0, or a disk smaller than one pixel, changes nothing."""
    if buffer_m <= 0 or not invalid.any():
        return invalid
    disk = disk_offsets(buffer_m, res_x_m, res_y_m)
    return invalid if disk.size == 1 else binary_dilation(invalid, structure=disk)
