"""The season's outputs over its built blocks, rewritten after a build: overview rasters, then the VRTs
(which reference them), then the STAC catalog (which lists both).

Everything here only reads blocks through their manifests (`compositor.index`), so a block that a
build is still writing is invisible until its manifest exists. Every file is written locally and
put in place in one step by the season's store (a rename in a folder, one PUT in an object store):
a reader (GDAL, TiTiler, a STAC client) sees the previous complete file or the new one, never a part.
Per band and kind (p25, p50, p75, count) a season has::

    DATA/<season>/s2l2a_red_p50_30m_<dates>_epsg3035.vrt           # all blocks as one raster (`vrt`)
    DATA/<season>/overview/s2l2a_red_p50_480m_<dates>_epsg3035.tif  # the same extent, 16x coarser (`overview`)
    DATA/<season>/catalog/catalog.json                              # static STAC of the outputs (`outputs_stac`)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from compositor.grid import OutputGrid
from compositor.layout import SeasonLayout
from compositor.outputs_stac import write_output_catalog
from compositor.overview import write_season_overview
from compositor.vrt import write_season_vrts


@dataclass(frozen=True)
class SeasonOutputs:
    """Paths written by `update_season_outputs`."""

    vrts: tuple[PurePath, ...]
    overviews: tuple[PurePath, ...]
    catalog: PurePath


def update_season_outputs(layout: SeasonLayout, grid: OutputGrid, bands: Sequence[str] | None = None) -> SeasonOutputs:
    """Overview rasters, then VRTs (which reference them), then the STAC catalog (which lists both)."""
    overviews = write_season_overview(layout, grid, bands)
    vrts = write_season_vrts(layout, grid, bands)
    catalog = write_output_catalog(layout, grid, bands)
    return SeasonOutputs(tuple(vrts), tuple(overviews), catalog)
