"""Compositing a window of the output grid from its scenes: the one algorithm of both callers.

The batch build calls `composite_window` for each strip of a block; the tile server calls it for
a map tile it cannot read from built blocks. Steps: group scenes into acquisitions (one
acquisition seen in two MGRS tiles is one observation), mask with SCL (every SCL pixel under an
output pixel's footprint, invalid ones grown by a buffer), per relative orbit the percentiles and
count, then blend orbits (`compositor.blend`) with weights tapered inside the edge of each orbit's
footprints: those of the window's readable scenes and of the ``footprints`` scenes around it that
the caller passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
from affine import Affine
from rasterio.enums import Resampling

from compositor.bands import BAND_NAMES, BANDS_BY_NAME, INDEX_NODATA, INDEX_SHIFT, Index
from compositor.blend import blend_orbits, check_taper, window_weights
from compositor.catalog import Scene, deduplicate_acquisitions
from compositor.errors import SourceUnavailableError
from compositor.mask import store_masked, valid_scl_lookup
from compositor.medoid import medoid_choice, take
from compositor.read import FootprintMask, read_scl_footprint, read_warped_bands
from compositor.settings import (DEFAULT_BLEND_EDGE_MARGIN_M, DEFAULT_BLEND_EDGE_RAMP_M, DEFAULT_MASK_BUFFER_M,
                                 DEFAULT_MASK_CLASSES)
from compositor.stats import PERCENTILES, percentiles_and_count, percentiles_by_orbit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompositeOptions:
    """How to composite: masked SCL classes and their buffer, blending, and whether overviews may be read.

    ``mask_buffer_m``: invalid SCL pixels are grown by a disk of this radius (m) before a pixel is
    judged by every SCL pixel under its footprint (`compositor.read.read_scl_footprint`).
    ``blend_edge_margin_m`` and ``blend_edge_ramp_m`` (ground metres) place the taper of an orbit's
    weight inside the edge of its footprints: zero up to the margin, 1 beyond margin + ramp
    (`compositor.blend`)."""

    invalid_classes: tuple[int, ...] = DEFAULT_MASK_CLASSES
    mask_buffer_m: float = DEFAULT_MASK_BUFFER_M
    blend: bool = True
    blend_power: float = 2.0
    use_overviews: bool = False
    percentiles: tuple[float, ...] = PERCENTILES
    read_threads: int = 4  # scene files read at once (GDAL releases the GIL); not in the fingerprint
    blend_edge_margin_m: float = DEFAULT_BLEND_EDGE_MARGIN_M
    blend_edge_ramp_m: float = DEFAULT_BLEND_EDGE_RAMP_M

    def __post_init__(self) -> None:
        check_taper(self.blend_edge_margin_m, self.blend_edge_ramp_m)

    def fingerprint(self) -> dict[str, object]:
        """What changes the pixels of a build (recorded in block manifests)."""
        return {"invalid_classes": list(self.invalid_classes), "mask_buffer_m": self.mask_buffer_m,
                "mask_rule": "footprint", "blend": self.blend,
                "blend_power": self.blend_power, "percentiles": list(self.percentiles),
                "blend_edge_margin_m": self.blend_edge_margin_m, "blend_edge_ramp_m": self.blend_edge_ramp_m}

    @classmethod
    def from_settings(cls, settings, *, blend: bool = True) -> CompositeOptions:
        """The options of `compositor.settings.Settings` (``blend`` off: ``--no-blend``): the one place the build
        and on-the-fly compositing take them from."""
        return cls(invalid_classes=settings.invalid_scl_classes, mask_buffer_m=settings.mask_buffer_m, blend=blend,
                   blend_power=settings.blend_power, blend_edge_margin_m=settings.blend_edge_margin_m,
                   blend_edge_ramp_m=settings.blend_edge_ramp_m)

    @classmethod
    def from_fingerprint(cls, fingerprint: Mapping[str, object]) -> CompositeOptions:
        """The options a `fingerprint` records (a block manifest's ``options``); fields it lacks keep
        their defaults. `ValueError` for a mask rule other than this version's."""
        rule = fingerprint.get("mask_rule", "footprint")
        if rule != "footprint":
            raise ValueError(f"mask rule {rule!r}")
        fields = {"invalid_classes": tuple, "mask_buffer_m": float, "blend": bool, "blend_power": float,
                  "percentiles": tuple, "blend_edge_margin_m": float, "blend_edge_ramp_m": float}
        return cls(**{name: kind(fingerprint[name]) for name, kind in fields.items() if name in fingerprint})


@dataclass
class Composite:
    """Per band: ``stats[band]`` (len(percentiles), h, w) float32 (NaN where nothing was valid)
    and ``counts[band]`` (h, w) uint16, the valid acquisitions summed over orbits."""

    stats: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)  # scene id -> reason
    n_acquisitions: int = 0
    scenes_read: tuple[str, ...] = ()  # ids of the scenes read (those given, less the skipped ones)
    seen: np.ndarray | None = None  # (h, w) uint16: acquisitions whose data cover the pixel, valid or masked
    medoid: dict[str, np.ndarray] = field(default_factory=dict)  # band -> (h, w) uint16 of the medoid observation
    medoid_doy: np.ndarray | None = None  # (h, w) uint16: its day of year, 0 where there is none


