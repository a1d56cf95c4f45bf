"""Reading scene assets warped into a target grid (a block, a strip of it, or a map tile)."""

from __future__ import annotations

import functools
import logging
import os
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import rasterio
from affine import Affine
from numba import njit
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.transformer import TransformerGroup
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.transform import array_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window, from_bounds

from compositor.errors import SourceUnavailableError
from compositor.grid import project_bounds
from compositor.mask import grow_invalid
from compositor.vrt import VRT_DATA_TYPES, stack_vrt, warped_vrt

logger = logging.getLogger(__name__)

# GDAL options for reading COGs over HTTP: no directory listings, bounded time, retries.
GDAL_ENV: dict[str, str | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.vrt",  # COGs and the season VRTs; never sidecars
    "GDAL_HTTP_TIMEOUT": 30,
    "GDAL_HTTP_CONNECTTIMEOUT": 10,
    "GDAL_HTTP_MAX_RETRY": 3,
    "GDAL_HTTP_RETRY_DELAY": 1,
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    "AWS_NO_SIGN_REQUEST": "YES",
}


def use_gdal_env() -> None:
    """Make `GDAL_ENV` this process's defaults (environment variables; a value the user set stays).

    ``rasterio.Env`` sets GDAL configuration options process-wide and removes them when it exits: in
    a server or a build with several threads, one thread leaving its ``Env`` took the options away
    from the read threads of the others, which then listed directories and probed sidecar files
    over HTTP (while holding Python's lock, in rasterio's ``transform``): a 50 ms link served one
    request at a time. GDAL falls back to the environment, which no ``Env`` exit removes."""
    for key, value in GDAL_ENV.items():
        if not key.startswith("AWS_"):  # credentials stay per read: an object store's own must win
            os.environ.setdefault(key, str(value))
    for key, path in data_directories().items():
        os.environ.setdefault(key, path)
    os.environ.setdefault("GDAL_MAX_DATASET_POOL_SIZE", str(dataset_pool_size()))


