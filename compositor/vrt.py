"""GDAL virtual rasters (VRT XML): stacks of single-band files, warps, and the season mosaics.

Three kinds, one home:

* `stack_vrt`: band i is band 1 of the i-th file, all on one grid: a scene's bands, or a built
  block's rasters, read or warped in one pass instead of one per file.
* `warped_vrt`: a source on a target grid with its coordinate operation given (no PROJ database
  search per warp).
* `mosaic_vrt` / `write_season_vrts`: one band and kind of a season, its blocks side by side, with the
  season overview raster as the band's explicit overview (`DATA/<season>/<stem>.vrt`).
"""

from __future__ import annotations

import functools
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PurePath
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from affine import Affine
from rasterio._path import _parse_path
from rasterio.crs import CRS
from rasterio.enums import Resampling

from compositor.cog import BandSpec, internal_tile_px
from compositor.describe import season_spec
from compositor.grid import Block, OutputGrid
from compositor.index import MosaicExtent, built_blocks, mosaic_extent, season_rasters
from compositor.layout import SeasonLayout
from compositor.overview import DEFAULT_OVERVIEW_FACTOR
from compositor.storage import OutputStore

logger = logging.getLogger(__name__)

# GDAL's names of the resampling methods in a warped VRT's XML.
_RESAMPLE_ALG = {Resampling.nearest: "NearestNeighbour", Resampling.bilinear: "Bilinear", Resampling.cubic: "Cubic",
                 Resampling.average: "Average", Resampling.mode: "Mode"}
_GDAL_TYPE = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}
VRT_DATA_TYPES = frozenset(_GDAL_TYPE)  # the numpy data types `stack_vrt` and `warped_vrt` can name



@functools.lru_cache(maxsize=32)
def _wkt(crs: str) -> str:
    return CRS.from_user_input(crs).to_wkt()


def warped_vrt(source: str, src_crs_wkt: str, src_transform: Affine, n_bands: int, dtype: str, dst_crs: str,
               dst_transform: Affine, dst_shape: tuple[int, int], resampling: Resampling, pipeline: str) -> str:
    """A warped VRT (XML text) of ``source``'s bands on the grid ``(dst_crs, dst_transform, dst_shape)``.

    What rasterio's `WarpedVRT` sets up (nodata 0 in and out, a 0.01 px approximate transformer,
    GDAL's default blocks and warp memory), with the coordinate operation given as ``pipeline`` so
    that GDAL does not search PROJ's database for it. Pixels equal `WarpedVRT`'s (tested)."""
    height, width = dst_shape
    dst_wkt = _wkt(dst_crs)

    def gt(transform: Affine) -> str:
        return ",".join(repr(float(v)) for v in transform.to_gdal())

    data_type = _GDAL_TYPE[dtype]
    bands = "".join(f'<VRTRasterBand dataType="{data_type}" band="{i}" subClass="VRTWarpedRasterBand">'
                    f'<NoDataValue>0</NoDataValue></VRTRasterBand>' for i in range(1, n_bands + 1))
    mapping = "".join(f'<BandMapping src="{i}" dst="{i}"><SrcNoDataReal>0</SrcNoDataReal><SrcNoDataImag>0</SrcNoDataImag>'
                      f'<DstNoDataReal>0</DstNoDataReal><DstNoDataImag>0</DstNoDataImag></BandMapping>'
                      for i in range(1, n_bands + 1))
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}" subClass="VRTWarpedDataset">'
        f'<SRS>{escape(dst_wkt)}</SRS><GeoTransform>{gt(dst_transform)}</GeoTransform>{bands}'
        f'<BlockXSize>{min(width, 512)}</BlockXSize><BlockYSize>{min(height, 128)}</BlockYSize>'
        f'<GDALWarpOptions><WarpMemoryLimit>6.71089e+07</WarpMemoryLimit>'
        f'<ResampleAlg>{_RESAMPLE_ALG[resampling]}</ResampleAlg><WorkingDataType>{data_type}</WorkingDataType>'
        f'<Option name="UNIFIED_SRC_NODATA">YES</Option><Option name="INIT_DEST">NO_DATA</Option>'
        f'<Option name="ERROR_OUT_IF_EMPTY_SOURCE_WINDOW">FALSE</Option>'
        f'<SourceDataset relativeToVRT="0">{escape(source)}</SourceDataset>'
        f'<Transformer><ApproxTransformer><MaxError>0.01</MaxError><BaseTransformer><GenImgProjTransformer>'
        f'<SrcGeoTransform>{gt(src_transform)}</SrcGeoTransform><SrcInvGeoTransform>{gt(~src_transform)}</SrcInvGeoTransform>'
        f'<DstGeoTransform>{gt(dst_transform)}</DstGeoTransform><DstInvGeoTransform>{gt(~dst_transform)}</DstInvGeoTransform>'
        f'<ReprojectTransformer><ReprojectionTransformer><SourceSRS>{escape(src_crs_wkt)}</SourceSRS>'
        f'<TargetSRS>{escape(dst_wkt)}</TargetSRS>'
        f'<Options><Option key="COORDINATE_OPERATION">{escape(pipeline)}</Option></Options>'
        f'</ReprojectionTransformer></ReprojectTransformer></GenImgProjTransformer></BaseTransformer>'
        f'</ApproxTransformer></Transformer><BandList>{mapping}</BandList></GDALWarpOptions></VRTDataset>')


