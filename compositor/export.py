"""The byte export: the original product's byte-scaled variant of a built season.

A uint8 COG per block, band and kind, and a VRT over them, written to a folder of the user's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path, PurePath

import numpy as np
import rasterio

from compositor.bands import COUNT_KINDS
from compositor.cog import write_cog_atomically
from compositor.describe import BYTE_NODATA, band_is_medoid, byte_spec, is_index, overview_resampling
from compositor.grid import OutputGrid
from compositor.index import built_blocks, mosaic_extent, season_rasters
from compositor.layout import SeasonLayout
from compositor.storage import open_store
from compositor.vrt import write_vrt

logger = logging.getLogger(__name__)

BYTE_REFLECTANCE_MAX = 250
BYTE_COUNT_MAX = 254
BYTE_DN_STEP = 40  # DN per byte step: reflectance 0.004 = 40 DN at scale 0.0001

Progress = Callable[[int, int], None]


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
        writer.write(count_to_byte(data) if kind in COUNT_KINDS else reflectance_to_byte(data), 1)

    return fill


def export_byte(layout: SeasonLayout, grid: OutputGrid, out_dir: Path, bands: Sequence[str] | None = None,
                progress: Progress | None = None) -> list[Path]:
    """The byte-scaled variant of the original product: a uint8 COG per block, band and kind, plus a VRT.

    Mapping (also in each file's band description and ``byte_mapping`` tag):
    reflectance p25/p50/p75: ``value = clip(round(DN / 40), 0, 250)`` with round half up, i.e.
    ``clip(round(reflectance * 250), 0, 250)``; ``reflectance = value * 0.004`` (scale 0.004);
    255 = nodata (DN 0). count (and the QA layer's observations seen): ``min(count, 254)``, 255 = nodata
    (outside the built blocks).
    Files: ``out_dir/blocks/<block_id>/<stem>_byte.tif`` and ``out_dir/<stem>_byte.vrt`` with the
    season's stems. ``progress(done, total)`` is called after each block file. Returns the VRTs
    followed by the block files.
    """
    blocks = built_blocks(layout, grid, check_files=True)
    if not blocks:
        logger.warning("season %s has no built block: nothing to export", layout.season.name)
        return []
    extent = mosaic_extent(blocks)
    out = open_store(out_dir)
    # the byte export is the original product's: bands and counts (and the QA layer), not indices or the medoid
    jobs = [job for job in season_rasters(layout, blocks, bands) if not is_index(job[0]) and not band_is_medoid(job[1])]
    total = sum(len(sources) for _, _, sources in jobs)
    done = 0
    vrts: list[Path] = []
    files: list[Path] = []
    for band, kind, sources in jobs:
        spec = byte_spec(layout.season, band, kind)
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
