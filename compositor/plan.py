"""Planning a build: validate the request, find the scenes, cut the region into block jobs.

Everything a user can get wrong (season, bands, bbox, grid) is checked here, before any scene is
searched or any file written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from compositor.bands import DEFAULT_PRODUCTS, Index, resolve_bands, resolve_products
from compositor.blend import context_distance_m
from compositor.block import BlockJob
from compositor.catalog import BBox, SceneQuery, check_bbox
from compositor.composite import CompositeOptions
from compositor.errors import InvalidBBoxError
from compositor.grid import OutputGrid, reproject_geometry
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
    query: SceneQuery
    options: CompositeOptions
    products: tuple[str, ...] = DEFAULT_PRODUCTS
    indices: tuple[Index, ...] = ()  # with the product "indices"


@dataclass(frozen=True)
class BuildPlan:
    request: BuildRequest
    layout: SeasonLayout
    jobs: tuple[BlockJob, ...]
    n_scenes: int  # scenes some block reads
    dropped: dict[str, int] = field(default_factory=dict)  # filter -> scenes it dropped

    def describe_scenes(self) -> str:
        """``"scenes: 40 found, 3 dropped by ..., 37 read"``."""
        found = self.n_scenes + sum(self.dropped.values())
        dropped = "".join(f", {n} dropped by {what}" for what, n in self.dropped.items()) or ", none dropped by a filter"
        return f"scenes: {found} found{dropped}, {self.n_scenes} read"


def make_request(settings: Settings, season: str, bbox_4326: Sequence[float], *, bands: Sequence[str] | str | None = None,
                 catalog: str | None = None, data_dir: Path | str | None = None, resolution_m: float | None = None,
                 crs: str | None = None, block_size_px: int | None = None, blend: bool = True,
                 collection: str | None = None, products: Sequence[str] | str | None = None) -> BuildRequest:
    """Check every user input and combine it with the settings; raises `InvalidInputError` subclasses."""
    resolved = resolve_season(season, settings.seasons)
    chosen = resolve_products(products)
    bbox = check_bbox(bbox_4326)
    grid = OutputGrid(crs or settings.crs, resolution_m or settings.resolution_m, block_size_px or settings.block_size_px)
    grid.check_bbox_inside(bbox)
    return BuildRequest(resolved, bbox, resolve_bands(bands), grid, output_location(data_dir or settings.data_dir),
                        SceneQuery.from_settings(settings, catalog=catalog, collection=collection),
                        CompositeOptions.from_settings(settings, blend=blend), chosen,
                        settings.indices if "indices" in chosen else ())


NO_BLOCK = "the area (touching no block of it)"


def plan_build(request: BuildRequest) -> BuildPlan:
    """Blocks intersecting the bbox, each with the scenes whose footprint touches it (read) and
    the scenes within the blend taper's reach of it that do not (their footprints shape its weights
    near its edges: `compositor.blend.context_distance_m`); the plan counts the scenes each filter
    dropped (the settings' and scenes that touch no block)."""
    grid = request.grid
    blocks = grid.blocks_for_bbox(request.bbox_4326)
    if not blocks:
        raise InvalidBBoxError(f"bbox {request.bbox_4326} covers no block of the grid: give a larger bbox")
    if len(blocks) > MAX_BLOCKS:
        raise InvalidBBoxError(f"bbox {request.bbox_4326} covers {len(blocks)} blocks (> {MAX_BLOCKS}): split it")
    reach = context_distance_m(request.options.blend_edge_margin_m, request.options.blend_edge_ramp_m)
    footprints = {b.id: b.footprint_4326() for b in blocks}
    around = {b.id: buffered_footprint_4326(b.bounds, reach, grid.crs) for b in blocks}
    west = min(f.bounds[0] for f in around.values())
    south = min(f.bounds[1] for f in around.values())
    east = max(f.bounds[2] for f in around.values())
    north = max(f.bounds[3] for f in around.values())
    search = request.query.search((west, south, east, north), request.season)
    scenes = search.scenes
    tree = shapely.STRtree([s.footprint for s in scenes])
    layout = SeasonLayout(request.data_dir, request.season, grid.crs, grid.resolution_m)
    jobs = []
    used: set[str] = set()
    for block in blocks:
        inside = set(tree.query(footprints[block.id], predicate="intersects").tolist())
        near = set(tree.query(around[block.id], predicate="intersects").tolist()) - inside
        mine = tuple(scenes[i] for i in sorted(inside))
        nearby = tuple(scenes[i] for i in sorted(near))
        used.update(s.id for s in mine)
        jobs.append(BlockJob(layout, block, mine, request.bands, request.options, nearby=nearby,
                             products=request.products, indices=request.indices))
    dropped = dict(search.dropped)
    unused = sum(1 for s in scenes if s.id not in used)
    if unused:
        dropped[NO_BLOCK] = unused
    logger.info("planned %d blocks over %d scenes for %s (%s)", len(jobs), len(used), request.season.name,
                search.describe_filters())
    return BuildPlan(request, layout, tuple(jobs), len(used), dropped)


def buffered_footprint_4326(bounds: BBox, distance_m: float, crs: str) -> BaseGeometry:
    """A block's outline grown by ``distance_m`` (grid CRS units, m), densified, in EPSG:4326."""
    grown = box(*bounds).buffer(distance_m, quad_segs=4)
    return reproject_geometry(grown.segmentize(distance_m / 2), crs, "EPSG:4326")