def stack_vrt(hrefs: Sequence[str | PurePath], crs: str, transform: Affine, shape: tuple[int, int], *,
              nodata: int | None = 0, dtype: str = "uint16", overview_level: int | None = None) -> str:
    """A VRT (XML text) whose band i is band 1 of ``hrefs[i]``, all on one grid ``(crs, transform, shape)``.

    Read or warped, it costs one set-up for all its bands instead of one per file. ``overview_level``
    reads that overview of every file (its grid is then the overview's); without it, GDAL can use the
    files' overviews through the VRT's implicit overviews. ``crs`` is anything rasterio's CRS takes
    (an EPSG code, WKT). Used for a scene's bands (`read_warped_bands`) and for built blocks' COGs.
    """
    data_type = _GDAL_TYPE[dtype]
    nodata_xml = "" if nodata is None else f"<NoDataValue>{nodata}</NoDataValue>"
    # The files are read by pixel windows and the VRT carries the georeferencing: GDAL need not build each
    # file's CRS from its GeoTIFF keys (PROJ database look-ups: 40 % of opening a scene's band) nor look
    # for side-car georeferencing. Same pixels (tested).
    level = "" if overview_level is None else f'<OOI key="OVERVIEW_LEVEL">{overview_level}</OOI>'
    options = f'<OpenOptions><OOI key="GEOREF_SOURCES">NONE</OOI>{level}</OpenOptions>'
    bands = "".join(
        f'<VRTRasterBand dataType="{data_type}" band="{i}">{nodata_xml}<SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{escape(_parse_path(str(href)).as_vsi())}</SourceFilename>'
        f'{options}<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>'
        for i, href in enumerate(hrefs, start=1))
    return (f'<VRTDataset rasterXSize="{shape[1]}" rasterYSize="{shape[0]}"><SRS>{escape(_wkt(crs))}</SRS>'
            f'<GeoTransform>{", ".join(repr(float(v)) for v in transform.to_gdal())}</GeoTransform>{bands}</VRTDataset>')


# --- season mosaics ----------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = str(text)
    return element


def mosaic_vrt(extent: MosaicExtent, crs: str, spec: BandSpec, sources: Sequence[tuple[Block, str]],
            overview: str | None = None) -> str:
    """VRT text of one band over ``extent``; ``sources`` are (block, path relative to the VRT).

    Blocks never overlap, so each is a SimpleSource; its ``SourceProperties`` let GDAL open a block
    only when a read touches it. ``overview`` (relative path) becomes the band's explicit overview.
    """
    root = ET.Element("VRTDataset", rasterXSize=str(extent.width), rasterYSize=str(extent.height))
    _sub(root, "SRS", _wkt(crs))
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
    text = mosaic_vrt(extent, crs, spec, hrefs, os.path.relpath(overview, path.parent) if overview else None)
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
    blocks = built_blocks(layout, grid, check_files=True)
    if not blocks:
        logger.warning("season %s has no built block: no VRT written", layout.season.name)
        return []
    extent = mosaic_extent(blocks)
    written = []
    for band, kind, sources in season_rasters(layout, blocks, bands):
        overview = layout.overview_file(band, kind, grid.resolution_m * overview_factor)
        if not _overview_fits(overview, extent, overview_factor):
            logger.warning("%s: no up-to-date overview at 1/%d; VRT written without it", overview.name, overview_factor)
            overview = None
        written.append(write_vrt(layout.vrt_file(band, kind), extent, grid.crs, season_spec(layout.season, band, kind, layout.variant),
                                 sources, overview, layout.store))
    logger.info("season %s: %d VRTs over %d blocks", layout.season.name, len(written), len(blocks))
    return written