def dataset_pool_size() -> int:
    """How many files GDAL keeps open for the VRTs that read them (its default: 100).

    A window reads each of its scenes' bands and SCL through VRTs (`compositor.vrt.stack_vrt`), whose
    files GDAL opens from a pool of open files; the demo's blocks have up to 213 scenes, three or four
    files each, so with 100 every read opened its files again. A quarter of the process's limit of open
    files, between 100 and 1000, leaves the rest to sockets and outputs."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not a POSIX system
        return 100
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(100, min(1000, soft // 4))


@functools.lru_cache(maxsize=1)
def data_directories() -> dict[str, str]:
    """Where GDAL's and PROJ's data files are (``GDAL_DATA``, ``PROJ_DATA``), as rasterio finds them.

    rasterio opens every dataset read outside a ``rasterio.Env`` in a new default environment, which
    looks for these directories on the file system each time they are not in the environment (a
    tenth of an on-the-fly chunk's CPU in file probes). Found once and made the process's defaults,
    they are what rasterio would have found (its own GDAL's data, in a wheel)."""
    from rasterio.env import GDALDataFinder, PROJDataFinder

    found = {}
    for key, finder in (("GDAL_DATA", GDALDataFinder), ("PROJ_DATA", PROJDataFinder)):
        try:
            path = finder().search()
        except Exception:  # noqa: BLE001 - nothing found: rasterio keeps looking by itself
            path = None
        if path and os.path.isdir(path):
            found[key] = path
    return found


def computed_once(maxsize: int):
    """`functools.lru_cache` for work that threads ask for at the same moment: a key is computed by ONE
    thread while the others asking for it wait for its result (``lru_cache`` lets each of them compute
    it). The read threads of a window ask for the same footprint boxes at once (the acquisitions of one
    MGRS tile share them), and the first tiles of a server for the same coordinate checks. A failure is
    not kept: the next caller computes again."""
    def decorate(fn):
        kept: OrderedDict = OrderedDict()
        running: dict = {}
        lock = threading.Lock()

        @functools.wraps(fn)
        def wrapper(*args):
            while True:
                with lock:
                    if args in kept:
                        kept.move_to_end(args)
                        return kept[args]
                    done = running.get(args)
                    if done is None:
                        running[args] = done = threading.Event()
                        break
                done.wait()  # another thread computes it; if it failed, try again
            try:
                value = fn(*args)
                with lock:
                    kept[args] = value
                    while len(kept) > maxsize:
                        kept.popitem(last=False)
                return value
            finally:
                with lock:
                    running.pop(args, None)
                done.set()

        wrapper.cache_clear = lambda: kept.clear()  # type: ignore[attr-defined]
        return wrapper
    return decorate


def _pick_overview(src: rasterio.io.DatasetReader, dst_crs: str, dst_transform: Affine) -> int | None:
    """Index of the coarsest overview still at least as fine as the target pixel, or None."""
    return _overview_for(tuple(src.overviews(1)), src.res[0], src.crs.to_wkt(), str(dst_crs), dst_transform)


@functools.lru_cache(maxsize=1024)
def _overview_for(factors: tuple[int, ...], res: float, src_crs: str, dst_crs: str,
                  dst_transform: Affine) -> int | None:
    """`_pick_overview` from a file's header: kept per target grid and source CRS (the scenes of a window
    share one or two CRSs, and each GDAL transformation costs a coordinate operation set-up)."""
    if not factors:
        return None
    # Target pixel size expressed in source units, from the size of one target pixel's diagonal.
    x0, y0 = dst_transform.c, dst_transform.f
    x1, y1 = dst_transform.c + dst_transform.a + dst_transform.b, dst_transform.f + dst_transform.d + dst_transform.e
    xs, ys = rasterio.warp.transform(dst_crs, src_crs, [x0, x1], [y0, y1])
    target = math.hypot(xs[1] - xs[0], ys[1] - ys[0]) / math.sqrt(2)
    level = None
    for i, factor in enumerate(factors):
        if res * factor <= target * 1.0001:
            level = i
    return level


class _FileGrid(NamedTuple):
    """What the header of a file (or of one of its overviews) says about its pixels."""

    crs_wkt: str
    transform: Affine
    width: int
    height: int
    dtype: str
    overviews: tuple[int, ...]  # decimation factors of band 1's overviews
    res: float  # pixel width in CRS units

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel width and height in CRS units, as rasterio's ``res``."""
        a, b, _, d, e, _ = tuple(self.transform)[:6]
        return (a, -e) if b == d == 0 else (math.hypot(a, d), math.hypot(b, e))

    @property
    def pixel_grid(self) -> tuple:
        """What files must share to be stacked: CRS, transform, size and data type."""
        return self.crs_wkt, self.transform, self.width, self.height, self.dtype


@functools.lru_cache(maxsize=4096)
def _file_grid(href: str, overview_level: int | None) -> _FileGrid:
    """The grid of a file, or of one of its overviews: read once per file (scene files do not
    change), then known for every strip and tile. A failed read is not kept."""
    with rasterio.open(href, **({} if overview_level is None else {"overview_level": overview_level})) as src:
        return _FileGrid(src.crs.to_wkt(), src.transform, src.width, src.height, src.dtypes[0],
                         tuple(src.overviews(1)), src.res[0])


@dataclass(frozen=True)
class FootprintMask:
    """What one scene's SCL says about each pixel of a target grid, judged over the pixel's footprint.

    ``covered``: (h, w) bool, the scene has data (SCL != 0) under the whole target pixel.
    ``clear``: (h, w) bool, covered and no invalid SCL pixel (after growing them by the buffer) under it.
    """

    covered: np.ndarray
    clear: np.ndarray


# How far (in SCL pixels) a target pixel's corner may reach into an SCL pixel without that pixel
# counting: it absorbs floating-point noise where target and SCL pixel edges coincide.
FOOTPRINT_EDGE_EPS_PX = 1e-6


def read_scl_footprint(href: str, dst_crs: str, dst_transform: Affine, dst_shape: tuple[int, int],
                       valid_lookup: np.ndarray, buffer_m: float, *, use_overviews: bool = False) -> FootprintMask:
    """Judge every pixel of the grid ``(dst_crs, dst_transform, dst_shape)`` by ALL SCL pixels under it.

    The SCL is read in its own CRS at its own resolution (or, with ``use_overviews``, at the coarsest
    overview still finer than the target pixel, as the bands are) over the grid's footprint plus
    ``buffer_m``. Invalid classes (``valid_lookup[scl]`` False, SCL 0 aside) are grown by a disk of
    ``buffer_m`` metres (SCL pixel centres within ``buffer_m`` of an invalid pixel's centre); SCL 0
    (no data) is not grown. A target pixel is then not covered / not clear when a no-data / invalid
    SCL pixel overlaps its footprint (the source-aligned box of its exactly transformed corners, see
    `_footprint_boxes`), so a 20 m SCL pixel that touches only the corner of a 30 m target pixel
    still makes it invalid. Outside the raster counts as no data. Raises `SourceUnavailableError` naming the file when it cannot be read.
    """
    try:
        level = None
        if use_overviews:
            full = _file_grid(href, None)
            level = _overview_for(full.overviews, full.res, full.crs_wkt, str(dst_crs), dst_transform)
        grid = _file_grid(href, level)  # the header, read once per file: the file is opened once here
        return _judge_footprints(href, level, grid, dst_crs, dst_transform, dst_shape, valid_lookup, buffer_m)
    except (RasterioError, OSError) as exc:
        raise SourceUnavailableError(f"cannot read {href}: {exc}") from None


def _judge_footprints(href: str, level: int | None, grid: _FileGrid, dst_crs: str, dst_transform: Affine,
                      dst_shape: tuple[int, int], valid_lookup: np.ndarray, buffer_m: float) -> FootprintMask:
    height, width = dst_shape
    nothing = FootprintMask(np.zeros(dst_shape, dtype=bool), np.zeros(dst_shape, dtype=bool))
    res_x, res_y = grid.resolution
    margin = buffer_m + 2 * max(res_x, res_y)
    projected = project_bounds(str(dst_crs), grid.crs_wkt, array_bounds(height, width, dst_transform))
    if projected is None:  # the grid has no place in the scene's CRS
        return nothing
    left, bottom, right, top = projected
    area = from_bounds(left - margin, bottom - margin, right + margin, top + margin, grid.transform)
    col0, row0 = math.floor(area.col_off), math.floor(area.row_off)
    col1, row1 = math.ceil(area.col_off + area.width), math.ceil(area.row_off + area.height)
    inner = (max(col0, 0), max(row0, 0), min(col1, grid.width), min(row1, grid.height))
    if inner[2] <= inner[0] or inner[3] <= inner[1]:
        return nothing  # the scene's raster misses the grid: not even opened
    scl = np.zeros((row1 - row0, col1 - col0), dtype=np.uint8)  # outside the raster: no data
    scl[inner[1] - row0:inner[3] - row0, inner[0] - col0:inner[2] - col0] = _read_window(
        href, level, grid, Window(inner[0], inner[1], inner[2] - inner[0], inner[3] - inner[1]))
    nodata = scl == 0
    if nodata.all():
        return nothing
    invalid = grow_invalid(~valid_lookup[scl] & ~nodata, buffer_m, res_x, res_y) | nodata
    has_nodata, has_cloud = bool(nodata.any()), bool((invalid & ~nodata).any())
    if not has_nodata and not has_cloud:  # the window covers every target pixel: all covered and clear
        everything = np.ones(dst_shape, dtype=bool)
        return FootprintMask(everything, everything)
    boxes = _footprint_boxes(str(dst_crs), tuple(dst_transform)[:6], tuple(dst_shape), grid.crs_wkt,
                             tuple(~(grid.transform @ Affine.translation(col0, row0)))[:6], scl.shape)
    covered, clear = _judge_boxes(nodata, invalid, *boxes)
    return FootprintMask(covered, clear)


def _read_window(href: str, level: int | None, grid: _FileGrid, window: Window) -> np.ndarray:
    """Band 1 of ``href`` (or of its overview ``level``, whose header is ``grid``) in ``window``.

    Through a one-file VRT with the header's grid (`stack_vrt`): GDAL opens the file without building its
    CRS, or takes it from its pool of open files when another read opened it (half the cost of opening
    it). A data type a VRT cannot name is read from the file directly."""
    if grid.dtype in VRT_DATA_TYPES:
        source = stack_vrt([href], grid.crs_wkt, grid.transform, (grid.height, grid.width), nodata=None,
                           dtype=grid.dtype, overview_level=level)
        with rasterio.open(source) as src:
            return src.read(1, window=window)
    with rasterio.open(href, **({} if level is None else {"overview_level": level})) as src:
        return src.read(1, window=window)


@computed_once(maxsize=8)
def _footprint_boxes(dst_crs: str, dst_transform: tuple[float, ...], dst_shape: tuple[int, int], src_crs: str,
                     to_src_px: tuple[float, ...], src_shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Each target pixel's footprint as a box of SCL pixels ``[row0, row1) x [col0, col1)``.

    The four corners of each target pixel are transformed exactly into the SCL's pixel coordinates
    (``to_src_px`` maps SCL CRS coordinates to the window's pixels); the box holds the SCL pixels
    that the corners' source-aligned bounding box overlaps. A pixel's box depends on nothing but its
    corners, so blocks and tiles of any size judge it alike (GDAL's ``average`` warp does not: its
    footprints depend on the chunk it warps, which made seams between blocks of other sizes). On a
    grid rotated against the SCL's the box holds slightly more than the footprint: up to side x
    sin(rotation) beyond it (0.8 m for a 30 m pixel at 1.5 degrees). Boxes are clipped to the window.

    Kept for the last grids and windows (read-only arrays): the acquisitions of one MGRS tile share
    the SCL grid, so their boxes are the same; a 512 x 2048 strip's boxes take 16 MB.
    """
    xs, ys = _corners_in(dst_crs, dst_transform, dst_shape, src_crs)
    px, py = Affine(*to_src_px) @ (xs, ys)
    src_h, src_w = src_shape

    def edges(p: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        corners = np.stack([p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]])
        low = np.floor(corners.min(axis=0) + FOOTPRINT_EDGE_EPS_PX)
        high = np.ceil(corners.max(axis=0) - FOOTPRINT_EDGE_EPS_PX)
        return np.clip(low, 0, size).astype(np.int32), np.clip(high, 0, size).astype(np.int32)

    col0, col1 = edges(px, src_w)
    row0, row1 = edges(py, src_h)
    for a in (row0, row1, col0, col1):
        a.flags.writeable = False
    return row0, row1, col0, col1


@computed_once(maxsize=4)
def _corners_in(dst_crs: str, dst_transform: tuple[float, ...], dst_shape: tuple[int, int],
                src_crs: str) -> tuple[np.ndarray, np.ndarray]:
    """The (h + 1, w + 1) pixel corners of a grid, in ``src_crs`` coordinates (read-only arrays).

    Kept for the few last grids: the scenes of a window share one or two CRSs, and transforming a
    strip's million corners costs about a second."""
    height, width = dst_shape
    rows, cols = np.mgrid[0:height + 1, 0:width + 1].astype(np.float64)
    xs, ys = Affine(*dst_transform) @ (cols, rows)
    if CRS.from_user_input(dst_crs) != CRS.from_user_input(src_crs):
        tx, ty = warp_transform(dst_crs, src_crs, xs.ravel(), ys.ravel())
        xs, ys = np.asarray(tx).reshape(rows.shape), np.asarray(ty).reshape(rows.shape)
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


@njit(cache=True, nogil=True)
def _judge_boxes(nodata, invalid, row0, row1, col0, col1):  # pragma: no cover - compiled
    """``(covered, clear)``: no ``nodata`` pixel in a target pixel's box / covered and no ``invalid`` one.

    Both summed-area tables are built in one pass and each box is looked up once, without Python's
    lock (the numpy version held it for its fancy indexing while 4-16 read threads judged scenes:
    two thirds of an on-the-fly chunk's footprint judging)."""
    h, w = nodata.shape
    nodata_sum = np.zeros((h + 1, w + 1), dtype=np.int32)
    invalid_sum = np.zeros((h + 1, w + 1), dtype=np.int32)
    for y in range(h):
        row_nodata = 0
        row_invalid = 0
        for x in range(w):
            row_nodata += nodata[y, x]
            row_invalid += invalid[y, x]
            nodata_sum[y + 1, x + 1] = nodata_sum[y, x + 1] + row_nodata
            invalid_sum[y + 1, x + 1] = invalid_sum[y, x + 1] + row_invalid
    out_h, out_w = row0.shape
    covered = np.empty((out_h, out_w), dtype=np.bool_)
    clear = np.empty((out_h, out_w), dtype=np.bool_)
    for i in range(out_h):
        for j in range(out_w):
            r0, r1, c0, c1 = row0[i, j], row1[i, j], col0[i, j], col1[i, j]
            missing = nodata_sum[r1, c1] - nodata_sum[r0, c1] - nodata_sum[r1, c0] + nodata_sum[r0, c0]
            covered[i, j] = missing == 0
            bad = invalid_sum[r1, c1] - invalid_sum[r0, c1] - invalid_sum[r1, c0] + invalid_sum[r0, c0]
            clear[i, j] = missing == 0 and bad == 0
    return covered, clear


def read_warped(href: str, dst_crs: str, dst_transform: Affine, dst_shape: tuple[int, int],
                resampling: Resampling, *, use_overviews: bool = False, window: Window | None = None) -> np.ndarray:
    """Band 1 of ``href`` resampled into the grid ``(dst_crs, dst_transform, dst_shape)``.

    Nodata (0) stays 0 and is ignored by averaging. With ``use_overviews`` the coarsest
    overview that is still finer than the target pixel is read (for map tiles); batch builds
    read full resolution so that 10 m pixels are averaged exactly. ``window`` reads part of the
    grid. Raises `SourceUnavailableError` naming the file when it cannot be read.
    """
    height, width = dst_shape
    try:
        with rasterio.open(href) as src:
            level = _pick_overview(src, dst_crs, dst_transform) if use_overviews else None
            if level is None:  # full resolution: warp from the dataset already open
                return _warp(src, dst_crs, dst_transform, width, height, resampling, window)
        with rasterio.open(href, overview_level=level) as src:
            return _warp(src, dst_crs, dst_transform, width, height, resampling, window)
    except (RasterioError, OSError) as exc:
        raise SourceUnavailableError(f"cannot read {href}: {exc}") from None


def _warp(src: rasterio.io.DatasetReader, dst_crs: str, dst_transform: Affine, width: int, height: int,
          resampling: Resampling, window: Window | None, indexes: int | None = 1) -> np.ndarray:
    # A 0.01 px transformer tolerance (GDAL's default is 0.125) keeps nearest-neighbour picks of
    # SCL independent of the window, so blocks of any size and tiles agree on every pixel.
    with WarpedVRT(src, crs=dst_crs, transform=dst_transform, width=width, height=height, resampling=resampling,
                   src_nodata=0, nodata=0, tolerance=0.01) as vrt:
        return vrt.read(indexes, window=window)


def read_warped_bands(hrefs: Sequence[str], dst_crs: str, dst_transform: Affine, dst_shape: tuple[int, int],
                      resampling: Resampling, *, use_overviews: bool = False) -> np.ndarray:
    """(len(hrefs), h, w): single-band files on one pixel grid (a scene's 10 m or 20 m bands) warped together.

    One file too goes this way (a one-band tile, a group of one), so that it gets the same warp set-up.

    The files are stacked in a VRT (`stack_vrt`) and warped in one pass: one warp set-up for all of
    them instead of one per band, given its coordinate operation (`coordinate_operation`) so that no
    PROJ database search happens per warp. Each band's pixels are those `read_warped` gives (the same
    warp, chunk for chunk; tested); the overview level is picked on the first file, as for one band.
    Files on different grids, an unreadable stack or a resampling the warped VRT does not name are
    read file by file, so that a `SourceUnavailableError` names the file that failed.
    """
    height, width = dst_shape
    try:
        level = None
        if use_overviews:
            first = _file_grid(hrefs[0], None)
            level = _overview_for(first.overviews, first.res, first.crs_wkt, dst_crs, dst_transform)
        grids = {_file_grid(href, level).pixel_grid for href in hrefs}  # headers, read once per file
        if len(grids) == 1:  # one pixel grid (the Sentinel-2 layout): stack and warp once
            crs_wkt, transform, w, h, dtype = grids.pop()
            stack = stack_vrt(hrefs, crs_wkt, transform, (h, w), dtype=dtype, overview_level=level)
            pipeline = coordinate_operation(crs_wkt, str(dst_crs))
            if pipeline is not None:
                warped = warped_vrt(stack, crs_wkt, transform, len(hrefs), dtype, dst_crs, dst_transform,
                                    (height, width), resampling, pipeline)
                with rasterio.open(warped) as vrt:
                    return vrt.read()
            with rasterio.open(stack) as src:
                return _warp(src, dst_crs, dst_transform, width, height, resampling, None, indexes=None)
    except (RasterioError, OSError, KeyError):
        pass
    # Files on different grids, or one that cannot be read: each alone (the error names the file).
    return np.stack([read_warped(h, dst_crs, dst_transform, dst_shape, resampling, use_overviews=use_overviews)
                     for h in hrefs])


@computed_once(maxsize=64)
def coordinate_operation(src_crs: str, dst_crs: str) -> str | None:
    """The PROJ pipeline from ``src_crs`` to ``dst_crs`` (in their axis orders), when it is unambiguous.

    A warp set up by GDAL searches PROJ's database for the operations between its CRSs; GDAL caches
    one per CRS pair, so warps running at once in several threads each search again (about 20 ms,
    a sixth of a build with 4 read threads). Given the pipeline, GDAL only parses it. Every candidate
    operation PROJ knows must give the same coordinates on a lattice over the source CRS's area of
    use (WGS 84 UTM to ETRS89 LAEA: the null ETRS89 shift and its ballpark twin); otherwise GDAL's
    own choice stands (None), since it may depend on the area being warped.
    """
    try:
        src, dst = _by_epsg_code(src_crs), _by_epsg_code(dst_crs)
        group = TransformerGroup(src, dst)
        area = ProjCRS.from_user_input(src).area_of_use
        if not group.transformers or group.unavailable_operations or area is None:
            return None  # no operation, or a better one needs a grid this installation lacks
        lons, lats = np.meshgrid(np.linspace(area.west, area.east, 7)[1:-1], np.linspace(area.south, area.north, 7)[1:-1])
        to_src = Transformer.from_crs("EPSG:4326", src, always_xy=True)
        xs, ys = to_src.transform(lons.ravel(), lats.ravel())
        # Candidates work in the CRSs' own axis order: give them the source's first and second axes.
        first, second = (ys, xs) if _northing_first(src) else (xs, ys)
        results = [np.column_stack(candidate.transform(first, second, errcheck=False))
                   for candidate in group.transformers]
        reference = results[0]
        if not np.isfinite(reference).all():
            return None
        if any(not np.allclose(r, reference, rtol=0, atol=1e-6) for r in results[1:]):
            return None
        definition = group.transformers[0].definition
    except Exception:  # noqa: BLE001 - anything PROJ cannot answer: GDAL's own choice
        return None
    return " ".join("+" + word for word in definition.split())


@computed_once(maxsize=64)
def search_free_crs_pair(src_crs: str, dst_crs: str) -> tuple[CRS, CRS] | None:
    """The two CRSs as bare projections (PROJ strings of the projection and its ellipsoid, no datum), when
    they map points exactly as the EPSG definitions do; else None (use the CRSs as they are).

    GDAL builds a coordinate transformation for every warped read, and again for each overview of a
    warped VRT it reads; it caches one per CRS pair and hands it to one user at a time, so the others
    search PROJ's database (sqlite) each time: 40 ms of a 60 ms tile cut from a built COG. Between
    datum-less projections there is nothing to search. Used only where every candidate operation
    between the CRSs is the same (`coordinate_operation`: ETRS89 and WGS 84 with their null shift,
    one datum on both sides) and the bare pair gives the same coordinates within 1e-6 m on a lattice
    over the source's area of use; tiles are then the same pixels (tested)."""
    if coordinate_operation(src_crs, dst_crs) is None:
        return None
    try:
        src_crs, dst_crs = _by_epsg_code(src_crs), _by_epsg_code(dst_crs)
        pair = tuple(CRS.from_proj4(_bare_projection(c)) for c in (src_crs, dst_crs))
        area = ProjCRS.from_user_input(src_crs).area_of_use
        if area is None:
            return None
        lons, lats = np.meshgrid(np.linspace(area.west, area.east, 9), np.linspace(area.south, area.north, 9))
        xs, ys = Transformer.from_crs("EPSG:4326", src_crs, always_xy=True).transform(lons.ravel(), lats.ravel())
        exact = np.column_stack(Transformer.from_crs(src_crs, dst_crs, always_xy=True).transform(xs, ys))
        bare = np.column_stack(Transformer.from_crs(pair[0].to_proj4(), pair[1].to_proj4(), always_xy=True)
                               .transform(xs, ys))
        finite = np.isfinite(exact).all(axis=1)
        if finite.sum() < 9 or not np.allclose(bare[finite], exact[finite], rtol=0, atol=1e-6):
            return None
        return pair
    except Exception:  # noqa: BLE001 - anything PROJ cannot answer: the CRSs as they are
        return None


def _bare_projection(crs: str) -> str:
    """A CRS's projection as a PROJ string with its ellipsoid's axes and no datum (no shift to search)."""
    parsed = ProjCRS.from_user_input(crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "you will likely lose important projection information": the datum
        words = parsed.to_proj4().split()
    kept = [w for w in words if not w.startswith(("+towgs84", "+nadgrids", "+type", "+datum", "+no_defs"))]
    if not any(w.startswith(("+ellps", "+a=", "+b=", "+rf=", "+f=", "+R=")) for w in kept):
        # The figure came with the datum (+datum=WGS84): name its axes. (Web Mercator keeps its sphere.)
        ellipsoid = parsed.ellipsoid
        kept.append(f"+a={ellipsoid.semi_major_metre!r} +b={ellipsoid.semi_minor_metre!r}"
                    if not ellipsoid.inverse_flattening else
                    f"+a={ellipsoid.semi_major_metre!r} +rf={ellipsoid.inverse_flattening!r}")
    return " ".join([*kept, "+no_defs"])


def _by_epsg_code(crs: str) -> str:
    """``EPSG:<code>`` for a CRS that has one, else the CRS as given: GDAL looks operations up by the
    CRSs' codes, and a WKT1 has no area of use."""
    code = ProjCRS.from_user_input(crs).to_epsg()
    return f"EPSG:{code}" if code else crs


def _northing_first(crs: str) -> bool:
    axes = ProjCRS.from_user_input(crs).axis_info
    return len(axes) >= 2 and axes[0].direction.lower() in ("north", "south")


