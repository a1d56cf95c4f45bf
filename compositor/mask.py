"""Cloud and shadow masking with the Sentinel-2 L2A scene classification (SCL)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
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


def apply_mask(band_dn: np.ndarray, valid: np.ndarray, offset_dn: int) -> np.ndarray:
    """Reflectance DN (reflectance * 10000) with 0 wherever the observation is not valid.

    ``offset_dn`` (1000 for processing baseline >= 04.00 unless already removed) is subtracted;
    a valid value that would fall to 0 or below is kept as 1 so that 0 still means "no data".
    """
    out = band_dn.astype(np.int32) - offset_dn
    np.clip(out, 1, 65535, out=out)
    out = out.astype(np.uint16)
    out[~valid | (band_dn == 0)] = 0
    return out


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
