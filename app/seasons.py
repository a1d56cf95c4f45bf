"""JSON endpoints around the tiles: the seasons (dates, built coverage, links), presets, the build queue."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from shapely.geometry import mapping
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.dependencies import SeasonPath, services_of
from app.presets import DEFAULT_PRESET, PRESETS
from app.queue import block_bbox_4326
from app.registry import SeasonState
from app.services import Services
from compositor.bands import BAND_NAMES, FILL_FLAG, FILLED, QA_VARIABLE
from compositor.layout import OUTPUT_KINDS

MAP_TMS = ("WebMercatorQuad", "EuropeanETRS89_LAEAQuad")
GEOJSON_SIMPLIFY_DEG = 0.001


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


COVERAGE_OF_BBOXES = "build-bboxes"  # the grid blocks of the bboxes the season's builds were asked for
COVERAGE_OF_BUILT_EXTENT = "built-extent"  # the rectangle of grid blocks spanned by the built ones


def _coverage_percent(state: SeasonState) -> tuple[float | None, str | None]:
    """Built share of the season's requested region, and what it is a share of (`COVERAGE_OF_*`): the
    blocks of the bboxes its builds asked for when ``season.json`` records them, else the rectangle of
    grid blocks spanned by the built ones. Neither is the area tiles can come from (on the fly: the
    catalog's scenes, `app.region`): 100 % means the builds asked for are done."""
    if not len(state.built):
        return None, None
    built_ids = {b.block.id for b in state.built.blocks}
    requested: set[str] = set()
    try:
        record = state.record
        for bbox in record.get("bboxes_4326", []) or ([record["bbox_4326"]] if "bbox_4326" in record else []):
            requested |= {b.id for b in state.grid.blocks_for_bbox(tuple(bbox))}
    except (OSError, ValueError, KeyError, TypeError):
        requested = set()
    if requested:
        return round(100.0 * len(built_ids & requested) / len(requested), 2), COVERAGE_OF_BBOXES
    cols = [b.block.col for b in state.built.blocks]
    rows = [b.block.row for b in state.built.blocks]
    rectangle = (max(cols) - min(cols) + 1) * (max(rows) - min(rows) + 1)
    return round(100.0 * len(built_ids) / rectangle, 2), COVERAGE_OF_BUILT_EXTENT


def season_links(base: str, state: SeasonState) -> dict[str, Any]:
    root = f"{base}/seasons/{state.name}"
    preset = urlencode({"preset": DEFAULT_PRESET})
    links: dict[str, Any] = {
        "self": root,
        "tilejson": {tms: f"{root}/{tms}/tilejson.json?{preset}" for tms in MAP_TMS},
        "wmts": {tms: f"{root}/{tms}/WMTSCapabilities.xml" for tms in MAP_TMS},
        "xyz": f"{root}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?{preset}",
        "xyz_presets": {name: f"{root}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?preset={name}"
                        for name, p in PRESETS.items() if not p.variant},
        "point": f"{root}/point/{{lon}},{{lat}}",
        "bbox": f"{root}/bbox/{{minx}},{{miny}},{{maxx}},{{maxy}}.png?{preset}",
        "preview": f"{root}/preview.png?{preset}",
        "blocks_geojson": f"{root}/blocks.geojson",
        "queue": f"{root}/queue",
    }
    if state.has_record:
        layout = state.layout
        files = f"{root}/files"
        variables = [(b, k) for b in BAND_NAMES for k in OUTPUT_KINDS] + [QA_VARIABLE]
        vrts = {f"{b}_{k}": layout.vrt_file(b, k).name for b, k in variables}
        links["vrt"] = {key: f"{files}/{name}" for key, name in vrts.items() if name in state.files}
        overviews = {f"{b}_{k}": f"overview/{layout.overview_file(b, k, state.overview_resolution_m()).name}"
                     for b, k in variables}
        links["overview"] = {key: f"{files}/{name}" for key, name in overviews.items() if name in state.files}
        links["cog_template"] = f"{files}/blocks/{{block}}/{layout.stem('{band}', '{statistic}')}.tif"
        if "catalog/catalog.json" in state.files:
            links["stac"] = f"{files}/catalog/catalog.json"
    if FILLED in state.products:
        links[FILLED] = filled_links(root, state)
    return links


def filled_links(root: str, state: SeasonState) -> dict[str, Any]:
    """The gap-filled variant (``s2seasons fill``): its tiles (``variant=filled``), the fill flag as a tile layer,
    WMTS, points, and its own VRTs and STAC catalog."""
    files = f"{root}/files/{FILLED}"
    filled = state.layout.with_variant(FILLED)
    variant = urlencode({"variant": FILLED})
    return {
        "xyz": f"{root}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?{variant}&preset={DEFAULT_PRESET}",
        "xyz_flag": f"{root}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?{variant}&preset=fill-flag",
        "wmts": {tms: f"{root}/{tms}/WMTSCapabilities.xml?{variant}" for tms in MAP_TMS},
        "point": f"{root}/point/{{lon}},{{lat}}?{variant}",
        "vrt_template": f"{files}/{filled.stem('{band}', '{statistic}')}.vrt",
        "flag_vrt": f"{files}/{filled.vrt_file(*FILL_FLAG).name}",
        "stac": f"{files}/catalog/catalog.json",
    }


def describe_season(base: str, state: SeasonState) -> dict[str, Any]:
    built = state.built
    record = state.record.get(FILLED) if FILLED in state.products else None
    footprint = built.footprint_4326
    n_data = sum(1 for b in built.blocks if b.status == "built")
    coverage, coverage_of = _coverage_percent(state)
    return {
        "name": state.name,
        "start_date": state.season.start.isoformat(),
        "end_date": state.season.end.isoformat(),
        "days": state.season.days,
        "grid": {"crs": state.grid.crs, "resolution_m": state.grid.resolution_m,
                 "block_size_px": state.grid.block_size_px},
        "products": list(state.products),  # what its builds made (bands, indices, medoid, qa) and filled (its fill)
        "built": {
            "blocks": len(built),
            "blocks_with_data": n_data,
            "empty_blocks": len(built) - n_data,
            "coverage_percent": coverage,
            "coverage_of": coverage_of,  # what coverage_percent is a share of: build-bboxes or built-extent
            "bounds_4326": list(footprint.bounds) if footprint is not None else None,
            "geojson": mapping(footprint.simplify(GEOJSON_SIMPLIFY_DEG)) if footprint is not None else None,
        },
        "filled": ({key: record.get(key) for key in ("min_observations", "neighbours", "used", "rule", "filled_at")}
                   if isinstance(record, dict) else None),  # the gap-filled variant (s2seasons fill), if made
        "links": season_links(base, state),
    }


def blocks_geojson(state: SeasonState) -> dict[str, Any]:
    features = [
        {"type": "Feature", "id": b.block.id, "geometry": mapping(b.block.footprint_4326(densify=4)),
         "properties": {"block": b.block.id, "status": b.status, "bands": sorted(b.bands)}}
        for b in state.built.blocks
    ]
    return {"type": "FeatureCollection", "features": features}


def seasons_router() -> APIRouter:
    router = APIRouter(tags=["Seasons"])

    @router.get("/seasons", summary="Built seasons with dates, coverage and links; any other season is on the fly")
    def list_seasons(request: Request, services: Services = Depends(services_of)) -> dict[str, Any]:
        base = _base(request)
        settings = services.settings
        return {
            "seasons": [describe_season(base, services.registry.get(name))
                        for name in services.registry.built_season_names()],
            "on_the_fly": {
                "seasons": "any calendar season YEAR-winter|spring|summer|autumn"
                           + (", or " + ", ".join(sorted(settings.seasons)) if settings.seasons else ""),
                "min_zoom": settings.onthefly_min_zoom,
                "max_scenes": settings.onthefly_max_scenes,
                "budget_s": settings.onthefly_budget_s,
                "example": f"{base}/seasons/{{season}}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png",
            },
            "presets": f"{base}/presets",
        }

    @router.get("/seasons/{season}", summary="One season: dates, grid, built coverage and links")
    def get_season(request: Request, season: SeasonPath, services: Services = Depends(services_of)) -> dict[str, Any]:
        return describe_season(_base(request), services.registry.get(season))

    @router.get("/seasons/{season}/blocks.geojson", summary="The built blocks of a season as GeoJSON")
    def get_blocks(season: SeasonPath, services: Services = Depends(services_of)) -> JSONResponse:
        return JSONResponse(blocks_geojson(services.registry.get(season)), media_type="application/geo+json")

    @router.get("/seasons/{season}/queue", summary="Blocks that on-the-fly requests asked to be built")
    def get_queue(season: SeasonPath, services: Services = Depends(services_of)) -> dict[str, Any]:
        state = services.registry.get(season)
        built = {b.block.id for b in state.built.blocks}
        ids = [i for i in services.queue.blocks(state.name) if i not in built]
        blocks = []
        for block_id in ids:
            bbox = block_bbox_4326(state.grid.block_by_id(block_id))
            bbox_text = ",".join(f"{v:g}" for v in bbox)
            blocks.append({"block": block_id, "bbox_4326": list(bbox),
                           "command": (f"s2seasons build --season {state.name} --bbox {bbox_text} "
                                       f"--crs {state.grid.crs} --resolution {state.grid.resolution_m:g} "
                                       f"--block-size {state.grid.block_size_px}")})
        return {"season": state.name, "enabled": services.settings.queue_unbuilt, "blocks": blocks}

    @router.get("/presets", summary="Named renderings with their bands or expression and default styling")
    def list_presets(request: Request) -> dict[str, Any]:
        return {"default": DEFAULT_PRESET, "presets": [p.as_json() for p in PRESETS.values()]}

    return router
