"""Planning a build: validate the request, find the scenes, cut the region into block jobs.

Everything a user can get wrong (season, bands, bbox, grid) is checked here, before any scene is
searched or any file written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


from compositor.bands import resolve_bands
from compositor.block import BlockJob
from compositor.catalog import BBox, Scene, check_bbox, find_scenes
from compositor.composite import CompositeOptions
from compositor.errors import InvalidBBoxError
from compositor.grid import OutputGrid
from compositor.layout import SeasonLayout
from compositor.seasons import Season, resolve_season
from compositor.settings import Settings
from compositor.storage import output_location

logger = logging.getLogger(__name__)

MAX_BLOCKS = 100_000


@dataclass(frozen=True)
class BuildRequest:
    """A validated build request: what to build, where, and how."""

    season: Season
    bbox_4326: BBox
    bands: tuple[str, ...]
    grid: OutputGrid
    data_dir: Path | str  # a folder, or an object store URL (s3://bucket/prefix)
    catalog: str
    options: CompositeOptions


@dataclass(frozen=True)
class BuildPlan:
    request: BuildRequest
    layout: SeasonLayout
    jobs: tuple[BlockJob, ...]
    n_scenes: int


def make_request(settings: Settings, season: str, bbox_4326: Sequence[float], *, bands: Sequence[str] | str | None = None,
                 catalog: str | None = None, data_dir: Path | str | None = None, resolution_m: float | None = None,
                 crs: str | None = None, block_size_px: int | None = None, blend: bool = True) -> BuildRequest:
    """Check every user input and combine it with the settings; raises `InvalidInputError` subclasses."""
    resolved = resolve_season(season, settings.seasons)
    bbox = check_bbox(bbox_4326)
    grid = OutputGrid(crs or settings.crs, resolution_m or settings.resolution_m, block_size_px or settings.block_size_px)
    grid.check_bbox_inside(bbox)
    options = CompositeOptions(invalid_classes=settings.invalid_scl_classes, mask_buffer_m=settings.mask_buffer_m,
                               blend=blend, blend_power=settings.blend_power)
    return BuildRequest(resolved, bbox, resolve_bands(bands), grid, output_location(data_dir or settings.data_dir),
                        str(catalog or settings.catalog), options)


def plan_build(request: BuildRequest, settings: Settings,
               find: Callable[..., list[Scene]] = find_scenes) -> BuildPlan:
    """Blocks intersecting the bbox, each with the scenes whose footprint touches it."""
    grid = request.grid
    blocks = grid.blocks_for_bbox(request.bbox_4326)
    if not blocks:
        raise InvalidBBoxError(f"bbox {request.bbox_4326} covers no block of the grid: give a larger bbox")
    if len(blocks) > MAX_BLOCKS:
        raise InvalidBBoxError(f"bbox {request.bbox_4326} covers {len(blocks)} blocks (> {MAX_BLOCKS}): split it")
    footprints = {b.id: b.footprint_4326() for b in blocks}
    west = min(f.bounds[0] for f in footprints.values())
    south = min(f.bounds[1] for f in footprints.values())
    east = max(f.bounds[2] for f in footprints.values())
    north = max(f.bounds[3] for f in footprints.values())
    scenes = find(request.catalog, (west, south, east, north), request.season, collection=settings.collection,
                  max_cloud_cover=settings.max_cloud_cover, timeout_s=settings.stac_timeout_s)
    layout = SeasonLayout(request.data_dir, request.season, grid.crs, grid.resolution_m)
    jobs = []
    for block in blocks:
        area = footprints[block.id]
        mine = tuple(s for s in scenes if s.footprint.intersects(area))
        jobs.append(BlockJob(layout, block, mine, request.bands, request.options))
    logger.info("planned %d blocks over %d scenes for %s", len(jobs), len(scenes), request.season.name)
    return BuildPlan(request, layout, tuple(jobs), len(scenes))
