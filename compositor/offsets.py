"""The +1000 DN offset of processing baseline 04.00: the one rule that decides it, and a data check.

Since processing baseline 04.00 (products from 2022-01-25 on) Sentinel-2 L2A DN carry
``BOA_ADD_OFFSET`` = -1000: ``reflectance = (DN - 1000) / 10000``. Some distributions remove it
(Earth Search ``sentinel-2-l2a`` says so with ``earthsearch:boa_offset_applied``), others keep it
and state it in STAC ``raster:bands`` (``offset`` -0.1 with ``scale`` 0.0001).

The rule (`item_offset`), first that applies:

1. ``earthsearch:boa_offset_applied`` where the item has it: true -> 0 DN; false -> the baseline's
   offset (1000 DN for baseline >= 04.00, by date when the baseline is unknown, else 0). On Earth
   Search ``sentinel-2-l2a`` every baseline-04.00+ item states ``raster:bands`` offset -0.1
   whether or not the offset was removed, so there the flag, not ``raster:bands``, tells the truth.
2. the ``raster:bands`` offset of the reflectance assets (``sentinel-2-c1-l2a``, other catalogs):
   STAC's ``value = DN * scale + offset``, so the DN to subtract are ``-offset / scale``.
3. the processing baseline: >= 04.00 -> 1000 DN, older -> 0.
4. the acquisition date: from 2022-01-25 -> 1000 DN, before -> 0.

The flag itself is wrong on some items (element84/earth-search#66 and #71,
cirrus-geo/cirrus-earth-search#33: flag false, data already shifted). `check_scene_offset` looks at
the data once per scene (SCL and swir22 of a cheap scene-wide read) and corrects a scene whose
pixels contradict its metadata; a scene where nothing can be told keeps its metadata.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from compositor.catalog import Scene

logger = logging.getLogger(__name__)

OFFSET_BASELINE = (4, 0)
OFFSET_START = dt.datetime(2022, 1, 25, tzinfo=dt.UTC)
BOA_ADD_OFFSET_DN = 1000
BOA_QUANTIFICATION = 10000  # DN per unit reflectance when raster:bands gives no scale

FLAG = "earthsearch:boa_offset_applied"
SOURCE_FLAG = FLAG
SOURCE_RASTER_BANDS = "raster:bands"
SOURCE_BASELINE = "processing baseline"
SOURCE_DATE = "acquisition date"
SOURCE_DATA_CHECK = "data check"

REFLECTANCE_KEYS = ("blue", "green", "red", "nir", "swir16", "swir22")


@dataclass(frozen=True)
class OffsetDecision:
    """DN to subtract from the reflectance bands (``offset_dn`` >= 0) and which rule decided it."""

    offset_dn: int
    source: str


def baseline_tuple(baseline: str) -> tuple[int, ...]:
    """``"04.00"`` as ``(4, 0)``; an unreadable baseline as ``(0,)``."""
    try:
        return tuple(int(p) for p in baseline.split("."))
    except ValueError:
        return (0,)


def baseline_offset(baseline: str | None, when: dt.datetime) -> OffsetDecision:
    """Rules 3 and 4: the offset a product of this baseline (or, unknown, of this date) carries."""
    if baseline:
        return OffsetDecision(BOA_ADD_OFFSET_DN if baseline_tuple(baseline) >= OFFSET_BASELINE else 0, SOURCE_BASELINE)
    return OffsetDecision(BOA_ADD_OFFSET_DN if when >= OFFSET_START else 0, SOURCE_DATE)


def may_carry_offset(baseline: str | None, when: dt.datetime) -> bool:
    """Whether the product can carry the 04.00 offset at all (older products never do)."""
    return baseline_offset(baseline, when).offset_dn > 0


def raster_bands_offset(assets: Mapping[str, Any], asset_keys: Mapping[str, Sequence[str]]) -> int | None:
    """Rule 2: DN to subtract stated by the reflectance assets' ``raster:bands`` (``-offset / scale``),
    or None when no reflectance asset states an offset (or a positive one, which is not a BOA offset)."""
    stated: dict[str, int] = {}
    for name in REFLECTANCE_KEYS:
        asset = next((assets[k] for k in asset_keys.get(name, (name,)) if k in assets), None)
        bands = asset.get("raster:bands") if isinstance(asset, Mapping) else None
        if not bands or not isinstance(bands, list) or not isinstance(bands[0], Mapping):
            continue
        offset, scale = bands[0].get("offset"), bands[0].get("scale")
        if not isinstance(offset, (int, float)) or isinstance(offset, bool):
            continue
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
            scale = 1.0 / BOA_QUANTIFICATION
        stated[name] = int(round(-float(offset) / float(scale)))
    if not stated:
        return None
    values = set(stated.values())
    if len(values) > 1:
        logger.warning("reflectance assets state different raster:bands offsets %s: using %s's", stated, next(iter(stated)))
    value = next(iter(stated.values()))
    if value < 0:
        logger.warning("raster:bands states a positive offset (%d DN to add): not a BOA offset, ignored", -value)
        return None
    return value


def item_offset(props: Mapping[str, Any], assets: Mapping[str, Any], when: dt.datetime,
                asset_keys: Mapping[str, Sequence[str]]) -> OffsetDecision:
    """The offset of one STAC item by the rule of this module (see the module docstring)."""
    baseline = props.get("s2:processing_baseline")
    baseline = str(baseline) if baseline is not None else None
    flag = props.get(FLAG)
    if isinstance(flag, bool):
        return OffsetDecision(0 if flag else baseline_offset(baseline, when).offset_dn, SOURCE_FLAG)
    stated = raster_bands_offset(assets, asset_keys)
    if stated is not None:
        return OffsetDecision(stated, SOURCE_RASTER_BANDS)
    return baseline_offset(baseline, when)


# --- the data check -------------------------------------------------------------------------------

CHECK_BAND = "swir22"  # darkest band over water, vegetation and snow; 20 m like SCL
CHECK_SIZE_PX = 256  # long side of the scene-wide read (GDAL serves it from an overview)
CLEAR_CLASSES = (2, 3, 4, 5, 6, 7, 11)  # every SCL class but no data, defective, clouds and cirrus
_CLEAR_TABLE = np.isin(np.arange(256), CLEAR_CLASSES)  # CLEAR_CLASSES as a look-up table of 8-bit SCL values
WATER_CLASS = 6
MARGIN_DN = 200  # a DN this far below the offset would be a reflectance below -0.02: not real
MIN_CLEAR_PX = 200  # fewer clear pixels in the read: nothing can be told
MIN_WATER_PX = 50
SHIFTED_FRACTION = 0.05  # clear pixels below offset - margin that prove the offset is not in the data
WATER_QUANTILE = 0.10  # even the darker water pixels above offset - margin: the offset is in the data


@dataclass(frozen=True)
class OffsetCheck:
    """A scene whose data contradicted its metadata: the offset it states and the one used."""

    scene: str
    item_offset_dn: int
    item_offset_source: str
    used_offset_dn: int
    reason: str

    def record(self) -> dict[str, object]:
        """As recorded in a block manifest's ``offset_corrections``."""
        return dataclasses.asdict(self)


