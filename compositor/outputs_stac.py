"""The STAC catalog of a season's outputs: a static, self-contained catalog beside the rasters.

    DATA/<season>/catalog/catalog.json      # one Collection (VRTs, overviews), one Item per built block
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePath

import numpy as np
import pystac
from pyproj import CRS
from shapely.geometry import mapping

from compositor import __version__
from compositor.bands import BANDS_BY_NAME, FILLED
from compositor.cog import BandSpec
from compositor.describe import season_spec
from compositor.grid import OutputGrid
from compositor.index import BuiltBlock, block_sources, built_blocks, season_variables, select_bands
from compositor.layout import OUTPUT_KINDS, SeasonLayout
from compositor.overview import DEFAULT_OVERVIEW_FACTOR
from compositor.storage import OutputStore

logger = logging.getLogger(__name__)

OUTPUT_LICENSE = "CC-BY-4.0"
VRT_MEDIA_TYPE = "application/xml"  # no registered type for GDAL VRT; the asset title says what it is


def _season_interval(layout: SeasonLayout) -> tuple[dt.datetime, dt.datetime]:
    season = layout.season
    start = dt.datetime.combine(season.start, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(season.end, dt.time(23, 59, 59), tzinfo=dt.UTC)
    return start, end


def _epsg(crs: str) -> int | None:
    return CRS.from_user_input(crs).to_epsg()


def _raster_band(spec: BandSpec, resolution_m: float) -> dict[str, object]:
    record: dict[str, object] = {"data_type": spec.dtype, "spatial_resolution": resolution_m}
    if spec.nodata is not None:
        record["nodata"] = spec.nodata
    if spec.scale is not None:
        record.update(scale=spec.scale, offset=0.0)
    if spec.unit:
        record["unit"] = spec.unit
    return record


def _block_item(layout: SeasonLayout, grid: OutputGrid, built: BuiltBlock,
                variables: Sequence[tuple[str, str]]) -> pystac.Item | None:
    block = built.block
    assets = {}
    for band, kind in variables:
        sources = block_sources(layout, [built], band, kind)
        if not sources:
            continue
        spec = season_spec(layout.season, band, kind, layout.variant)
        assets[f"{band}_{kind}"] = pystac.Asset(
            str(sources[0][1]), title=spec.description, media_type=pystac.MediaType.COG,
            roles=["data"],
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
    if layout.variant:
        properties["s2seasons:variant"] = layout.variant
    item = pystac.Item(f"{_product_id(layout)}_{block.id}", mapping(footprint), list(footprint.bounds), None,
                       properties)
    for key, asset in assets.items():
        item.add_asset(key, asset)
    item.stac_extensions = [
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    ]
    return item


def _product_id(layout: SeasonLayout) -> str:
    """The season's name, with its variant's (``2022-summer-filled``)."""
    return f"{layout.season.name}-{layout.variant}" if layout.variant else layout.season.name


FILLED_TEXT = (" Gap-filled variant: where the season has fewer valid observations than the fill's minimum, the "
               "percentiles come from the same season of the year before or after, else from the season before or "
               "after, and the fill_flag asset says which (0 observed, 1 same season of another year, 2 adjacent "
               "season, 255 no value); counts are those of the season the values come from.")


def _season_assets(layout: SeasonLayout, grid: OutputGrid, variables: Sequence[tuple[str, str]],
                   factor: int) -> dict[str, pystac.Asset]:
    """Collection assets: the season VRTs and overview rasters that exist."""
    store = layout.store
    existing = {p.name for p in store.list_files(layout.overview_dir)}
    existing |= {layout.vrt_file(b, k).name for b, k in variables if store.is_file(layout.vrt_file(b, k))}
    assets = {}
    for band, kind in variables:
        spec = season_spec(layout.season, band, kind, layout.variant)
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
    variant = f" ({layout.variant})" if layout.variant else ""
    collection = pystac.Collection(
        id=f"s2l2a-{_product_id(layout)}",
        title=f"Sentinel-2 L2A seasonal percentile mosaic, {season.name}{variant}",
        description=(
            f"Cloud-free Sentinel-2 L2A surface reflectance of {season.name} ({season.start} to {season.end}): "
            "per pixel and band the 25th, 50th and 75th percentile of the cloud-free observations (uint16, "
            "scale 0.0001, nodata 0) and their count, per relative orbit and blended across orbits, at "
            f"{grid.resolution_m:g} m in {grid.crs}, as Cloud-Optimized GeoTIFF blocks. "
            "Contains modified Copernicus Sentinel data." + (FILLED_TEXT if layout.variant == FILLED else "")
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
    store.prune_empty_folders(final)


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
    blocks = built_blocks(layout, grid, check_files=True)
    names = select_bands(blocks, bands)
    variables = season_variables(blocks, names)
    items = [item for built in blocks if (item := _block_item(layout, grid, built, variables)) is not None]
    collection = _season_collection(layout, grid, names, items, license)
    for key, asset in _season_assets(layout, grid, variables, overview_factor).items():
        collection.add_asset(key, asset)
    catalog = pystac.Catalog(
        id=f"s2seasons-{_product_id(layout)}",
        title=f"s2seasons outputs of {_product_id(layout)}",
        description=f"Season mosaics of {_product_id(layout)} built by s2seasons {__version__}.",
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
