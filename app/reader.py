"""The season reader: TiTiler's seam between its routes and a season, built or not.

Every read (tile, crop, preview, feature, point) becomes one question: the values of some rasters
(band x statistic) on a target grid. Built blocks answer for the pixels they cover
(`app.built`); the rest is composited from the source scenes (`app.onthefly`) when the grid is
small enough (not coarser than a WebMercator tile at ``onthefly_min_zoom``), and left empty
otherwise. The request record says which happened (``X-S2Seasons-Source``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import attr
import numpy as np
from affine import Affine
from morecantile import Tile, TileMatrixSet
from rasterio.crs import CRS
from rasterio.features import geometry_mask
from rasterio.transform import array_bounds, from_bounds
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_geom
from rio_tiler.constants import WEB_MERCATOR_TMS, WGS84_CRS
from rio_tiler.io.base import BaseReader
from rio_tiler.models import BandStatistics, ImageData, Info, PointData
from rio_tiler.utils import CRS_to_uri

from app.built import blank, covering_blocks, has_data, is_valid, read_built
from app.context import (
    SOURCE_BUILT,
    SOURCE_MIXED,
    SOURCE_NOT_BUILT,
    SOURCE_ONTHEFLY,
    current_record,
    note_scenes,
)
from app.errors import NotFoundError
from app.onthefly import MAX_BLOCKS_PER_TILE
from compositor.grid import project_bounds
from app.layers import KINDS, Layer, Variable, all_variables_layer, check_image_layer, evaluate, make_layer
from app.region import map_bounds, zoom_for_pixel
from app.registry import SeasonState
from app.services import Services
from compositor.bands import (BAND_NAMES, FILL_FLAG, FILLED, INDEX_SCALE, MEDOID, MEDOID_DOY, PRODUCTS, QA,
                              QA_VARIABLE, STATISTICS, index_order)
from compositor.describe import is_index
from compositor.errors import InvalidInputError

WEBMERCATOR_WORLD_M = 2 * math.pi * 6378137.0
MAX_PIXELS = 4096 * 4096
MAX_TILESIZE = 1024
DEFAULT_MAX_SIZE = 1024
NO_SCENES = "no scenes"  # X-S2Seasons-Not-Built where no scene of the season touches the unbuilt pixels
WORLD_4326 = (-180.0, -85.0511, 180.0, 85.0511)


@functools.lru_cache(maxsize=64)
def _crs(text: str) -> CRS:
    return CRS.from_user_input(text)


def product_variables(state: SeasonState, products: Collection[str] = PRODUCTS) -> tuple[Variable, ...]:
    """The rasters of the season's products beyond the bands' percentiles and counts, those among ``products``
    the season has: its index percentiles (P25/P50/P75 of each index it was built with), the medoid's bands and
    day of year, the QA layer's observations seen. What a point answer adds to the bands by default."""
    extra: tuple[Variable, ...] = ()
    if "indices" in products:
        extra += tuple((name, kind) for name in index_order(state.indices) for kind in STATISTICS)
    if MEDOID in products and MEDOID in state.products:
        extra += tuple((band, MEDOID) for band in BAND_NAMES) + (MEDOID_DOY,)
    if QA in products and QA in state.products:
        extra += (QA_VARIABLE,)
    return extra


@dataclass(frozen=True)
class SeasonSource:
    """What a route hands the reader: a season snapshot and the server's services (never a path)."""

    state: SeasonState
    services: Services


def onthefly_max_extent_m(min_zoom: int) -> float:
    """Largest extent (EPSG:3857 metres) composited on the fly: a WebMercator tile at ``min_zoom``."""
    return WEBMERCATOR_WORLD_M / 2**min_zoom


def extent_3857_m(crs: CRS, bounds: tuple[float, float, float, float]) -> float:
    """Larger side of ``bounds`` expressed in WebMercator metres (inf when it cannot be projected)."""
    projected = project_bounds(crs, "EPSG:3857", bounds)
    if projected is None:
        return math.inf
    west, south, east, north = projected
    return max(east - west, north - south)