def read_overview(href: str, size_px: int = CHECK_SIZE_PX, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Band 1 of ``href`` over its whole extent, at most ``size_px`` on the long side (nearest
    neighbour, from the overview GDAL picks), or at ``shape``. Raises `SourceUnavailableError`."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError

    from compositor.errors import SourceUnavailableError

    try:
        with rasterio.open(href) as src:
            if shape is None:
                factor = max(1.0, max(src.height, src.width) / size_px)
                shape = (max(1, math.ceil(src.height / factor)), max(1, math.ceil(src.width / factor)))
            return src.read(1, out_shape=shape, resampling=Resampling.nearest)
    except (RasterioError, OSError) as exc:
        raise SourceUnavailableError(f"cannot read {href}: {exc}") from None


def _interior(mask: np.ndarray) -> np.ndarray:
    """``mask`` without its edge pixels (4-neighbourhood): no pixel mixed with nodata or cloud."""
    out = mask.copy()
    out[1:, :] &= mask[:-1, :]
    out[:-1, :] &= mask[1:, :]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0, :] = out[-1, :] = False
    out[:, 0] = out[:, -1] = False
    return out


def _is_clear(scl: np.ndarray) -> np.ndarray:
    """``scl`` in `CLEAR_CLASSES`: a table look-up for 8-bit SCL (several times faster than ``np.isin``)."""
    return _CLEAR_TABLE[scl] if scl.dtype == np.uint8 else np.isin(scl, CLEAR_CLASSES)


