"""Deterministic random fields: hashed lattices, bilinear sampling, seeded generators.

Ground fields (land cover, texture, snow-prone terrain) are functions of absolute EPSG:3035
coordinates: a lattice node's value is a hash of its integer position and a key, so every tile,
in any UTM zone, sees the same ground wherever it samples it. Per-acquisition fields (clouds)
are drawn from a generator seeded by (seed, date, orbit), so that every worker rebuilds the
same sky.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PRIME_X = np.uint64(0x9E3779B97F4A7C15)
_PRIME_Y = np.uint64(0xC2B2AE3D27D4EB4F)


def stable_key(*parts: object) -> int:
    """A 63-bit integer from any printable parts, stable across processes and Python versions."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def stable_fraction(*parts: object) -> float:
    """A number in [0, 1) from printable parts, stable across processes."""
    return stable_key(*parts) / 2.0**63


def seeded_rng(*parts: object) -> np.random.Generator:
    """A numpy generator seeded from printable parts (seed, date, orbit, tile...)."""
    return np.random.default_rng(stable_key(*parts))


def hash_uniform(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """Uniform values in [0, 1) (float32) hashed from integer lattice positions and a key."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint64) * _PRIME_X ^ iy.astype(np.uint64) * _PRIME_Y ^ np.uint64(key)
        h ^= h >> np.uint64(30)
        h *= _MIX1
        h ^= h >> np.uint64(27)
        h *= _MIX2
        h ^= h >> np.uint64(31)
    return ((h >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)


def sample_bilinear(grid: np.ndarray, fi: np.ndarray, fj: np.ndarray) -> np.ndarray:
    """Bilinear interpolation at fractional (row, column) indices, clamped to the grid's edges.

    ``grid`` is (rows, cols), or (layers, rows, cols) to sample every layer at the same points
    (the result then has a leading layer axis).
    """
    layers = grid if grid.ndim == 3 else grid[None]
    h, w = layers.shape[1:]
    fi = np.clip(fi, 0, h - 1.0001)
    fj = np.clip(fj, 0, w - 1.0001)
    i0 = fi.astype(np.int32)
    j0 = fj.astype(np.int32)
    wi = (fi - i0).astype(grid.dtype)
    wj = (fj - j0).astype(grid.dtype)
    idx = i0 * w + j0
    out = np.empty((layers.shape[0],) + np.shape(fi), dtype=grid.dtype)
    for k, layer in enumerate(layers):
        flat = layer.ravel()
        a = flat[idx]
        b = flat[idx + 1]
        c = flat[idx + w]
        d = flat[idx + w + 1]
        top = a + wj * (b - a)
        bottom = c + wj * (d - c)
        out[k] = top + wi * (bottom - top)
    return out if grid.ndim == 3 else out[0]


def upsample_grid(
    coarse: np.ndarray, shape: tuple[int, int], factor: float, phase: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Bilinear resampling of ``coarse`` onto a finer grid whose step is ``1/factor`` coarse cells."""
    rows = (np.arange(shape[0], dtype=np.float32) + phase[0]) / factor
    cols = (np.arange(shape[1], dtype=np.float32) + phase[1]) / factor
    fi = np.broadcast_to(rows[:, None], shape)
    fj = np.broadcast_to(cols[None, :], shape)
    return sample_bilinear(coarse, fi, fj)


def lattice_field(
    x0_m: float, y0_m: float, shape: tuple[int, int], spacing_m: float, cells_m: Sequence[float], key: int
) -> np.ndarray:
    """Fractal value noise on a north-up grid of absolute EPSG:3035 nodes.

    Node (i, j) is at (x0_m + j * spacing_m, y0_m - i * spacing_m); ``x0_m`` and ``y0_m`` must be
    multiples of ``spacing_m`` so that the nodes, hence the values, do not depend on the extent.
    Each octave is a hashed lattice of cell ``cells_m[k]`` (a multiple of the spacing), smoothly
    interpolated; octaves are weighted by their cell size and the sum is scaled to [0, 1].
    """
    out = np.zeros(shape, dtype=np.float32)
    total = 0.0
    for k, cell in enumerate(cells_m):
        step = int(round(cell / spacing_m))
        ix0 = int(np.floor(x0_m / cell))
        iy0 = int(np.floor(y0_m / cell)) + 1
        nx = (shape[1] + step - 1) // step + 2
        ny = (shape[0] + step - 1) // step + 2
        lx, ly = np.meshgrid(np.arange(ix0, ix0 + nx), np.arange(iy0, iy0 - ny, -1))
        lattice = hash_uniform(lx, ly, key + 7919 * k)
        # fractional lattice position of each grid node, with a smoothstep for rounder blobs
        fx = (x0_m / cell - ix0) + np.arange(shape[1], dtype=np.float64) / step
        fy = (iy0 - y0_m / cell) + np.arange(shape[0], dtype=np.float64) / step
        fx = np.floor(fx) + _smoothstep(fx - np.floor(fx))
        fy = np.floor(fy) + _smoothstep(fy - np.floor(fy))
        fi = np.broadcast_to(fy[:, None], shape)
        fj = np.broadcast_to(fx[None, :], shape)
        weight = cell**0.6
        out += np.float32(weight) * sample_bilinear(lattice, fi, fj)
        total += weight
    out /= np.float32(total)
    return out


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def fractal_from_rng(
    rng: np.random.Generator, shape: tuple[int, int], steps: Sequence[int], exponent: float = 0.7
) -> np.ndarray:
    """Fractal noise (float32, mean ~0.5) on a grid: random coarse grids every ``steps`` cells, upsampled.

    Each octave is a uniform random grid with one value every ``steps[k]`` grid cells, bilinearly
    upsampled; octaves are weighted by ``step ** exponent`` and normalised to unit total weight.
    """
    out = np.zeros(shape, dtype=np.float32)
    total = 0.0
    for step in steps:
        coarse = rng.random((shape[0] // step + 2, shape[1] // step + 2), dtype=np.float32)
        phase = (float(rng.random()) * step, float(rng.random()) * step)
        weight = float(step) ** exponent
        out += np.float32(weight) * upsample_grid(coarse, shape, step, phase)
        total += weight
    out /= np.float32(total)
    return out