def check_point(lon: float, lat: float, crs: CRS = WGS84_CRS) -> None:
    """A point's coordinates are finite and, in a geographic ``crs``, within -180..180, -90..90 (else a 400)."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInputError("lon and lat must be finite numbers")
    if crs.is_geographic and not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInputError(f"point {lon},{lat} is outside -180..180, -90..90")


def held_bands(state: SeasonState) -> set[str]:
    """The bands a season's built blocks hold (a variant holds those its season was filled with)."""
    return {band for built in state.built.blocks for band in built.bands}


@attr.s
class SeasonReader(BaseReader):
    """A rio-tiler reader over one season (see the module docstring)."""

    input: SeasonSource = attr.ib()
    tms: TileMatrixSet = attr.ib(default=WEB_MERCATOR_TMS)

    def __attrs_post_init__(self) -> None:
        self.crs = _crs(self.state.grid.crs)
        bounds = map_bounds(self.state, self.services.regions)  # built blocks + on-the-fly region (app.region)
        if bounds is None:
            self.crs, self.bounds = WGS84_CRS, WORLD_4326
        else:
            self.bounds = bounds

    @cached_property
    def maxzoom(self) -> int:
        """The TMS zoom whose pixels are at least as fine as the season's, at the centre of the bounds and
        of the built blocks (a wide on-the-fly region around them must not lower their detail)."""
        zoom = self._zoom_for_size(self.state.grid.resolution_m, self.crs, strategy="upper")
        built = self.state.built.bounds_grid
        if built is not None and built != self.bounds:
            zoom = max(zoom, zoom_for_pixel(self.tms, self.crs, built, self.state.grid.resolution_m))
        return zoom

    @cached_property
    def minzoom(self) -> int:
        """0 where something is built (the season overview serves small scales), else the on-the-fly minimum."""
        if len(self.state.built):
            return self.tms.minzoom
        min_zoom = self.services.settings.onthefly_min_zoom
        return min(self.maxzoom, self._zoom_for_size(WEBMERCATOR_WORLD_M / 256 / 2**min_zoom, CRS.from_epsg(3857)))

    @property
    def state(self) -> SeasonState:
        return self.input.state

    @property
    def services(self) -> Services:
        return self.input.services

    def _zoom_for_size(self, size: float, crs: CRS, strategy: str = "auto") -> int:
        """TMS zoom whose pixel is about ``size`` units of ``crs`` at the centre of the bounds."""
        return zoom_for_pixel(self.tms, self.crs, self.bounds, size, crs, strategy)

    # --- the one read ----------------------------------------------------------------------------

    def read_grid(self, crs: CRS, transform: Affine, shape: tuple[int, int], layer: Layer, *,
                  resampling: str = "nearest", reproject: str = "nearest") -> np.ma.MaskedArray:
        """The layer's rasters on the grid, built where built, composited on the fly elsewhere."""
        if shape[0] * shape[1] > MAX_PIXELS or min(shape) < 1:
            raise InvalidInputError(f"output of {shape[1]}x{shape[0]} pixels: ask for at most {MAX_PIXELS} pixels")
        state, settings = self.state, self.services.settings
        layer = self._season_layer(layer)
        record = current_record()
        bounds = array_bounds(shape[0], shape[1], transform)
        blocks, labels, pixel = covering_blocks(state, crs, transform, shape, layer.bands)
        built = labels > 0
        values: dict[Variable, np.ndarray] = {v: blank(v, shape) for v in layer.variables}
        valid = {v: np.zeros(shape, dtype=bool) for v in layer.variables}
        if built.any():
            read = read_built(state, blocks, labels, layer.variables, crs, transform, shape, pixel_size_grid=pixel,
                              resampling=resampling, reproject=reproject)
            for (band, kind), data in read.items():
                values[band, kind] = data
                valid[band, kind] = built & is_valid((band, kind), data)
        source = SOURCE_BUILT if built.all() else None
        if source is None and state.variant:  # a variant is what its command wrote, never composited on the fly
            record.not_built = f"the {state.variant} variant exists only where s2seasons fill ran"
            source = SOURCE_BUILT if built.any() else SOURCE_NOT_BUILT
        if source is None:
            unbuilt = ~built
            if extent_3857_m(crs, bounds) <= onthefly_max_extent_m(settings.onthefly_min_zoom) * 1.001:
                composited = self._composite_into(values, valid, unbuilt, crs, transform, shape, layer,
                                                  record.started, resampling, reproject)
                if composited:
                    source = SOURCE_MIXED if built.any() else SOURCE_ONTHEFLY
                else:
                    record.not_built = NO_SCENES
                    source = SOURCE_BUILT if built.any() else SOURCE_NOT_BUILT
                if settings.queue_unbuilt:
                    self._queue_blocks(crs, bounds)
            else:
                record.not_built = (f"zoom below the on-the-fly minimum (WebMercator {settings.onthefly_min_zoom}); "
                                    f"{int(unbuilt.mean() * 100)}% of this area is not built")
                source = SOURCE_BUILT if built.any() else SOURCE_NOT_BUILT
        record.add_source(source)
        masked = {v: np.ma.MaskedArray(values[v], mask=~valid[v]) for v in layer.variables}
        return evaluate(layer, masked)

    def _season_layer(self, layer: Layer) -> Layer:
        """The layer as this season can give it: the NDVI preset reads the season's real NDVI percentiles (the
        percentile of the per-observation index) where the season was built with them, instead of the NDVI of
        the percentile bands; an index the season does not know is a 4xx."""
        self._check_variant(layer)
        names = [b for b in layer.bands if is_index(b)]
        if names:
            self.services.onthefly.indices_for(self.state, names)
        preset = layer.preset
        if (preset is not None and preset.name == "ndvi" and preset.expression and layer.statistic in STATISTICS
                and layer.expressions == (preset.expression,) and "ndvi" in self.state.indices):
            kind = layer.statistic  # a percentile of NDVI; the medoid's NDVI stays that of its bands
            return Layer((("ndvi", kind),), kind, (f"ndvi_{kind} * {INDEX_SCALE!r}",), preset)
        return layer

    def _check_variant(self, layer: Layer) -> None:
        """The fill flag is a raster of the filled variant, and the filled variant has the bands' percentiles and
        counts and the flag only: anything else is a 4xx saying what to ask for."""
        variant = self.state.variant
        flag = FILL_FLAG in layer.variables
        if flag and variant != FILLED:
            raise InvalidInputError("fill_flag (preset fill-flag) is a layer of the gap-filled variant: add "
                                    f"variant={FILLED} (made by s2seasons fill)")
        if variant:
            other = [f"{b}_{k}" for b, k in layer.variables if (b, k) != FILL_FLAG and (b not in BAND_NAMES
                                                                                        or k not in KINDS)]
            if other:
                raise InvalidInputError(f"the {variant} variant has the bands' p25, p50, p75 and count and fill_flag, "
                                        f"not {', '.join(other)}: ask for those without variant={variant}")

    def _composite_into(self, values: dict[Variable, np.ndarray], valid: dict[Variable, np.ndarray],
                        where: np.ndarray, crs: CRS, transform: Affine, shape: tuple[int, int], layer: Layer,
                        started: float, resampling: str, reproject: str) -> bool:
        """Fill ``where`` from chunks composited on the season grid (`app.onthefly`); False when no
        scene touches any of those pixels (nothing could ever be composited there)."""
        deadline = started + self.services.settings.onthefly_budget_s
        result = self.services.onthefly.read(self.state, crs, transform, shape, layer.variables, where,
                                             deadline=deadline, resampling=resampling, reproject=reproject)
        if not result.covered.any():
            return False
        fill = where & result.covered
        # scenes that could not be read: not kept; a 503 when these pixels got nothing at all
        usable = bool(result.n_acquisitions) and (not result.skipped or any(
            has_data(v, result.values[v][fill]) for v in layer.variables))
        note_scenes(result.scenes_read, result.skipped, usable)
        for variable in layer.variables:
            data = result.values[variable]
            ok = is_valid(variable, data)
            values[variable][fill] = data[fill]
            valid[variable][fill] = ok[fill]
        return True

    def _queue_blocks(self, crs: CRS, bounds: tuple[float, ...]) -> None:
        state = self.state
        bounds_grid = project_bounds(crs, state.grid.crs, bounds)
        if bounds_grid is None:
            return
        try:
            wanted = [b.id for b in state.grid.blocks_in_bounds(bounds_grid, MAX_BLOCKS_PER_TILE)]
        except InvalidInputError:  # a tile never spans that many blocks: nothing sensible to queue
            return
        built = {b.block.id for b in state.built.blocks}
        self.services.queue.add(state.name, [b for b in wanted if b not in built])

    def _image(self, data: np.ma.MaskedArray, layer: Layer, crs: CRS, bounds: tuple[float, ...]) -> ImageData:
        return ImageData(data, bounds=bounds, crs=crs, band_names=layer.output_names,
                         band_descriptions=layer.output_descriptions, assets=[self.state.name],
                         metadata={"season": self.state.name, "source": current_record().source})

    # --- rio-tiler API ---------------------------------------------------------------------------

    def tile(self, tile_x: int, tile_y: int, tile_z: int, tilesize: int | None = None, layer: Layer | None = None,
             buffer: float | None = None, resampling_method: str = "nearest", reproject_method: str = "nearest",
             **kwargs: Any) -> ImageData:
        """A map tile of the TMS; z/x/y outside the matrix set are a `NotFoundError` (404)."""
        layer = check_image_layer(layer or make_layer())
        if not self.tms.minzoom <= tile_z <= self.tms.maxzoom:
            raise NotFoundError(f"zoom {tile_z} is outside {self.tms.id} ({self.tms.minzoom}..{self.tms.maxzoom})")
        matrix = self.tms.matrix(tile_z)
        if not (0 <= tile_x < matrix.matrixWidth and 0 <= tile_y < matrix.matrixHeight):
            raise NotFoundError(f"tile {tile_z}/{tile_x}/{tile_y} is outside {self.tms.id}: at zoom {tile_z} x is "
                                f"0..{matrix.matrixWidth - 1} and y 0..{matrix.matrixHeight - 1}")
        size = tilesize or matrix.tileWidth
        if not 16 <= size <= MAX_TILESIZE:
            raise InvalidInputError(f"tilesize {size}: use 16..{MAX_TILESIZE} (256 or 512)")
        west, south, east, north = self.tms.xy_bounds(Tile(x=tile_x, y=tile_y, z=tile_z))
        width = height = size
        if buffer:
            if buffer * 2 != int(buffer * 2) or buffer > 64:
                raise InvalidInputError(f"buffer {buffer}: use a multiple of 0.5 up to 64")
            rx, ry = (east - west) / size, (north - south) / size
            west, south, east, north = west - rx * buffer, south - ry * buffer, east + rx * buffer, north + ry * buffer
            width = height = size + int(buffer * 2)
        crs = self.tms.rasterio_crs
        transform = from_bounds(west, south, east, north, width, height)
        data = self.read_grid(crs, transform, (height, width), layer, resampling=resampling_method,
                              reproject=reproject_method)
        return self._image(data, layer, crs, (west, south, east, north))

    def part(self, bbox: tuple[float, float, float, float], dst_crs: CRS | None = None,
             bounds_crs: CRS | None = WGS84_CRS, layer: Layer | None = None, max_size: int | None = None,
             height: int | None = None, width: int | None = None, resampling_method: str = "nearest",
             reproject_method: str = "nearest", **kwargs: Any) -> ImageData:
        """A crop of ``bbox`` (in ``bounds_crs``) on a grid of ``dst_crs`` (default: the season's CRS): an image
        of 1 or 3 bands (`read_part` reads any rasters)."""
        return self.read_part(bbox, dst_crs, bounds_crs, check_image_layer(layer or make_layer()), max_size,
                              height, width, resampling_method, reproject_method)

    def read_part(self, bbox: tuple[float, float, float, float], dst_crs: CRS | None, bounds_crs: CRS | None,
                  layer: Layer, max_size: int | None = None, height: int | None = None, width: int | None = None,
                  resampling_method: str = "nearest", reproject_method: str = "nearest") -> ImageData:
        """The rasters of ``layer`` (any number) over ``bbox`` (in ``bounds_crs``) on a grid of ``dst_crs``."""
        dst_crs = dst_crs or self.crs
        bounds_crs = bounds_crs or dst_crs
        west, south, east, north = (float(v) for v in bbox)
        if not all(math.isfinite(v) for v in (west, south, east, north)) or west >= east or south >= north:
            raise InvalidInputError(f"bbox {bbox}: give minx,miny,maxx,maxy with minx < maxx and miny < maxy")
        if bounds_crs.is_geographic and not (-180 <= west and east <= 180 and -90 <= south and north <= 90):
            raise InvalidInputError(f"bbox {bbox} is outside -180..180, -90..90 (degrees)")
        if bounds_crs != dst_crs:
            projected = project_bounds(bounds_crs, dst_crs, (west, south, east, north))
            if projected is None:
                raise InvalidInputError(f"bbox {bbox} cannot be projected to {dst_crs}")
            west, south, east, north = projected
            if west >= east or south >= north:
                raise InvalidInputError(f"bbox {bbox} cannot be projected to {dst_crs}")
        h, w = self._output_size(dst_crs, (west, south, east, north), max_size, height, width)
        transform = from_bounds(west, south, east, north, w, h)
        data = self.read_grid(dst_crs, transform, (h, w), layer, resampling=resampling_method,
                              reproject=reproject_method)
        return self._image(data, layer, dst_crs, (west, south, east, north))

    def _output_size(self, crs: CRS, bounds: tuple[float, float, float, float], max_size: int | None,
                     height: int | None, width: int | None) -> tuple[int, int]:
        west, south, east, north = bounds
        if height and width:
            return int(height), int(width)
        aspect = (east - west) / (north - south)
        if height:
            return int(height), max(1, round(height * aspect))
        if width:
            return max(1, round(width / aspect)), int(width)
        native = self._native_size(crs, bounds)
        limit = max_size or DEFAULT_MAX_SIZE
        scale = min(1.0, limit / max(native))
        return max(1, round(native[0] * scale)), max(1, round(native[1] * scale))

    def _native_size(self, crs: CRS, bounds: tuple[float, float, float, float]) -> tuple[int, int]:
        """Pixels of ``bounds`` at the season's resolution (rows, cols), capped to keep arithmetic sane."""
        west, south, east, north = bounds
        grid_crs = CRS.from_user_input(self.state.grid.crs)
        try:
            projected = project_bounds(crs, grid_crs, (west, south, east, north))
            if projected is None:
                raise ValueError
            gw, gs, ge, gn = projected
            res = self.state.grid.resolution_m
            cols, rows = (ge - gw) / res, (gn - gs) / res
            if not (math.isfinite(cols) and math.isfinite(rows)):
                raise ValueError
        except Exception:
            cols = rows = float(DEFAULT_MAX_SIZE)
        aspect = (east - west) / (north - south)
        longest = min(max(cols, rows, 1.0), 1e6)
        if aspect >= 1:
            return max(1, round(longest / aspect)), max(1, round(longest))
        return max(1, round(longest)), max(1, round(longest * aspect))

    def preview(self, layer: Layer | None = None, max_size: int | None = DEFAULT_MAX_SIZE, height: int | None = None,
                width: int | None = None, dst_crs: CRS | None = None, **kwargs: Any) -> ImageData:
        """The season's built extent (or, when nothing is built, where tiles can come from) as one image."""
        built = self.state.built.bounds_grid
        bounds, crs = (built, _crs(self.state.grid.crs)) if built is not None else (self.bounds, self.crs)
        return self.part(bounds, dst_crs=dst_crs or crs, bounds_crs=crs, layer=layer,
                         max_size=max_size, height=height, width=width, **kwargs)

    def feature(self, shape: dict, dst_crs: CRS | None = None, shape_crs: CRS = WGS84_CRS, layer: Layer | None = None,
                max_size: int | None = None, height: int | None = None, width: int | None = None,
                **kwargs: Any) -> ImageData:
        """The crop of a GeoJSON feature's bounds, masked outside the feature: an image of 1 or 3 bands
        (`read_feature` reads any rasters)."""
        return self.read_feature(shape, dst_crs, shape_crs, check_image_layer(layer or make_layer()), max_size,
                                 height, width, **kwargs)

    def read_feature(self, shape: dict, dst_crs: CRS | None, shape_crs: CRS, layer: Layer, max_size: int | None = None,
                     height: int | None = None, width: int | None = None, **kwargs: Any) -> ImageData:
        """The rasters of ``layer`` (any number) over a GeoJSON feature's bounds, masked outside the feature (pixel
        centres outside it; ``cutline_mask`` says which)."""
        geometry = shape.get("geometry", shape)
        dst_crs = dst_crs or self.crs
        try:
            projected = transform_geom(shape_crs, dst_crs, geometry)
            from shapely.geometry import shape as to_shape

            bounds = to_shape(projected).bounds
        except Exception:
            raise InvalidInputError("the feature is not a valid GeoJSON geometry in the given coord_crs") from None
        image = self.read_part(bounds, dst_crs, dst_crs, layer, max_size, height, width,
                               **{k: v for k, v in kwargs.items() if k in ("resampling_method", "reproject_method")})
        outside = geometry_mask([projected], out_shape=(image.height, image.width), transform=image.transform)
        image.array.mask = image.array.mask | outside[None]
        image.cutline_mask = outside
        return image

    def point(self, lon: float, lat: float, coord_crs: CRS = WGS84_CRS, layer: Layer | None = None,
              point_layer: Layer | None = None, **kwargs: Any) -> PointData:
        """Values of the season's pixel under the point: every band, statistic and count by default.

        Built: the block's pixel. Not built: that pixel composited from the scenes at full
        resolution, exactly as a build of the block would compute it.
        """
        layer = point_layer or layer or all_variables_layer()
        if layer.everything and self.state.variant:  # the bands the variant has, and where its values came from
            held = held_bands(self.state)
            layer = Layer(tuple((band, kind) for band, kind in layer.variables if band in held) + (FILL_FLAG,),
                          layer.statistic, everything=True)
        elif layer.everything:  # the season's other products too: its index percentiles, the QA layer ("n of m clear")
            layer = layer.with_variables(product_variables(self.state))
        check_point(lon, lat, coord_crs)
        grid_crs = CRS.from_user_input(self.state.grid.crs)
        try:
            xs, ys = transform_points(coord_crs, grid_crs, [lon], [lat])
        except Exception:
            raise InvalidInputError(f"point {lon},{lat} cannot be projected to {grid_crs}") from None
        x, y = xs[0], ys[0]
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InvalidInputError(f"point {lon},{lat} is outside the area of {self.state.grid.crs}")
        res = self.state.grid.resolution_m
        x0, y1 = math.floor(x / res) * res, (math.floor(y / res) + 1) * res
        transform = Affine(res, 0.0, x0, 0.0, -res, y1)
        data = self.read_grid(grid_crs, transform, (1, 1), layer)
        return PointData(data[:, 0, 0], band_names=layer.output_names, band_descriptions=layer.output_descriptions,
                         coordinates=(lon, lat), crs=coord_crs, assets=[self.state.name],
                         metadata={"season": self.state.name, "source": current_record().source})

    def info(self) -> Info:
        state = self.state
        layer = all_variables_layer()
        return Info(
            bounds=self.bounds, crs=CRS_to_uri(self.crs) or self.crs.to_wkt(),
            band_metadata=[(name, {}) for name in layer.output_names],
            band_descriptions=list(zip(layer.output_names, layer.output_descriptions)),
            dtype="uint16", nodata_type="Nodata", nodata_value=0.0,
            season=state.name, start_date=state.season.start.isoformat(), end_date=state.season.end.isoformat(),
            grid={"crs": state.grid.crs, "resolution_m": state.grid.resolution_m,
                  "block_size_px": state.grid.block_size_px},
            built_blocks=len(state.built), minzoom=self.minzoom, maxzoom=self.maxzoom,
        )

    def statistics(self, layer: Layer | None = None, max_size: int = DEFAULT_MAX_SIZE,
                   **kwargs: Any) -> dict[str, BandStatistics]:
        image = self.preview(layer=layer, max_size=max_size)
        return image.statistics(**{k: v for k, v in kwargs.items() if k in ("categorical", "categories",
                                                                            "percentiles", "hist_options")})