def judge_offset(scl: np.ndarray, band: np.ndarray, item_offset_dn: int, may_carry: bool) -> tuple[int, str] | None:
    """The offset the pixels show, with the reason, when they contradict ``item_offset_dn``; else None.

    ``scl`` and ``band`` (swir22 DN as stored) are the same scene-wide grid. Only clear pixels inside
    clear areas count. Item says the offset is in the data (``item_offset_dn`` > 0): at least
    `SHIFTED_FRACTION` of the clear pixels below ``item_offset_dn - MARGIN_DN`` would be reflectances
    below -0.02, so the offset was already removed (0). Item says no offset although the product
    may carry one (``may_carry``): the darker tenth of at least `MIN_WATER_PX` water pixels at or
    above ``BOA_ADD_OFFSET_DN - MARGIN_DN`` (swir22 reflectance >= 0.08 over water otherwise), with
    fewer than 1 % of the clear pixels below it, means the offset is still there (1000). A scene
    without dark pixels (a desert) tells nothing either way: None.
    """
    clear = _interior(_is_clear(scl) & (band > 0))
    n_clear = int(clear.sum())
    if n_clear < MIN_CLEAR_PX:
        return None
    values = band[clear].astype(np.int32)
    if item_offset_dn > 0:
        limit = item_offset_dn - MARGIN_DN
        below = float((values < limit).mean())
        if below >= SHIFTED_FRACTION:
            return 0, (f"{below:.0%} of {n_clear} clear {CHECK_BAND} pixels are below {limit} DN (reflectance "
                       f"< -0.02 if the item's {item_offset_dn} DN offset were in the data): already removed")
        return None
    if not may_carry:
        return None
    water = clear & (scl == WATER_CLASS)
    n_water = int(water.sum())
    if n_water < MIN_WATER_PX:
        return None
    limit = BOA_ADD_OFFSET_DN - MARGIN_DN
    low = float(np.quantile(band[water].astype(np.float64), WATER_QUANTILE))
    below = float((values < limit).mean())
    if low >= limit and below < 0.01:
        return BOA_ADD_OFFSET_DN, (f"the darker tenth of {n_water} clear water pixels is at {low:.0f} {CHECK_BAND} DN or "
                                   f"more (reflectance >= {low / 1e4:.2f} without an offset, water is darker): "
                                   f"the {BOA_ADD_OFFSET_DN} DN offset is still in the data")
    return None


def check_scene_offset(scene: Scene) -> OffsetCheck | None:
    """The data check of one scene (reads its SCL and swir22 scene-wide); None when the data agree with
    the metadata or tell nothing. Raises `SourceUnavailableError` when the files cannot be read."""
    scl = read_overview(scene.hrefs["scl"])
    band = read_overview(scene.hrefs[CHECK_BAND], shape=scl.shape)
    verdict = judge_offset(scl, band, scene.offset_dn, may_carry_offset(scene.processing_baseline, scene.datetime))
    if verdict is None:
        return None
    used, reason = verdict
    return OffsetCheck(scene.id, scene.offset_dn, scene.offset_source, used, reason)


class _Cache:
    """Verdicts by scene (id, files, stated offset), per process, bounded; failures are not kept."""

    def __init__(self, size: int = 20_000) -> None:
        self._items: OrderedDict[tuple, OffsetCheck | None] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: tuple) -> tuple[bool, OffsetCheck | None]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key]
            return False, None

    def put(self, key: tuple, value: OffsetCheck | None) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _Cache()


def clear_offset_cache() -> None:
    _CACHE.clear()


def _key(scene: Scene) -> tuple:
    return (scene.id, scene.hrefs["scl"], scene.hrefs[CHECK_BAND], scene.offset_dn, scene.processing_baseline)


def checked_scene(scene: Scene) -> tuple[Scene, OffsetCheck | None]:
    """The scene with the offset its data show (`check_scene_offset`, cached per process) and the
    correction made, if any. A scene whose files cannot be read is returned unchanged (the composite
    then records it as unreadable) and checked again next time."""
    from compositor.errors import SourceUnavailableError

    if scene.offset_source == SOURCE_DATA_CHECK or not {"scl", CHECK_BAND} <= set(scene.hrefs):
        return scene, None
    found, check = _CACHE.get(_key(scene))
    if not found:
        try:
            check = check_scene_offset(scene)
        except SourceUnavailableError as exc:
            logger.info("offset check of %s not possible: %s", scene.id, exc)
            return scene, None
        _CACHE.put(_key(scene), check)
        if check is not None:
            logger.warning("scene %s: item offset %d DN (%s) contradicted by its data, using %d DN: %s", scene.id,
                           check.item_offset_dn, check.item_offset_source, check.used_offset_dn, check.reason)
    if check is None:
        return scene, None
    return dataclasses.replace(scene, offset_dn=check.used_offset_dn, offset_source=SOURCE_DATA_CHECK), check


def check_offsets(scenes: Sequence[Scene], threads: int = 4) -> tuple[list[Scene], list[OffsetCheck]]:
    """`checked_scene` of every scene (``threads`` read at once); the scenes in order and the corrections."""
    if threads > 1 and len(scenes) > 1:
        with ThreadPoolExecutor(min(threads, len(scenes))) as pool:
            results = list(pool.map(checked_scene, scenes))
    else:
        results = [checked_scene(s) for s in scenes]
    return [s for s, _ in results], [c for _, c in results if c is not None]