class CompositeFn(Protocol):
    """What composites a window: `composite_window`, or a stand-in in tests and benchmarks. The result says
    what was used (`Composite.scenes_read`, ``skipped``, ``n_acquisitions``), as rio-tiler's
    ``mosaic_reader`` returns the assets it used."""

    def __call__(self, scenes: Sequence[Scene], bands: Sequence[str], crs: str, transform: Affine,
                 shape: tuple[int, int], options: CompositeOptions,
                 footprints: Sequence[Scene] | None = None, indices: Sequence[Index] = (),
               medoid: bool = False) -> Composite: ...


@dataclass
class _Acquisition:
    orbit: int
    scenes: list[Scene]
    source: np.ndarray  # (h, w) int8: index in `scenes` of the scene that supplies each pixel, -1 none


# A reader gives the bands (asset keys) of one scene warped into the window: (n_bands, h, w) uint16.
Reader = Callable[[Scene, Sequence[str], Resampling], np.ndarray]
T = TypeVar("T")
I = TypeVar("I")

# Bands of one native resolution are read and warped together (one warp set-up per scene instead of
# one per band) while their layers fit this budget; beyond it, fewer at a time (down to one band).
BAND_GROUP_BYTES = 768 * 2**20


def band_groups(bands: Sequence[str], n_layers: int, shape: tuple[int, int],
                budget: int = BAND_GROUP_BYTES) -> list[list[str]]:
    """``bands`` in groups read together: same native resolution, layers within ``budget`` bytes."""
    per_band = max(1, n_layers * shape[0] * shape[1] * 2)
    size = max(1, budget // per_band)
    groups: list[list[str]] = []
    for resolution in sorted({BANDS_BY_NAME[b].native_resolution_m for b in bands}):
        same = [b for b in bands if BANDS_BY_NAME[b].native_resolution_m == resolution]
        groups.extend(same[i:i + size] for i in range(0, len(same), size))
    return groups


def _read_many(items: Sequence[I], read: Callable[[I], T], skipped: dict[str, str],
               pool: ThreadPoolExecutor | None, scene_of: Callable[[I], Scene] = lambda item: item) -> list[T | None]:
    """``read(item)`` for several scenes (in parallel threads: GDAL releases the GIL); None where unreadable.

    ``scene_of`` names the scene an item reads (the item itself by default)."""
    def read_one(item: I) -> T | str:
        try:
            return read(item)
        except SourceUnavailableError as exc:
            return str(exc)

    results = list(pool.map(read_one, items)) if pool and len(items) > 1 else [read_one(s) for s in items]
    out: list[T | None] = []
    for item, result in zip(items, results):
        if isinstance(result, str):
            scene = scene_of(item)
            skipped.setdefault(scene.id, result)
            logger.warning("skip scene %s: %s", scene.id, result)
            out.append(None)
        else:
            out.append(result)
    return out


def _select_sources(groups: Sequence[Sequence[Scene]], read_footprint: Callable[[Scene], FootprintMask],
                    shape: tuple[int, int], skipped: dict[str, str],
                    pool: ThreadPoolExecutor | None) -> tuple[list[np.ndarray], np.ndarray]:
    """For each acquisition, which of its scenes (MGRS tiles) supplies each pixel; and per pixel, how many
    acquisitions saw it (a scene's data cover it whole: a valid observation or a masked one).

    Every SCL pixel under a target pixel's footprint counts (`compositor.read.read_scl_footprint`).
    The first scene (in time and id order) whose data cover the whole pixel decides it: its value
    if no invalid SCL pixel (grown by the buffer) lies under it, no observation otherwise. A pixel
    only partly covered by a scene's data is left to the next scene of the acquisition, and is no
    observation when no scene covers it whole. A later scene is not read at all when the earlier
    ones already decided every pixel of the window.
    """
    sources = [np.full(shape, -1, dtype=np.int8) for _ in groups]
    decided = [np.zeros(shape, dtype=bool) for _ in groups]
    for rank in range(max((len(g) for g in groups), default=0)):
        todo = [(i, g[rank]) for i, g in enumerate(groups) if rank < len(g) and not decided[i].all()]
        masks = _read_many([scene for _, scene in todo], read_footprint, skipped, pool)
        for (i, _), mask in zip(todo, masks):
            if mask is None:
                continue
            new = ~decided[i] & mask.covered
            sources[i][new & mask.clear] = rank
            decided[i] |= new
    seen = np.sum(decided, axis=0, dtype=np.uint32) if decided else np.zeros(shape, dtype=np.uint32)
    return sources, seen.clip(0, 65535).astype(np.uint16)


def _band_layers(acquisitions: Sequence[_Acquisition], bands: Sequence[str], reader: Reader, shape: tuple[int, int],
                 skipped: dict[str, str], pool: ThreadPoolExecutor | None) -> dict[str, np.ndarray]:
    """Per band, (n_acquisitions, h, w) uint16 reflectance DN, offset removed, 0 where not valid.

    The ``bands`` of each scene are read in one call of ``reader`` (warped together), and what the
    scene supplies is stored as soon as it is read: the warped bands of all scenes are never held at
    once. (Scenes of one acquisition write disjoint pixels of its layer, so threads do not collide.)"""
    layers = {band: np.zeros((len(acquisitions), *shape), dtype=np.uint16) for band in bands}
    todo = [(i, rank, scene) for i, acq in enumerate(acquisitions) for rank, scene in enumerate(acq.scenes)
            if scene.id not in skipped and (acq.source == rank).any()]

    def read(job: tuple[int, int, Scene]) -> bool:
        i, rank, scene = job
        dn = reader(scene, bands, Resampling.average)
        chosen = acquisitions[i].source == rank
        for band, band_dn in zip(bands, dn):
            store_masked(layers[band][i], band_dn, chosen, scene.offset_dn)
        return True

    _read_many(todo, read, skipped, pool, scene_of=lambda job: job[2])
    return layers


def composite_window(scenes: Sequence[Scene], bands: Sequence[str], crs: str, transform: Affine,
                     shape: tuple[int, int], options: CompositeOptions = CompositeOptions(),
                     footprints: Sequence[Scene] | None = None, indices: Sequence[Index] = (),
                     medoid: bool = False) -> Composite:
    """Percentiles and counts of ``bands`` (and of the per-observation ``indices``; the ``medoid`` observation of
    all six bands) over the grid ``(crs, transform, shape)``.

    Scenes that cannot be read are skipped and reported in ``Composite.skipped``; a window with
    no scenes (or none readable) gives NaN statistics and count 0. ``footprints`` are the scenes
    whose footprints shape the blend weights: the readable scenes within
    `compositor.blend.context_distance_m` of the window (only their footprint and orbit are used;
    ``scenes`` are always among them, those that fail to read here are left out). Without it, only
    ``scenes``: then a footprint ending just outside the window is missed and windows may disagree.
    """
    def reader(scene: Scene, keys: Sequence[str], resampling: Resampling) -> np.ndarray:
        return read_warped_bands([scene.hrefs[k] for k in keys], crs, transform, shape, resampling,
                                 use_overviews=options.use_overviews)

    lookup = valid_scl_lookup(options.invalid_classes)

    def read_footprint(scene: Scene) -> FootprintMask:
        return read_scl_footprint(scene.hrefs["scl"], crs, transform, shape, lookup, options.mask_buffer_m,
                                  use_overviews=options.use_overviews)

    with ThreadPoolExecutor(options.read_threads) if options.read_threads > 1 else nullcontext() as pool:
        return _composite(scenes, bands, crs, transform, shape, options, reader, read_footprint, pool, footprints,
                          indices, medoid)


def _orbit_footprints(orbits: Sequence[int], scenes: Sequence[Scene], footprints: Sequence[Scene] | None,
                      skipped: Mapping[str, str]) -> dict[int, list]:
    """Footprints (EPSG:4326) per orbit of the scenes and footprint scenes, without those that failed."""
    by_id = {s.id: s for s in (*(footprints or ()), *scenes) if s.id not in skipped}
    return {o: [s.footprint for s in by_id.values() if s.relative_orbit == o] for o in orbits}


def _composite(scenes: Sequence[Scene], bands: Sequence[str], crs: str, transform: Affine, shape: tuple[int, int],
               options: CompositeOptions, reader: Reader, read_footprint: Callable[[Scene], FootprintMask],
               pool: ThreadPoolExecutor | None,
               footprints: Sequence[Scene] | None = None, indices: Sequence[Index] = (),
               medoid: bool = False) -> Composite:
    skipped: dict[str, str] = {}
    groups = deduplicate_acquisitions(scenes)
    sources, seen = _select_sources(groups, read_footprint, shape, skipped, pool)
    acquisitions = [_Acquisition(g[0].relative_orbit, list(g), src) for g, src in zip(groups, sources)]
    acquisitions = [a for a in acquisitions if (a.source >= 0).any()]
    k = len(options.percentiles)
    stats: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    orbits = sorted({a.orbit for a in acquisitions})
    weights: dict[frozenset[str], tuple[dict, dict]] = {}  # by the scenes failed so far: rarely more than one

    def weights_now() -> tuple[dict, dict]:
        key = frozenset(skipped)
        if key not in weights:
            weights[key] = window_weights(_orbit_footprints(orbits, scenes, footprints, skipped), crs, transform,
                                          shape, power=options.blend_power, margin_m=options.blend_edge_margin_m,
                                          ramp_m=options.blend_edge_ramp_m)
        return weights[key]

    names = [*bands, *(i.name for i in indices)]
    medoid_layers: dict[str, np.ndarray] = {}
    medoid_doy = np.zeros(shape, dtype=np.uint16)
    if not acquisitions:
        for name in names:
            stats[name] = np.full((k, *shape), np.nan, dtype=np.float32)
            counts[name] = np.zeros(shape, dtype=np.uint16)

    def reduce(layers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentiles and count of a stack of observations (uint16, 0: none): per orbit and blended."""
        if not options.blend or len(orbits) == 1:
            return percentiles_and_count(layers, options.percentiles)
        per_orbit = percentiles_by_orbit(layers, np.array([a.orbit for a in acquisitions]), options.percentiles)
        del layers
        tapered, untapered = weights_now()
        blended = blend_orbits({o: s for o, (s, _) in per_orbit.items()}, {o: c for o, (_, c) in per_orbit.items()},
                               tapered, untapered)
        count = np.sum([c for _, c in per_orbit.values()], axis=0, dtype=np.uint32).clip(0, 65535).astype(np.uint16)
        return blended, count

    # Bands an index needs are kept until its other band is read (they may be of another resolution group); the
    # medoid needs all six at once.
    needed = {b for i in indices for b in (i.a, i.b)} | (set(BAND_NAMES) if medoid else set())
    read = [*bands, *(b for b in BAND_NAMES if b in needed and b not in bands)]
    kept: dict[str, np.ndarray] = {}
    todo = list(indices)
    medoid_todo = medoid
    for group in band_groups(read, len(acquisitions), shape) if acquisitions else ():
        group_layers = _band_layers(acquisitions, group, reader, shape, skipped, pool)
        for band in group:
            if band in needed:
                kept[band] = group_layers.pop(band)
                if band in bands:
                    stats[band], counts[band] = reduce(kept[band])
            elif band in bands:  # passed on alone, so that reduce can free the stack before the blend
                stats[band], counts[band] = reduce(group_layers.pop(band))
        for index in [i for i in todo if i.a in kept and i.b in kept]:
            stats[index.name], counts[index.name] = reduce(index_layers(kept[index.a], kept[index.b]))
            todo.remove(index)
        if medoid_todo and all(b in kept for b in BAND_NAMES):
            medoid_layers, medoid_doy = _medoid(acquisitions, kept, shape)
            medoid_todo = False
        for band in [b for b in kept if not medoid_todo and not any(b in (i.a, i.b) for i in todo)]:
            del kept[band]
    return Composite(stats=stats, counts=counts, skipped=skipped, n_acquisitions=len(acquisitions),
                     scenes_read=tuple(s.id for s in scenes if s.id not in skipped), seen=seen,
                     medoid=medoid_layers or ({b: np.zeros(shape, np.uint16) for b in BAND_NAMES} if medoid else {}),
                     medoid_doy=medoid_doy if medoid else None)


def _medoid(acquisitions: Sequence[_Acquisition], layers: Mapping[str, np.ndarray],
            shape: tuple[int, int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The medoid observation of each pixel over all acquisitions (`compositor.medoid`): its six bands and its
    day of year (0 where no acquisition has every band)."""
    stack = np.stack([layers[b] for b in BAND_NAMES], axis=1)  # (n, 6, h, w)
    choice = medoid_choice(stack)
    del stack
    days = np.array([a.scenes[0].datetime.timetuple().tm_yday for a in acquisitions], dtype=np.uint16)
    doy = np.where(choice >= 0, days[np.clip(choice, 0, None)], 0).astype(np.uint16)
    return {b: take(layers[b], choice) for b in BAND_NAMES}, doy


def index_layers(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per observation ``(a - b) / (a + b)`` of two bands' stacks (uint16 DN, 0: none), rounded to 0.0001 and
    shifted by `INDEX_SHIFT` into 1..20001 as uint16 (0 where either band has no observation)."""
    out = np.zeros(a.shape, dtype=np.uint16)
    for i in range(a.shape[0]):  # one observation at a time: float temporaries of one layer only
        fa, fb = a[i].astype(np.float32), b[i].astype(np.float32)
        valid = (a[i] > 0) & (b[i] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            code = np.rint((fa - fb) / (fa + fb) * 10_000.0) + INDEX_SHIFT
        out[i][valid] = code[valid].astype(np.uint16)
    return out


def to_index(stat: np.ndarray) -> np.ndarray:
    """Index statistics (shifted, NaN for nothing valid) as int16 ``round(index * 10000)``, nodata -32768."""
    out = np.where(np.isnan(stat), INDEX_NODATA, np.clip(np.rint(stat - INDEX_SHIFT), -10_000, 10_000))
    return out.astype(np.int16)


def to_dn(stat: np.ndarray) -> np.ndarray:
    """Statistics (float, NaN for nothing valid) as uint16 reflectance DN with nodata 0."""
    out = np.where(np.isnan(stat), 0.0, np.clip(np.rint(stat), 1, 65535))
    return out.astype(np.uint16)
