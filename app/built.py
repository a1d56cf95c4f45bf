"""Reading built blocks into any target grid (a map tile, a crop, one pixel).

Which pixels are built is decided by geometry, not by data: the outlines of the built blocks are
rasterized into the target grid (pixel centres), so a built pixel with no observation stays empty
instead of being filled from the scenes. Block files are read with rio-tiler (overviews chosen by
GDAL for the target resolution, as a plain TiTiler tile of that COG would), several rasters of a
block at once through a stacked VRT; at coarse resolutions the season's overview rasters (16x the
pixel size) are read instead of many blocks.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Sequence
from pathlib import Path, PurePath

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from rasterio.windows import Window
from rio_tiler.io import Reader

from app.registry import SeasonState
from compositor.describe import storage
from compositor.cog import overview_count
from compositor.grid import Block
from compositor.index import BuiltBlock
from compositor.errors import SourceUnavailableError
from compositor.read import search_free_crs_pair
from compositor.vrt import stack_vrt

OVERVIEW_USE_RATIO = 0.75  # read the season overview when target pixels are at least this fraction of its size


def covering_blocks(state: SeasonState, crs: CRS, transform: Affine, shape: tuple[int, int],
                    bands: Sequence[str]) -> tuple[list[BuiltBlock], np.ndarray, float]:
    """The built blocks (holding ``bands``) under a target grid, its label raster and the grid pixel size.

    Labels are ``(h, w)`` int32: 0 where no such block covers the pixel centre, else 1 + the index
    in the returned list. The pixel size is the target pixel in grid CRS units (for overview choice).
    """
    projected = state.built.projected(crs)
    if projected is None:
        return [], np.zeros(shape, dtype=np.int32), 0.0
    bounds = array_bounds(shape[0], shape[1], transform)
    wanted = set(bands)
    hits = [i for i in projected.query(bounds) if wanted <= state.built.blocks[i].bands]
    if not hits:
        return [], np.zeros(shape, dtype=np.int32), 0.0
    shapes = [(projected.outlines[i], n) for n, i in enumerate(hits, start=1)]
    labels = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32", all_touched=False)
    scale = float(np.mean([projected.scales[i] for i in hits])) or 1.0
    pixel_size_grid = max(abs(transform.a), abs(transform.e)) / scale
    return [state.built.blocks[i] for i in hits], labels, pixel_size_grid


@functools.lru_cache(maxsize=256)
def _grid_of(path: PurePath, version: int) -> tuple[str, Affine, tuple[int, int]]:
    """The grid of the raster at ``path`` (``version``: the season's generation, new when files change)."""
    with rasterio.open(path) as src:
        return src.crs.to_string(), src.transform, (src.height, src.width)


def cut(src: Reader, crs: CRS, transform: Affine, shape: tuple[int, int], resampling: str,
        reproject: str) -> np.ma.MaskedArray:
    """The target grid cut from a rio-tiler reader: the one call that reads built COGs, on-the-fly chunks
    and the level probe alike (their tiles agree because it is the same call)."""
    west, south, east, north = array_bounds(shape[0], shape[1], transform)
    bare = search_free_crs_pair(src.crs.to_wkt(), crs.to_wkt()) if src.crs != crs else None
    if bare is None:
        return src.part((west, south, east, north), dst_crs=crs, bounds_crs=crs, height=shape[0], width=shape[1],
                        max_size=None, resampling_method=resampling, reproject_method=reproject).array
    # The same warp given datum-less twins of both CRSs: no search of PROJ's database for each
    # transformation GDAL builds (one per warp and per overview read; 3.4x less CPU per cut), same pixels.
    return src.part((west, south, east, north), dst_crs=bare[1], bounds_crs=bare[1], height=shape[0],
                    width=shape[1], max_size=None, resampling_method=resampling, reproject_method=reproject,
                    vrt_options={"src_crs": bare[0]}).array


def read_files(paths: Sequence[Path], crs: CRS, transform: Affine, shape: tuple[int, int], *,
               source_grid: tuple[str, Affine, tuple[int, int]] | None = None, nodata: int | None = 0,
               dtype: str = "uint16", resampling: str = "nearest", reproject: str = "nearest") -> np.ndarray:
    """Band 1 of each built COG (same grid and ``dtype``) on the target grid: ``(len(paths), h, w)``.

    Values outside the files are meaningless (callers mask with the block outlines). One file is
    read as it is (exactly what a plain TiTiler tile of it reads); several, as one stacked VRT.
    """
    try:
        if len(paths) == 1:
            source = str(paths[0])
        else:
            grid = source_grid or _grid_of.__wrapped__(paths[0], 0)
            source = stack_vrt(paths, *grid, nodata=nodata, dtype=dtype)
        with Reader(source) as src:
            return cut(src, crs, transform, shape, resampling, reproject).data
    except Exception as exc:  # a block file removed or replaced under us, or corrupt
        names = ", ".join(p.name for p in paths)
        raise SourceUnavailableError(f"cannot read built file(s) {names}: {exc}") from None


def blank(variable: tuple[str, str], shape: tuple[int, int]) -> np.ndarray:
    """An array of ``variable``'s type (`compositor.describe.storage`) holding its nodata (0 for counts)."""
    dtype, nodata = storage(*variable)
    return np.full(shape, nodata or 0, dtype=dtype)


def is_valid(variable: tuple[str, str], data: np.ndarray) -> np.ndarray:
    """Where ``data`` of ``variable`` holds a value (counts: everywhere; others: not their nodata)."""
    nodata = storage(*variable)[1]
    return np.ones(data.shape, dtype=bool) if nodata is None else data != nodata


def has_data(variable: tuple[str, str], data: np.ndarray) -> bool:
    """Whether ``data`` holds any observation (a count above 0, a value other than nodata)."""
    nodata = storage(*variable)[1]
    return bool((data != (0 if nodata is None else nodata)).any())


def storage_groups(variables: Sequence[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """``variables`` grouped by how they are stored (reflectance, counts, index statistics), each group read as
    one stack."""
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for variable in variables:
        groups.setdefault(storage(*variable), []).append(variable)
    return list(groups.values())


def read_built(state: SeasonState, blocks: Sequence[BuiltBlock], labels: np.ndarray,
               variables: Sequence[tuple[str, str]], crs: CRS, transform: Affine, shape: tuple[int, int], *,
               pixel_size_grid: float, resampling: str = "nearest", reproject: str = "nearest") -> dict:
    """Values of each ``(band, kind)`` where ``labels`` > 0 (its nodata elsewhere; `compositor.describe.storage`).

    Reflectance, counts and index statistics are read in separate stacks: their types and nodata differ.
    """
    out = {v: blank(v, shape) for v in variables}
    layout = state.layout
    groups = storage_groups(variables)
    overview_m = state.overview_resolution_m()
    options = layout.store.gdal_options()  # an object store's endpoint and credentials for /vsis3/
    with rasterio.Env(**options) if options else contextlib.nullcontext():
        for group in groups:
            dtype, nodata = storage(*group[0])
            overviews = [layout.overview_file(band, kind, overview_m) for band, kind in group]
            if pixel_size_grid >= OVERVIEW_USE_RATIO * overview_m and all(f"overview/{p.name}" in state.files
                                                                          for p in overviews):
                data = read_files(overviews, crs, transform, shape, source_grid=_grid_of(overviews[0], state.generation),
                                  nodata=nodata, dtype=dtype, resampling=resampling, reproject=reproject)
                inside = labels > 0
                for variable, values in zip(group, data):
                    out[variable][inside] = values[inside]
                continue
            for index, built in enumerate(blocks, start=1):
                inside = labels == index
                if not inside.any():
                    continue
                block = built.block
                paths = [built.path(layout, band, kind) for band, kind in group]
                data = read_files(paths, crs, transform, shape, source_grid=(block.crs, block.transform, block.shape),
                                  nodata=nodata, dtype=dtype, resampling=resampling, reproject=reproject)
                for variable, values in zip(group, data):
                    out[variable][inside] = values[inside]
    return out


# --- cutting tiles from arrays on a block's grid, exactly as from the block's COGs ---------------------------

_PROBE_LOCK = threading.Lock()


def _constant_file(size: int, value: int) -> str:
    """A square uint16 GTiff in GDAL's memory file system, every pixel ``value`` (for `read_level`); written
    once per process (under a lock: a reader must never see it half written)."""
    with _PROBE_LOCK:
        return _write_constant_file(size, value)


@functools.lru_cache(maxsize=32)
def _write_constant_file(size: int, value: int) -> str:
    path = f"/vsimem/s2seasons-level-probe-{size}-{value}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16", tiled=True,
                       blockxsize=min(256, size), blockysize=min(256, size), compress="deflate",
                       transform=Affine.translation(0, size) @ Affine.scale(1, -1)) as dst:  # georeferenced: no warning
        dst.write(np.full((size, size), value, dtype=np.uint16), 1)
    return path


def _probe_vrt(block_crs: str, transform: Affine, size: int, levels: int) -> str:
    """A VRT with a block's grid and overview structure whose level k reads as the value k + 1."""
    def source(element: str, level: int) -> str:
        return (f"<{element}><SourceFilename relativeToVRT=\"0\">{_constant_file(size >> level, level + 1)}"
                f"</SourceFilename><SourceBand>1</SourceBand></{element}>")

    overviews = "".join(source("Overview", k) for k in range(1, levels + 1))
    geotransform = ", ".join(repr(float(v)) for v in transform.to_gdal())
    return (f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{CRS.from_user_input(block_crs).to_wkt()}'
            f'</SRS><GeoTransform>{geotransform}</GeoTransform><VRTRasterBand dataType="UInt16" band="1">'
            f'{source("SimpleSource", 0)}{overviews}</VRTRasterBand></VRTDataset>')


def read_level(block: Block, crs: CRS, transform: Affine, shape: tuple[int, int], *, resampling: str = "nearest",
               reproject: str = "nearest") -> int:
    """The overview level (0 = full resolution) that GDAL reads of a built block's COGs for this target grid.

    Asked of GDAL itself rather than re-derived: a VRT with the block's grid and overview levels
    (`compositor.cog.overview_count`), each level a constant, is read the way `read_files` reads a
    built COG, and the value that comes back names the level. On-the-fly compositing then works at
    that level, so that its tile is cut from the pixels a built tile would be cut from."""
    levels = overview_count(block.size_px)
    with Reader(_probe_vrt(block.crs, block.transform, block.size_px, levels)) as src:
        probe = cut(src, crs, transform, shape, resampling, reproject)
    values = probe.data[0][~probe.mask[0]]
    if not values.size:
        return 0
    return int(np.bincount(values).argmax()) - 1


def read_block_arrays(block: Block, level: int, pieces: Sequence[tuple[int, int, np.ndarray]], nodata: int | None,
                      crs: CRS, transform: Affine, shape: tuple[int, int], *, resampling: str = "nearest",
                      reproject: str = "nearest") -> np.ndarray:
    """Windows of a block's grid at overview ``level`` cut into the target grid: ``(n, h, w)`` of their type.

    ``pieces`` are ``(row, col, layers)``: ``layers`` (n, rows, cols) uint16 placed at that pixel of
    the block's grid at that level. They are put in an in-memory GeoTIFF with the grid of the block's
    COGs at that level (the rest of it empty, 0) and read with the same call as `read_files`, so that
    a tile of them equals a tile of the built COGs holding the same pixels."""
    factor = 2**level
    level_transform = block.transform @ Affine.scale(factor)
    size = block.size_px // factor
    tile = min(256, size)
    count = pieces[0][2].shape[0]
    with rasterio.MemoryFile() as memory:
        with memory.open(driver="GTiff", width=size, height=size, count=count, dtype=pieces[0][2].dtype, crs=block.crs,
                         transform=level_transform, nodata=nodata, tiled=True, blockxsize=tile, blockysize=tile,
                         sparse_ok=True) as dst:
            for row, col, layers in pieces:
                dst.write(layers, window=Window(col, row, layers.shape[2], layers.shape[1]))
        with memory.open() as dataset, Reader(None, dataset=dataset) as src:
            return cut(src, crs, transform, shape, resampling, reproject).data
