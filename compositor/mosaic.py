"""Season-level outputs over the built blocks: VRT mosaics, a low-resolution overview, a STAC catalog.

Everything here only reads blocks through their manifests (`built_manifests`), so a block that a
build is still writing is invisible until its manifest exists. Every file is written locally and
put in place in one step by the season's store (a rename in a folder, one PUT in an object store):
a reader (GDAL, TiTiler, a STAC client) sees the previous complete file or the new one, never a part.
Block rasters are read by GDAL through the paths of the layout (``/vsis3/...`` for an object store).

Per band and kind (p25, p50, p75, count) a season has::

    DATA/<season>/s2l2a_red_p50_30m_<dates>_epsg3035.vrt           # all blocks as one raster
    DATA/<season>/overview/s2l2a_red_p50_480m_<dates>_epsg3035.tif  # the same extent, 16x coarser
    DATA/<season>/catalog/catalog.json                              # static STAC of the outputs

The VRT lists the overview raster as an explicit ``<Overview>`` of its band, so a reader asking
for a small image of a large area (a whole-continent map) reads that one file instead of opening
every block.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

import numpy as np
import pystac
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.crs import CRS as RioCRS
from rasterio.enums import Resampling
from rasterio.windows import Window
from shapely.geometry import mapping

from compositor import __version__
from compositor.bands import BAND_NAMES, BANDS_BY_NAME, COUNT, resolve_bands
from compositor.block import built_manifests
from compositor.cog import REFLECTANCE_SCALE, describe, internal_tile_px, open_strip_writer, translate_to_cog
from compositor.errors import InvalidInputError
from compositor.grid import Block, OutputGrid
from compositor.layout import OUTPUT_KINDS, SeasonLayout
from compositor.storage import OutputStore, open_store

logger = logging.getLogger(__name__)

DEFAULT_OVERVIEW_FACTOR = 16
OVERVIEW_READERS = 16  # block files read at once from an object store for the season overview
OUTPUT_LICENSE = "CC-BY-4.0"
BUILT_STATUSES = ("built", "empty")
VRT_MEDIA_TYPE = "application/xml"  # no registered type for GDAL VRT; the asset title says what it is

BYTE_NODATA = 255
BYTE_REFLECTANCE_MAX = 250
BYTE_COUNT_MAX = 254
BYTE_DN_STEP = 40  # DN per byte step: reflectance 0.004 = 40 DN at scale 0.0001
BYTE_SCALE = 0.004
BYTE_MAPPING = (
    "reflectance: value = clip(floor(DN / 40 + 0.5), 0, 250) = clip(round(reflectance * 250), 0, 250), "
    "reflectance = value * 0.004, 255 = no data; count: value = min(count, 254), 255 = no data"
)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuiltBlock:
    """A block of the season whose manifest exists (status built, or empty: no observation)."""

    block: Block
    status: str
    bands: tuple[str, ...]
    n_scenes: int
    n_acquisitions: int
    files: frozenset[str] = frozenset()  # names of the block's files that exist


@dataclass(frozen=True)
class MosaicExtent:
    """The rectangle of grid blocks from (col_min, row_min) to (col_max, row_max), inclusive."""

    col_min: int
    col_max: int
    row_min: int
    row_max: int
    block_size_px: int
    resolution_m: float

    @property
    def width(self) -> int:
        return (self.col_max - self.col_min + 1) * self.block_size_px

    @property
    def height(self) -> int:
        return (self.row_max - self.row_min + 1) * self.block_size_px

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the grid CRS (metres)."""
        span = self.block_size_px * self.resolution_m
        return (self.col_min * span, self.row_min * span, (self.col_max + 1) * span, (self.row_max + 1) * span)

    @property
    def transform(self) -> Affine:
        xmin, _, _, ymax = self.bounds
        return Affine(self.resolution_m, 0.0, xmin, 0.0, -self.resolution_m, ymax)

    def offset_px(self, block: Block) -> tuple[int, int]:
        """(column, row) of the block's upper-left pixel in the mosaic (rows grow southwards)."""
        return ((block.col - self.col_min) * self.block_size_px, (self.row_max - block.row) * self.block_size_px)


