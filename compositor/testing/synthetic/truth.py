"""The truth the composites are measured against: the seasonal median clear-sky surface.

Per season and band: the per-pixel median, over the season's acquisition dates (of every
orbit of the archive), of the clear-sky surface reflectance (``surface.surface_reflectance``:
phenology, snow, shaded slopes; no orbit brightness, no noise, no clouds), at the pixel
centres of the truth grid. Stored as uint16 DN = reflectance * 10000 (no offset), nodata 0.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
from pyproj import Transformer

from compositor.seasons import Season
from compositor.testing.synthetic.cogs import write_scene_cog
from compositor.testing.synthetic.geometry import GROUND_CRS, RasterGrid
from compositor.testing.synthetic.landcover import Ground, describe_ground
from compositor.testing.synthetic.sensor import REFLECTANCE_SCALE
from compositor.testing.synthetic.surface import BANDS, surface_reflectance

_CHUNK_ROWS = 48


def median_surface(ground: Ground, grid: RasterGrid, dates: list[dt.date], lat_deg: float) -> np.ndarray:
    """The per-pixel median clear-sky reflectance over ``dates``, shape (6, height, width), float32."""
    out = np.empty((len(BANDS), grid.height, grid.width), dtype=np.float32)
    to_ground = None if grid.crs == GROUND_CRS else Transformer.from_crs(grid.crs, GROUND_CRS, always_xy=True)
    for start in range(0, grid.height, _CHUNK_ROWS):
        rows = slice(start, min(start + _CHUNK_ROWS, grid.height))
        x, y = grid.centres(rows)
        if to_ground is not None:
            x, y = to_ground.transform(x, y)
        points = describe_ground(ground, x, y)
        stack = np.stack([surface_reflectance(points, day, ground.seed, lat_deg) for day in dates])
        out[:, rows] = np.median(stack, axis=0)
    return out


def write_truth(
    folder: Path,
    ground: Ground,
    grid: RasterGrid,
    season: Season,
    dates: list[dt.date],
    orbits: tuple[int, ...],
    lat_deg: float,
) -> int:
    """Write ``<band>_p50.tif`` for the six bands and ``dates.json`` into ``folder``; returns bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    median = median_surface(ground, grid, dates, lat_deg)
    written = 0
    for k, band in enumerate(BANDS):
        dn = np.clip(np.rint(median[k] * REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
        written += write_scene_cog(folder / f"{band}_p50.tif", dn, grid.crs, grid.transform)
    meta = {
        "season": season.name,
        "start": season.start.isoformat(),
        "end": season.end.isoformat(),
        "dates": [d.isoformat() for d in dates],
        "relative_orbits": list(orbits),
        "crs": grid.crs,
        "resolution_m": grid.res,
        "statistic": "median over the dates of the clear-sky surface (snow and shaded slopes included; "
        "no orbit brightness, noise or clouds)",
        "dn": "reflectance * 10000, no offset, nodata 0",
    }
    path = folder / "dates.json"
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return written + path.stat().st_size


def homogeneous(truth: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """Pixels whose 8 neighbours are within ``tolerance`` of them in ``truth`` (inside a land-cover patch).

    The truth is the surface at pixel centres; a composite averages the "10 m" pixels inside each
    output pixel. They agree only inside a patch, so accuracy is measured there.
    """
    p = np.pad(truth, 1, mode="edge")
    neighbours = np.stack([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:], p[:-2, :-2], p[2:, 2:],
                           p[:-2, 2:], p[2:, :-2]])
    return np.abs(neighbours - truth).max(axis=0) <= tolerance * truth
