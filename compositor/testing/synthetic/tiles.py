"""Sentinel-2 MGRS tiles: 109.8 km squares in their UTM zone, named like the real ones.

A tile is anchored on a 100 km MGRS square: its upper-left corner is 20 m west of the square's
western edge and 20 m north of its northern edge, and it reaches 9.78 km beyond the square to
the east and south (29RKH: x 199980..309780, y 2690220..2800020), so neighbouring tiles overlap
by 9.8 km. Tiles of two UTM zones overlap across the zone boundary, as in the real grid: a zone
keeps every tile that touches its 6 degree strip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyproj import Transformer
from shapely.geometry import Polygon, box

from compositor.errors import InvalidInputError

TILE_SIZE_M = 109_800.0
SQUARE_M = 100_000.0
_EDGE_M = 20.0
_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # 8 deg latitude bands from 80 S
_COLUMN_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"


@dataclass(frozen=True, order=True)
class MgrsTile:
    """One Sentinel-2 tile of the northern hemisphere: UTM ``zone``, 100 km square (``east``, ``north``)."""

    zone: int
    east: int  # easting of the square's western edge / 100 km (1..8)
    north: int  # northing of the square's southern edge / 100 km
    band: str  # MGRS latitude band letter

    @property
    def square(self) -> str:
        """The two 100 km square letters (column, row) of the AA lettering scheme."""
        column = _COLUMN_SETS[(self.zone - 1) % 3][self.east - 1]
        row = _ROW_LETTERS[(self.north + (5 if self.zone % 2 == 0 else 0)) % 20]
        return column + row

    @property
    def code(self) -> str:
        """Like ``32UPU``."""
        return f"{self.zone:02d}{self.band}{self.square}"

    @property
    def epsg(self) -> int:
        return 32600 + self.zone

    @property
    def left_m(self) -> float:
        """Western edge of the tile (m, UTM easting)."""
        return self.east * SQUARE_M - _EDGE_M

    @property
    def top_m(self) -> float:
        """Northern edge of the tile (m, UTM northing)."""
        return (self.north + 1) * SQUARE_M + _EDGE_M

    def transform(self, pixel_size_m: float) -> tuple[float, float, float, float, float, float]:
        """The tile's geotransform (rasterio/STAC ``proj:transform`` order) at ``pixel_size_m``."""
        return (pixel_size_m, 0.0, self.left_m, 0.0, -pixel_size_m, self.top_m)

    def polygon_utm(self) -> Polygon:
        """The tile square in its own UTM CRS (m)."""
        return box(self.left_m, self.top_m - TILE_SIZE_M, self.left_m + TILE_SIZE_M, self.top_m)

    def centre_4326(self) -> tuple[float, float]:
        """(lon, lat) of the tile's centre."""
        half = TILE_SIZE_M / 2
        to_4326 = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        lon, lat = to_4326.transform(self.left_m + half, self.top_m - half)
        return float(lon), float(lat)

    def polygon_4326(self) -> Polygon:
        """The tile outline in EPSG:4326 (lon, lat), densified so that its curved edges stay true."""
        ring = np.asarray(self.polygon_utm().segmentize(TILE_SIZE_M / 16).exterior.coords)
        lon, lat = Transformer.from_crs(self.epsg, 4326, always_xy=True).transform(ring[:, 0], ring[:, 1])
        return Polygon(np.column_stack([lon, lat]))


def check_pixel_size(pixel_size_m: float) -> int:
    """Pixels along a tile side at ``pixel_size_m`` ("10 m" bands); raises unless 20 m bands fit too."""
    n_double = TILE_SIZE_M / (2.0 * pixel_size_m)
    if pixel_size_m <= 0 or abs(n_double - round(n_double)) > 1e-9:
        raise InvalidInputError(
            f"pixel_size_m={pixel_size_m} does not divide the 109.8 km tile into whole 20 m-band pixels: "
            "use a size that divides 54900 m, e.g. 10, 20, 50, 60, 100, 150, 300 or 450"
        )
    return int(round(TILE_SIZE_M / pixel_size_m))


def latitude_band(lat_deg: float) -> str:
    """The MGRS latitude band letter of a latitude (deg, -80..84)."""
    index = int(np.floor((min(max(lat_deg, -80.0), 83.999) + 80.0) / 8.0))
    return _BANDS[min(index, len(_BANDS) - 1)]


def utm_zone(lon_deg: float) -> int:
    """The UTM zone number of a longitude (deg), without the Norway/Svalbard exceptions."""
    return int(np.floor((lon_deg + 180.0) / 6.0)) % 60 + 1


def tiles_covering(region_4326: Polygon) -> tuple[MgrsTile, ...]:
    """Every tile that intersects ``region_4326`` and touches its zone's strip, sorted by code."""
    lon0, _, lon1, _ = region_4326.bounds
    tiles = []
    for zone in range(utm_zone(lon0 - 3.0), utm_zone(lon1 + 3.0) + 1):
        strip = box(-180.0 + 6.0 * (zone - 1), -80.0, -180.0 + 6.0 * zone, 84.0)
        tiles.extend(t for t in _zone_candidates(zone, region_4326) if t.polygon_4326().intersects(strip))
    return tuple(sorted(tiles, key=lambda t: t.code))


def _zone_candidates(zone: int, region_4326: Polygon) -> list[MgrsTile]:
    to_utm = Transformer.from_crs(4326, 32600 + zone, always_xy=True)
    ring = np.asarray(region_4326.segmentize(0.05).exterior.coords)
    x, y = to_utm.transform(ring[:, 0], ring[:, 1])
    region_utm = Polygon(np.column_stack([x, y]))
    xmin, ymin, xmax, ymax = region_utm.bounds
    found = []
    for east in range(max(1, int(xmin // SQUARE_M) - 1), min(8, int(xmax // SQUARE_M)) + 1):
        for north in range(int(ymin // SQUARE_M) - 1, int(ymax // SQUARE_M) + 1):
            probe = MgrsTile(zone, east, north, "X")
            if not probe.polygon_utm().intersects(region_utm):
                continue
            centre_lat = to_utm.transform((east + 0.5) * SQUARE_M, (north + 0.5) * SQUARE_M, direction="INVERSE")[1]
            found.append(MgrsTile(zone, east, north, latitude_band(centre_lat)))
    return found