@dataclass(frozen=True)
class BandSpec:
    """What a raster of one band and kind declares: GDAL type, nodata, scale, description, tags."""

    gdal_type: str
    nodata: int | None
    scale: float | None
    description: str
    tags: dict[str, str] = field(hash=False)


@dataclass(frozen=True)
class SeasonOutputs:
    """Paths written by `update_season_outputs`."""

    vrts: tuple[PurePath, ...]
    overviews: tuple[PurePath, ...]
    catalog: PurePath


# --- reading the built blocks -------------------------------------------------------------------


def check_layout_grid(layout: SeasonLayout, grid: OutputGrid) -> None:
    """Raise `InvalidInputError` when the layout's names would not match the grid's blocks."""
    if CRS.from_user_input(layout.crs) != CRS.from_user_input(grid.crs) or layout.resolution_m != grid.resolution_m:
        raise InvalidInputError(
            f"season layout ({layout.crs}, {layout.resolution_m:g} m) and grid ({grid.crs}, "
            f"{grid.resolution_m:g} m) differ: use the grid the season was built on"
        )


def _grid_matches(record: dict | None, grid: OutputGrid) -> bool:
    return bool(record) and (
        record.get("crs") == grid.crs
        and record.get("resolution_m") == grid.resolution_m
        and record.get("block_size_px") == grid.block_size_px
    )


def list_built_blocks(layout: SeasonLayout, grid: OutputGrid) -> list[BuiltBlock]:
    """Blocks with a manifest on this grid, north-west first; other grids are skipped with a warning."""
    check_layout_grid(layout, grid)
    manifests = built_manifests(layout)
    present: dict[str, set[str]] = {}
    if manifests:  # one listing instead of a look-up per file (a request each in an object store)
        for path in layout.store.list_files(layout.blocks_dir):
            present.setdefault(path.parent.name, set()).add(path.name)
    blocks = []
    for manifest in manifests:
        block_id = manifest.get("block", "?")
        if manifest.get("status") not in BUILT_STATUSES:
            logger.warning("skip block %s: status %r", block_id, manifest.get("status"))
            continue
        if not _grid_matches(manifest.get("grid"), grid):
            logger.warning("skip block %s: built on grid %s, not %s", block_id, manifest.get("grid"), grid)
            continue
        try:
            block = grid.block_by_id(block_id)
        except InvalidInputError:
            logger.warning("skip block %r: malformed block id in its manifest", block_id)
            continue
        blocks.append(BuiltBlock(block, manifest["status"], tuple(manifest.get("bands", ())),
                                 len(manifest.get("scenes", ())), int(manifest.get("n_acquisitions", 0)),
                                 frozenset(present.get(block.id, ()))))
    return sorted(blocks, key=lambda b: (-b.block.row, b.block.col))


def select_bands(blocks: Sequence[BuiltBlock], bands: Iterable[str] | str | None) -> tuple[str, ...]:
    """The requested bands (validated), or, for ``None``, every band any block holds; product order."""
    if bands is None:
        present = {band for b in blocks for band in b.bands}
        return tuple(n for n in BAND_NAMES if n in present)
    wanted = resolve_bands(bands)
    for band in wanted:
        if not any(band in b.bands for b in blocks):
            logger.warning("band %s: no built block holds it; nothing to write", band)
    return wanted


def mosaic_extent(blocks: Sequence[BuiltBlock]) -> MosaicExtent:
    """The smallest rectangle of blocks holding every built block (the same for all bands)."""
    if not blocks:
        raise InvalidInputError("the season has no built block: build some before writing season outputs")
    first = blocks[0].block
    cols = [b.block.col for b in blocks]
    rows = [b.block.row for b in blocks]
    return MosaicExtent(min(cols), max(cols), min(rows), max(rows), first.size_px, first.resolution_m)


def block_sources(layout: SeasonLayout, blocks: Sequence[BuiltBlock], band: str,
                  kind: str) -> list[tuple[Block, PurePath]]:
    """Existing block files of one band and kind; a file its manifest promises but lacks is warned."""
    sources = []
    for built in blocks:
        if band not in built.bands:
            continue
        path = layout.block_file(built.block.id, band, kind)
        if path.name in built.files:
            sources.append((built.block, path))
        else:
            logger.warning("block %s: %s is missing; left out of the season outputs", built.block.id, path.name)
    return sources


