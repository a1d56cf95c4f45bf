"""Compositing a window of the output grid from its scenes: the one algorithm of both callers.

The batch build calls `composite_window` for each strip of a block; the tile server calls it for
a map tile it cannot read from built blocks. Steps: group scenes into acquisitions (one
acquisition seen in two MGRS tiles is one observation), mask with SCL, per relative orbit the
percentiles and count, then blend orbits (`compositor.blend`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from rasterio.enums import Resampling

from compositor.blend import blend_orbits, orbit_weights, pixel_lonlat
from compositor.catalog import Scene, deduplicate_acquisitions
from compositor.errors import SourceUnavailableError
from compositor.mask import apply_mask, valid_scl_lookup
from compositor.read import read_warped
from compositor.settings import DEFAULT_MASK_CLASSES
from compositor.stats import PERCENTILES, percentiles_and_count, percentiles_by_orbit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompositeOptions:
    """How to composite: masked SCL classes, blending, and whether overviews may be read."""

    invalid_classes: tuple[int, ...] = DEFAULT_MASK_CLASSES
    blend: bool = True
    blend_power: float = 2.0
    use_overviews: bool = False
    percentiles: tuple[float, ...] = PERCENTILES

    def fingerprint(self) -> dict[str, object]:
        """What changes the pixels of a build (recorded in block manifests)."""
        return {"invalid_classes": list(self.invalid_classes), "blend": self.blend,
                "blend_power": self.blend_power, "percentiles": list(self.percentiles)}


@dataclass
class Composite:
    """Per band: ``stats[band]`` (len(percentiles), h, w) float32 (NaN where nothing was valid)
    and ``counts[band]`` (h, w) uint16, the valid acquisitions summed over orbits."""

    stats: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)  # scene id -> reason
    n_acquisitions: int = 0


@dataclass
class _Acquisition:
    orbit: int
    scenes: list[Scene]
    source: np.ndarray  # (h, w) int8: index in `scenes` of the scene that supplies each pixel, -1 none


def _select_sources(group: Sequence[Scene], reader: Callable[[Scene, str, Resampling], np.ndarray],
                    valid_lookup: np.ndarray, shape: tuple[int, int], skipped: dict[str, str]) -> np.ndarray:
    """For one acquisition, which of its scenes (MGRS tiles) supplies each valid pixel."""
    source = np.full(shape, -1, dtype=np.int8)
    for index, scene in enumerate(group):
        try:
            scl = reader(scene, "scl", Resampling.nearest)
        except SourceUnavailableError as exc:
            skipped[scene.id] = str(exc)
            logger.warning("skip scene %s: %s", scene.id, exc)
            continue
        source[(source == -1) & valid_lookup[scl]] = index
    return source


def _band_layer(acq: _Acquisition, band: str, reader: Callable[[Scene, str, Resampling], np.ndarray],
                shape: tuple[int, int], skipped: dict[str, str]) -> np.ndarray:
    layer = np.zeros(shape, dtype=np.uint16)
    for index, scene in enumerate(acq.scenes):
        chosen = acq.source == index
        if scene.id in skipped or not chosen.any():
            continue
        try:
            dn = reader(scene, band, Resampling.average)
        except SourceUnavailableError as exc:
            skipped[scene.id] = str(exc)
            logger.warning("skip scene %s: %s", scene.id, exc)
            continue
        layer[chosen] = apply_mask(dn, chosen, scene.offset_dn)[chosen]
    return layer


def composite_window(scenes: Sequence[Scene], bands: Sequence[str], crs: str, transform: Affine,
                     shape: tuple[int, int], options: CompositeOptions = CompositeOptions()) -> Composite:
    """Percentiles and counts of ``bands`` over the grid ``(crs, transform, shape)``.

    Scenes that cannot be read are skipped and reported in ``Composite.skipped``; a window with
    no scenes (or none readable) gives NaN statistics and count 0.
    """
    def reader(scene: Scene, key: str, resampling: Resampling) -> np.ndarray:
        return read_warped(scene.hrefs[key], crs, transform, shape, resampling, use_overviews=options.use_overviews)

    skipped: dict[str, str] = {}
    lookup = valid_scl_lookup(options.invalid_classes)
    acquisitions = [
        _Acquisition(group[0].relative_orbit, list(group), _select_sources(group, reader, lookup, shape, skipped))
        for group in deduplicate_acquisitions(scenes)
    ]
    acquisitions = [a for a in acquisitions if (a.source >= 0).any()]
    k = len(options.percentiles)
    stats: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    orbits = sorted({a.orbit for a in acquisitions})
    weights = {}
    if options.blend and len(orbits) > 1:
        lon, lat = pixel_lonlat(crs, transform, shape)
        weights = {o: orbit_weights(o, lon, lat, options.blend_power) for o in orbits}
    for band in bands:
        if not acquisitions:
            stats[band] = np.full((k, *shape), np.nan, dtype=np.float32)
            counts[band] = np.zeros(shape, dtype=np.uint16)
            continue
        layers = np.stack([_band_layer(a, band, reader, shape, skipped) for a in acquisitions])
        if not options.blend or len(orbits) == 1:
            stats[band], counts[band] = percentiles_and_count(layers, options.percentiles)
            continue
        per_orbit = percentiles_by_orbit(layers, np.array([a.orbit for a in acquisitions]), options.percentiles)
        stats[band] = blend_orbits({o: s for o, (s, _) in per_orbit.items()},
                                   {o: c for o, (_, c) in per_orbit.items()}, weights)
        counts[band] = np.sum([c for _, c in per_orbit.values()], axis=0, dtype=np.uint32).clip(0, 65535).astype(np.uint16)
    return Composite(stats=stats, counts=counts, skipped=skipped, n_acquisitions=len(acquisitions))


def to_dn(stat: np.ndarray) -> np.ndarray:
    """Statistics (float, NaN for nothing valid) as uint16 reflectance DN with nodata 0."""
    out = np.where(np.isnan(stat), 0.0, np.clip(np.rint(stat), 1, 65535))
    return out.astype(np.uint16)
