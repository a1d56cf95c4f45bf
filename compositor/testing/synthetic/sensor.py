"""What the instrument and the processor add: view-angle brightness per orbit, noise, DN coding."""

from __future__ import annotations

import math

import numpy as np

from compositor.testing.synthetic.reference_orbit import HALF_ANGLE_DEG

REFLECTANCE_SCALE = 10_000
_DN_MAX = 32_767  # 15 significant bits, as in the real COGs
# Sensor noise sigma at 10 m = floor + relative * reflectance (SNR ~140 at 0.1 reflectance); averaging
# n x n native pixels into one larger pixel divides it by n (at 100 m: 0.7 DN plus 0.1 per mille)
_NOISE_FLOOR, _NOISE_RELATIVE, _NATIVE_M = 0.00025, 0.0005, 10.0


def orbit_coefficients(relative_orbit: int) -> tuple[float, float]:
    """(a, b) of the orbit's view-angle brightness 1 + a*u + b*u^2, u = off-nadir angle / swath half-angle.

    A few percent, different in sign and size from orbit to orbit (a stand-in for BRDF effects
    across the swath), so that neighbouring orbits disagree where their swaths overlap.
    """
    a = 0.035 * math.sin(2.1 * relative_orbit + 0.4)
    b = 0.025 * math.cos(1.7 * relative_orbit + 1.1)
    return a, b


def orbit_brightness(relative_orbit: int, view_deg: np.ndarray) -> np.ndarray:
    """The multiplicative view-angle factor (float32) at signed off-nadir angles (deg, east > 0).

    ``view_deg`` comes from the generator's own geometry (``reference_orbit.view_coordinates``),
    so the brightness follows the real swath: u = +/-1 at the real data edges.
    """
    a, b = orbit_coefficients(relative_orbit)
    u = np.asarray(view_deg, dtype=np.float32) / np.float32(HALF_ANGLE_DEG)
    return (1.0 + u * (a + b * u)).astype(np.float32)


def add_noise(refl: np.ndarray, rng: np.random.Generator, pixel_size_m: float) -> np.ndarray:
    """Gaussian sensor noise added in place to reflectance (float32, any shape) at ``pixel_size_m``."""
    scale = _NATIVE_M / max(pixel_size_m, _NATIVE_M)
    noise = rng.standard_normal(refl.shape, dtype=np.float32)
    sigma = refl * np.float32(scale * _NOISE_RELATIVE)
    sigma += np.float32(scale * _NOISE_FLOOR)
    noise *= sigma
    refl += noise
    return refl


def encode_dn(refl: np.ndarray, valid: np.ndarray, offset_dn: int) -> np.ndarray:
    """uint16 DN = reflectance * 10000 + offset, at least 1 where valid and 0 (nodata) elsewhere."""
    dn = np.rint(refl * np.float32(REFLECTANCE_SCALE) + np.float32(offset_dn))
    np.clip(dn, 1, _DN_MAX, out=dn)
    out = dn.astype(np.uint16)
    out[~valid] = 0
    return out