# --- what each raster declares ------------------------------------------------------------------


def season_tags(layout: SeasonLayout, band: str, kind: str) -> dict[str, str]:
    season = layout.season
    return {
        "season": season.name, "start_date": season.start.isoformat(), "end_date": season.end.isoformat(),
        "band": band, "statistic": kind, "software": f"s2seasons {__version__}",
    }


def describe_kind(band: str, kind: str) -> str:
    """The band description of a block file (the same words as `compositor.block`)."""
    name = BANDS_BY_NAME[band].description
    if kind == COUNT:
        return f"{name}: number of valid (cloud-free) observations"
    return f"{name}: {kind.upper()} of cloud-free surface reflectance (scale 0.0001)"


def season_spec(layout: SeasonLayout, band: str, kind: str) -> BandSpec:
    """uint16 reflectance DN (nodata 0, scale 0.0001) or uint16 count (no nodata: 0 means unseen)."""
    if kind == COUNT:
        return BandSpec("UInt16", None, None, describe_kind(band, kind), season_tags(layout, band, kind))
    return BandSpec("UInt16", 0, REFLECTANCE_SCALE, describe_kind(band, kind), season_tags(layout, band, kind))


def byte_spec(layout: SeasonLayout, band: str, kind: str) -> BandSpec:
    """The byte export: reflectance * 250 (nodata 255, scale 0.004), or count up to 254 (nodata 255)."""
    tags = {**season_tags(layout, band, kind), "byte_mapping": BYTE_MAPPING}
    if kind == COUNT:
        text = f"{describe_kind(band, kind)}; byte: min(count, 254), 255 = no data"
        return BandSpec("Byte", BYTE_NODATA, None, text, tags)
    text = (f"{BANDS_BY_NAME[band].description}: {kind.upper()} of cloud-free surface reflectance, byte-scaled: "
            "value = clip(round(DN / 40), 0, 250), reflectance = value * 0.004, 255 = no data")
    return BandSpec("Byte", BYTE_NODATA, BYTE_SCALE, text, tags)


def overview_resampling(kind: str) -> Resampling:
    """Average for reflectance; nearest for counts (see `write_season_overview`)."""
    return Resampling.nearest if kind == COUNT else Resampling.average


# --- atomic writes ------------------------------------------------------------------------------


def write_cog_atomically(path: PurePath, crs: str, transform: Affine, shape: tuple[int, int], spec: BandSpec,
                         fill: Callable[[rasterio.io.DatasetWriter], None], resampling: Resampling,
                         store: OutputStore) -> PurePath:
    """A single-band COG filled by ``fill(writer)`` on a tiled GeoTIFF, then translated and put in place
    in ``store`` (where ``path`` lives)."""
    dtype = "uint8" if spec.gdal_type == "Byte" else spec.gdal_type.lower()
    with store.writing(path) as tmp:
        strips = tmp.with_name(f"{tmp.stem}.strips{tmp.suffix}")
        try:
            with open_strip_writer(strips, crs, transform, shape, dtype, spec.nodata) as writer:
                describe(writer, spec.description, spec.scale, spec.tags)
                fill(writer)
            translate_to_cog(strips, tmp, resampling=resampling.name.upper())
        finally:
            strips.unlink(missing_ok=True)
    return path


# --- VRT ----------------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = str(text)
    return element


