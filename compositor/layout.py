"""Where a season's outputs live and what they are called.

File names follow the original product's pattern (variable, procedure, statistic, support, time
range, area, projection, version), for example::

    DATA/2019-summer/blocks/c2140_r1595/s2l2a_red_p50_30m_20190625..20190912_epsg3035.tif
    DATA/2019-summer/blocks/c2140_r1595/manifest.json        # written last: the block is built
    DATA/2019-summer/blocks/c2140_r1595/build-20261207T221000-ab12cd34/s2l2a_red_p50_...tif  # object store:
                                                             # each build's files under the prefix its manifest names
    DATA/2019-summer/s2l2a_red_p50_30m_20190625..20190912_epsg3035.vrt
    DATA/2019-summer/overview/s2l2a_red_p50_480m_20190625..20190912_epsg3035.tif
    DATA/2019-summer/catalog/catalog.json                       # static STAC of the outputs

``DATA`` is a folder or an object store (``s3://bucket/prefix``); paths are the ones GDAL opens,
``/vsis3/bucket/prefix/2019-summer/...`` for the latter, and `SeasonLayout.store` reads and writes them.

A variant of a season (``filled``: `compositor.fill`) is laid out the same way in a folder of the season's,
its names ending in the variant's, so that a file copied out still says what it is::

    DATA/2019-summer/filled/blocks/c2140_r1595/s2l2a_red_p50_30m_20190625..20190912_epsg3035_filled.tif
    DATA/2019-summer/filled/s2l2a_fill_flag_30m_20190625..20190912_epsg3035_filled.vrt
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePath

from pyproj import CRS

from compositor.bands import COUNT, STATISTICS
from compositor.seasons import Season
from compositor.storage import MANIFEST, OutputStore, open_store

OUTPUT_KINDS: tuple[str, ...] = (*STATISTICS, COUNT)
__all__ = ["MANIFEST", "OUTPUT_KINDS", "SeasonLayout"]


def _epsg_label(crs: str) -> str:
    code = CRS.from_user_input(crs).to_epsg()
    return f"epsg{code}" if code else "customcrs"


def _resolution_label(resolution_m: float) -> str:
    return f"{resolution_m:g}m"


@dataclass(frozen=True)
class SeasonLayout:
    """Paths of one season's outputs under ``data_dir`` (a folder, or an ``s3://`` URL); of its ``variant``
    (``filled``) when one is named."""

    data_dir: Path | str
    season: Season
    crs: str
    resolution_m: float
    variant: str = ""

    @property
    def store(self) -> OutputStore:
        return open_store(self.data_dir)

    @property
    def root(self) -> PurePath:
        name = self.season.name
        return self.store.path(name, self.variant) if self.variant else self.store.path(name)

    def with_variant(self, variant: str) -> SeasonLayout:
        """The same season's ``variant`` ("" for the season's own outputs)."""
        return replace(self, variant=variant)

    @property
    def blocks_dir(self) -> PurePath:
        return self.root / "blocks"

    @property
    def overview_dir(self) -> PurePath:
        return self.root / "overview"

    @property
    def catalog_dir(self) -> PurePath:
        return self.root / "catalog"

    def block_dir(self, block_id: str) -> PurePath:
        return self.blocks_dir / block_id

    def manifest_path(self, block_id: str) -> PurePath:
        return self.block_dir(block_id) / MANIFEST

    def stem(self, band: str, kind: str, resolution_m: float | None = None) -> str:
        """``s2l2a_{band}_{kind}_{res}m_{start}..{end}_{epsg}`` for a band and p25/p50/p75/count (``_{variant}``
        after it for a variant's)."""
        res = _resolution_label(resolution_m or self.resolution_m)
        dates = f"{self.season.start:%Y%m%d}..{self.season.end:%Y%m%d}"
        variant = f"_{self.variant}" if self.variant else ""
        return f"s2l2a_{band}_{kind}_{res}_{dates}_{_epsg_label(self.crs)}{variant}"

    def block_name(self, band: str, kind: str) -> str:
        """The file name of a block's raster of one band and kind (its folder: `compositor.index.BuiltBlock`)."""
        return f"{self.stem(band, kind)}.tif"

    def block_file(self, block_id: str, band: str, kind: str) -> PurePath:
        """Where a block's raster is in a block folder without a build prefix (a folder store's)."""
        return self.block_dir(block_id) / self.block_name(band, kind)

    def vrt_file(self, band: str, kind: str) -> PurePath:
        return self.root / f"{self.stem(band, kind)}.vrt"

    def overview_file(self, band: str, kind: str, resolution_m: float) -> PurePath:
        return self.overview_dir / f"{self.stem(band, kind, resolution_m)}.tif"