def vrt_xml(extent: MosaicExtent, crs: str, spec: BandSpec, sources: Sequence[tuple[Block, str]],
            overview: str | None = None) -> str:
    """VRT text of one band over ``extent``; ``sources`` are (block, path relative to the VRT).

    Blocks never overlap, so each is a SimpleSource; its ``SourceProperties`` let GDAL open a block
    only when a read touches it. ``overview`` (relative path) becomes the band's explicit overview.
    """
    root = ET.Element("VRTDataset", rasterXSize=str(extent.width), rasterYSize=str(extent.height))
    _sub(root, "SRS", RioCRS.from_user_input(crs).to_wkt())
    _sub(root, "GeoTransform", ", ".join(repr(float(v)) for v in extent.transform.to_gdal()))
    metadata = _sub(root, "Metadata")
    for key, value in spec.tags.items():
        _sub(metadata, "MDI", value, key=key)
    band = _sub(root, "VRTRasterBand", dataType=spec.gdal_type, band="1")
    _sub(band, "Description", spec.description)
    if spec.nodata is not None:
        _sub(band, "NoDataValue", spec.nodata)
    if spec.scale is not None:
        _sub(band, "Offset", 0.0)
        _sub(band, "Scale", repr(spec.scale))
    _sub(band, "ColorInterp", "Gray")
    if overview:
        level = _sub(band, "Overview")
        _sub(level, "SourceFilename", overview, relativeToVRT="1")
        _sub(level, "SourceBand", 1)
    size = extent.block_size_px
    tile = str(internal_tile_px(size))
    for block, href in sources:
        xoff, yoff = extent.offset_px(block)
        source = _sub(band, "SimpleSource")
        _sub(source, "SourceFilename", href, relativeToVRT="1")
        _sub(source, "SourceBand", 1)
        _sub(source, "SourceProperties", RasterXSize=str(size), RasterYSize=str(size), DataType=spec.gdal_type,
             BlockXSize=tile, BlockYSize=tile)
        _sub(source, "SrcRect", xOff="0", yOff="0", xSize=str(size), ySize=str(size))
        _sub(source, "DstRect", xOff=str(xoff), yOff=str(yoff), xSize=str(size), ySize=str(size))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_vrt(path: PurePath, extent: MosaicExtent, crs: str, spec: BandSpec,
              sources: Sequence[tuple[Block, PurePath]], overview: PurePath | None,
              store: OutputStore) -> PurePath:
    """Write a VRT atomically; source and overview paths are stored relative to the VRT's folder, so
    the VRT works wherever the folder is (moved, served over HTTP, in an object store)."""
    hrefs = [(block, os.path.relpath(p, path.parent)) for block, p in sources]
    text = vrt_xml(extent, crs, spec, hrefs, os.path.relpath(overview, path.parent) if overview else None)
    store.write_text(path, text)
    return path


def _overview_fits(path: PurePath, extent: MosaicExtent, factor: int) -> bool:
    """Whether the overview raster covers exactly ``extent`` at ``factor`` times its pixel size."""
    try:
        with rasterio.open(path) as src:
            same_size = (src.width, src.height) == (extent.width // factor, extent.height // factor)
            return same_size and np.allclose(src.bounds, extent.bounds)
    except rasterio.errors.RasterioIOError:
        return False


def write_season_vrts(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str] | None = None, *,
                      overview_factor: int = DEFAULT_OVERVIEW_FACTOR) -> list[Path]:
    """One VRT per band and kind over every built block (``layout.vrt_file``); returns the paths.

    The VRT covers the union rectangle of the built blocks in the grid CRS at the grid resolution;
    pixels of unbuilt blocks read as nodata (0; count: 0 observations). Reflectance is uint16 DN
    with nodata 0 and scale 0.0001; counts have no nodata. A block file that is missing is left
    out with a warning. The season overview (`write_season_overview` with ``overview_factor``) is
    referenced as the band's overview when it exists and covers the same extent; otherwise the
    VRT is written without it, with a warning.
    """
    blocks = list_built_blocks(layout, grid)
    if not blocks:
        logger.warning("season %s has no built block: no VRT written", layout.season.name)
        return []
    extent = mosaic_extent(blocks)
    written = []
    for band in select_bands(blocks, bands):
        for kind in OUTPUT_KINDS:
            sources = block_sources(layout, blocks, band, kind)
            if not sources:
                continue
            overview = layout.overview_file(band, kind, grid.resolution_m * overview_factor)
            if not _overview_fits(overview, extent, overview_factor):
                logger.warning("%s: no up-to-date overview at 1/%d; VRT written without it", overview.name,
                               overview_factor)
                overview = None
            written.append(write_vrt(layout.vrt_file(band, kind), extent, grid.crs, season_spec(layout, band, kind),
                                     sources, overview, layout.store))
    logger.info("season %s: %d VRTs over %d blocks", layout.season.name, len(written), len(blocks))
    return written


# --- overview -----------------------------------------------------------------------------------


def check_overview_factor(grid: OutputGrid, factor: int) -> None:
    if factor < 2 or grid.block_size_px % factor:
        raise InvalidInputError(
            f"overview factor {factor}: use a divisor of the block size ({grid.block_size_px} px) of at least 2, "
            "such as 16"
        )


def _fill_overview(sources: Sequence[tuple[Block, PurePath]], extent: MosaicExtent, factor: int,
                   resampling: Resampling, store: OutputStore) -> Callable[[rasterio.io.DatasetWriter], None]:
    """Each block decimated into its place; an object store's blocks are read side by side (round trips)."""
    size = extent.block_size_px // factor
    options = store.gdal_options()  # GDAL options are per thread: each reader sets them

    def read(path: PurePath) -> np.ndarray:
        with rasterio.Env(**options), rasterio.open(path) as src:
            return src.read(1, out_shape=(size, size), resampling=resampling)

    def fill(writer: rasterio.io.DatasetWriter) -> None:
        with ThreadPoolExecutor(1 if store.is_local else OVERVIEW_READERS) as pool:
            for (block, _), data in zip(sources, pool.map(read, [path for _, path in sources])):
                xoff, yoff = extent.offset_px(block)
                writer.write(data, 1, window=Window(xoff // factor, yoff // factor, size, size))

    return fill


def write_season_overview(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str] | None = None,
                          factor: int = DEFAULT_OVERVIEW_FACTOR) -> list[Path]:
    """A COG per band and kind at ``factor`` times the grid's pixel size over the VRT's extent.

    Each block is read once, decimated by GDAL from the block's own internal overviews, so the
    cost is about one small overview read per block. Reflectance is averaged (nodata 0 is left
    out of the average, as in the blocks' own overviews); counts are sampled with nearest
    neighbour, as in the blocks' own overviews: a count stays the count of a real pixel (an
    integer that was observed, 0 where nothing was) instead of a mean that no pixel has, and the
    overview agrees with what GDAL returns when it zooms out of a single block. (``max`` would
    overstate reliability, and GDAL's RasterIO offers no max/min.) Same dtype, nodata, scale,
    description and tags as the blocks. ``factor`` must divide the block size.
    """
    check_overview_factor(grid, factor)
    blocks = list_built_blocks(layout, grid)
    if not blocks:
        logger.warning("season %s has no built block: no overview written", layout.season.name)
        return []
    extent = mosaic_extent(blocks)
    resolution_m = grid.resolution_m * factor
    transform = extent.transform @ Affine.scale(factor)
    shape = (extent.height // factor, extent.width // factor)
    written = []
    for band in select_bands(blocks, bands):
        for kind in OUTPUT_KINDS:
            sources = block_sources(layout, blocks, band, kind)
            if not sources:
                continue
            spec = season_spec(layout, band, kind)
            tags = {**spec.tags, "resolution_m": f"{resolution_m:g}", "overview_factor": str(factor)}
            spec = replace(spec, tags=tags)
            resampling = overview_resampling(kind)
            path = layout.overview_file(band, kind, resolution_m)
            written.append(write_cog_atomically(path, grid.crs, transform, shape, spec,
                                                _fill_overview(sources, extent, factor, resampling, layout.store),
                                                resampling, layout.store))
    logger.info("season %s: %d overview rasters at %g m", layout.season.name, len(written), resolution_m)
    return written


# --- STAC catalog of the outputs ----------------------------------------------------------------


def _season_interval(layout: SeasonLayout) -> tuple[dt.datetime, dt.datetime]:
    season = layout.season
    start = dt.datetime.combine(season.start, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(season.end, dt.time(23, 59, 59), tzinfo=dt.UTC)
    return start, end


def _epsg(crs: str) -> int | None:
    return CRS.from_user_input(crs).to_epsg()


def _raster_band(spec: BandSpec, resolution_m: float) -> dict[str, object]:
    record: dict[str, object] = {"data_type": spec.gdal_type.lower(), "spatial_resolution": resolution_m}
    if spec.nodata is not None:
        record["nodata"] = spec.nodata
    if spec.scale is not None:
        record.update(scale=spec.scale, offset=0.0)
    else:
        record["unit"] = "observations"
    return record


def _block_item(layout: SeasonLayout, grid: OutputGrid, built: BuiltBlock, bands: Sequence[str]) -> pystac.Item | None:
    block = built.block
    assets = {}
    for band in bands:
        for kind in OUTPUT_KINDS:
            sources = block_sources(layout, [built], band, kind)
            if not sources:
                continue
            spec = season_spec(layout, band, kind)
            assets[f"{band}_{kind}"] = pystac.Asset(
                str(sources[0][1]), title=spec.description, media_type=pystac.MediaType.COG, roles=["data"],
                extra_fields={"raster:bands": [_raster_band(spec, grid.resolution_m)]},
            )
    if not assets:
        return None
    start, end = _season_interval(layout)
    footprint = block.footprint_4326()
    epsg = _epsg(grid.crs)
    properties: dict[str, object] = {
        "start_datetime": start.isoformat().replace("+00:00", "Z"),
        "end_datetime": end.isoformat().replace("+00:00", "Z"),
        "proj:shape": list(block.shape),
        "proj:transform": list(block.transform)[:6],
        "proj:bbox": [float(v) for v in block.bounds],
        "s2seasons:block": block.id,
        "s2seasons:status": built.status,
        "s2seasons:n_scenes": built.n_scenes,
        "s2seasons:n_acquisitions": built.n_acquisitions,
    }
    if epsg:
        properties["proj:code"] = f"EPSG:{epsg}"
        properties["proj:epsg"] = epsg  # projection v1 name, still read by older clients
    else:
        properties["proj:wkt2"] = CRS.from_user_input(grid.crs).to_wkt()
    item = pystac.Item(f"{layout.season.name}_{block.id}", mapping(footprint), list(footprint.bounds), None,
                       properties)
    for key, asset in assets.items():
        item.add_asset(key, asset)
    item.stac_extensions = [
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    ]
    return item


def _season_assets(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str],
                   factor: int) -> dict[str, pystac.Asset]:
    """Collection assets: the season VRTs and overview rasters that exist."""
    store = layout.store
    existing = {p.name for p in store.list_files(layout.overview_dir)}
    existing |= {layout.vrt_file(b, k).name for b in bands for k in OUTPUT_KINDS
                 if store.is_file(layout.vrt_file(b, k))}
    assets = {}
    for band in bands:
        for kind in OUTPUT_KINDS:
            spec = season_spec(layout, band, kind)
            vrt = layout.vrt_file(band, kind)
            if vrt.name in existing:
                assets[f"{band}_{kind}_mosaic"] = pystac.Asset(
                    str(vrt), title=f"GDAL VRT mosaic of all blocks. {spec.description}", media_type=VRT_MEDIA_TYPE,
                    roles=["data"], extra_fields={"raster:bands": [_raster_band(spec, grid.resolution_m)]},
                )
            overview = layout.overview_file(band, kind, grid.resolution_m * factor)
            if overview.name in existing:
                assets[f"{band}_{kind}_overview"] = pystac.Asset(
                    str(overview), title=f"Overview at 1/{factor}. {spec.description}",
                    media_type=pystac.MediaType.COG, roles=["overview"],
                    extra_fields={"raster:bands": [_raster_band(spec, grid.resolution_m * factor)]},
                )
    return assets


def _season_collection(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str], items: Sequence[pystac.Item],
                       license: str) -> pystac.Collection:
    season = layout.season
    if items:
        bboxes = np.array([item.bbox for item in items])
        bbox = [*bboxes[:, :2].min(axis=0), *bboxes[:, 2:].max(axis=0)]
    else:
        bbox = list(grid.area_of_use_4326 or (-180.0, -90.0, 180.0, 90.0))
    epsg = _epsg(grid.crs)
    summaries = {
        "eo:bands": [{"name": b, "common_name": b, "description": BANDS_BY_NAME[b].description} for b in bands],
        "s2seasons:statistics": list(OUTPUT_KINDS),
        "gsd": [grid.resolution_m],
    }
    if epsg:
        summaries["proj:code"] = [f"EPSG:{epsg}"]
    collection = pystac.Collection(
        id=f"s2l2a-{season.name}",
        title=f"Sentinel-2 L2A seasonal percentile mosaic, {season.name}",
        description=(
            f"Cloud-free Sentinel-2 L2A surface reflectance of {season.name} ({season.start} to {season.end}): "
            "per pixel and band the 25th, 50th and 75th percentile of the cloud-free observations (uint16, "
            "scale 0.0001, nodata 0) and their count, per relative orbit and blended across orbits, at "
            f"{grid.resolution_m:g} m in {grid.crs}, as Cloud-Optimized GeoTIFF blocks. "
            "Contains modified Copernicus Sentinel data."
        ),
        extent=pystac.Extent(pystac.SpatialExtent([[float(v) for v in bbox]]),
                             pystac.TemporalExtent([list(_season_interval(layout))])),
        license=license,
        keywords=["Sentinel-2", "L2A", "surface reflectance", "cloud-free", "seasonal composite", "percentile",
                  season.name],
        providers=[pystac.Provider("s2seasons", roles=[pystac.ProviderRole.PROCESSOR]),
                   pystac.Provider("ESA / Copernicus", roles=[pystac.ProviderRole.PRODUCER,
                                                              pystac.ProviderRole.LICENSOR])],
        summaries=pystac.Summaries(summaries),
        stac_extensions=[
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
    )
    collection.add_items(items)
    return collection


def _install_tree(tmp: Path, final: PurePath, store: OutputStore) -> None:
    """Put the files of ``tmp`` in ``final`` one by one (items, then collections, then the root),
    then remove the JSON files of ``final`` that the new tree no longer has."""
    order = {"catalog.json": 2, "collection.json": 1}
    files = sorted((p for p in tmp.rglob("*") if p.is_file()), key=lambda p: (order.get(p.name, 0), str(p)))
    for path in files:
        with store.writing(final / path.relative_to(tmp).as_posix()) as target:
            shutil.copyfile(path, target)
    new = {final / p.relative_to(tmp).as_posix() for p in files}
    for old in sorted(store.list_files(final), reverse=True):
        if old.suffix == ".json" and old not in new:
            store.delete(old)
    if store.is_local:
        for folder in sorted((p for p in Path(final).rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()


def write_output_catalog(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str] | None = None, *,
                         overview_factor: int = DEFAULT_OVERVIEW_FACTOR, license: str = OUTPUT_LICENSE) -> Path:
    """A self-contained static STAC catalog of the season's outputs; returns ``catalog_dir/catalog.json``.

    One Collection for the season (spatial extent from the block footprints in EPSG:4326, temporal
    extent the season's first to last day, UTC) with the VRTs and overview rasters as collection
    assets, and one Item per built block: geometry the block outline in EPSG:4326, ``datetime``
    null with ``start_datetime``/``end_datetime`` the season, projection fields in the grid CRS,
    one COG asset per band and kind with ``raster:bands``. Hrefs are relative, so the season
    folder can be moved or served over HTTP as is. Files are replaced one at a time, items first,
    so a reader never meets a link to a file that is not there.
    """
    blocks = list_built_blocks(layout, grid)
    names = select_bands(blocks, bands)
    items = [item for built in blocks if (item := _block_item(layout, grid, built, names)) is not None]
    collection = _season_collection(layout, grid, names, items, license)
    for key, asset in _season_assets(layout, grid, names, overview_factor).items():
        collection.add_asset(key, asset)
    catalog = pystac.Catalog(
        id=f"s2seasons-{layout.season.name}",
        title=f"s2seasons outputs of {layout.season.name}",
        description=f"Season mosaics of {layout.season.name} built by s2seasons {__version__}.",
    )
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(layout.catalog_dir))
    catalog.make_all_asset_hrefs_relative()
    tmp = Path(tempfile.mkdtemp(prefix="s2seasons-catalog-"))
    try:
        catalog.save(pystac.CatalogType.SELF_CONTAINED, dest_href=str(tmp))
        _install_tree(tmp, layout.catalog_dir, layout.store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("season %s: STAC catalog with %d items", layout.season.name, len(items))
    return layout.catalog_dir / "catalog.json"


# --- the season's outputs together --------------------------------------------------------------


def update_season_outputs(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str] | None = None) -> SeasonOutputs:
    """Overview rasters, then VRTs (which reference them), then the STAC catalog (which lists both)."""
    overviews = write_season_overview(layout, grid, bands)
    vrts = write_season_vrts(layout, grid, bands)
    catalog = write_output_catalog(layout, grid, bands)
    return SeasonOutputs(tuple(vrts), tuple(overviews), catalog)


# --- byte export --------------------------------------------------------------------------------


def reflectance_to_byte(dn: np.ndarray) -> np.ndarray:
    """uint16 reflectance DN (scale 0.0001, nodata 0) as bytes: ``clip(floor(DN / 40 + 0.5), 0, 250)``.

    That is reflectance * 250 rounded half up, so 250 is reflectance 1.0 and brighter pixels
    saturate at 250; DN 0 (nodata) becomes 255. Integer arithmetic: no float rounding.
    """
    value = np.minimum((dn.astype(np.uint32) + BYTE_DN_STEP // 2) // BYTE_DN_STEP, BYTE_REFLECTANCE_MAX)
    return np.where(dn == 0, BYTE_NODATA, value).astype(np.uint8)


def count_to_byte(count: np.ndarray) -> np.ndarray:
    """Observation counts as bytes: ``min(count, 254)`` (255 is nodata, for areas outside every block)."""
    return np.minimum(count, BYTE_COUNT_MAX).astype(np.uint8)


def byte_path(folder: Path, stem: str, suffix: str) -> Path:
    return folder / f"{stem}_byte{suffix}"


def _fill_byte(source: PurePath, kind: str) -> Callable[[rasterio.io.DatasetWriter], None]:
    def fill(writer: rasterio.io.DatasetWriter) -> None:
        with rasterio.open(source) as src:
            data = src.read(1)
        writer.write(count_to_byte(data) if kind == COUNT else reflectance_to_byte(data), 1)

    return fill


def _byte_jobs(layout: SeasonLayout, blocks: Sequence[BuiltBlock], bands: Sequence[str]) -> Iterator[
        tuple[str, str, list[tuple[Block, PurePath]]]]:
    for band in bands:
        for kind in OUTPUT_KINDS:
            sources = block_sources(layout, blocks, band, kind)
            if sources:
                yield band, kind, sources


def export_byte(layout: SeasonLayout, grid: OutputGrid, out_dir: Path, bands: Sequence[str] | None = None,
                progress: Progress | None = None) -> list[Path]:
    """The byte-scaled variant of the original product: a uint8 COG per block, band and kind, plus a VRT.

    Mapping (also in each file's band description and ``byte_mapping`` tag):
    reflectance p25/p50/p75: ``value = clip(round(DN / 40), 0, 250)`` with round half up, i.e.
    ``clip(round(reflectance * 250), 0, 250)``; ``reflectance = value * 0.004`` (scale 0.004);
    255 = nodata (DN 0). count: ``min(count, 254)``, 255 = nodata (outside the built blocks).
    Files: ``out_dir/blocks/<block_id>/<stem>_byte.tif`` and ``out_dir/<stem>_byte.vrt`` with the
    season's stems. ``progress(done, total)`` is called after each block file. Returns the VRTs
    followed by the block files.
    """
    blocks = list_built_blocks(layout, grid)
    if not blocks:
        logger.warning("season %s has no built block: nothing to export", layout.season.name)
        return []
    extent = mosaic_extent(blocks)
    out = open_store(out_dir)
    jobs = list(_byte_jobs(layout, blocks, select_bands(blocks, bands)))
    total = sum(len(sources) for _, _, sources in jobs)
    done = 0
    vrts: list[Path] = []
    files: list[Path] = []
    for band, kind, sources in jobs:
        spec = byte_spec(layout, band, kind)
        stem = layout.stem(band, kind)
        resampling = overview_resampling(kind)
        written = []
        for block, source in sources:
            path = byte_path(out_dir / "blocks" / block.id, stem, ".tif")
            block_spec = replace(spec, tags={**spec.tags, "block": block.id})
            write_cog_atomically(path, grid.crs, block.transform, block.shape, block_spec, _fill_byte(source, kind),
                                 resampling, out)
            written.append((block, path))
            done += 1
            if progress:
                progress(done, total)
        vrts.append(write_vrt(byte_path(out_dir, stem, ".vrt"), extent, grid.crs, spec, written, None, out))
        files.extend(path for _, path in written)
    logger.info("season %s: byte export of %d block files and %d VRTs to %s", layout.season.name, len(files),
                len(vrts), out_dir)
    return vrts + files
