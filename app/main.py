"""The s2seasons tile server: ``create_app(settings)`` wires TiTiler factories around the season reader.

Run it with ``s2seasons serve`` or ``uvicorn --factory app.main:create_app``; settings come from
the environment (``S2SEASONS_*``) when none are given, read once here at start-up.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from titiler.core.factory import ColorMapFactory, TilerFactory, TMSFactory

from app import dependencies as deps
from app.errors import add_exception_handlers
from app.files import files_router
from app.health import health_router
from app.logs import configure_logging
from app.middleware import BodyLimitMiddleware, RequestLogMiddleware, SeasonResponseMiddleware
from app.reader import SeasonReader
from app.seasons import seasons_router
from app.series import series_router
from app.services import Services, make_services
from app.viewer import viewer_router
from app.wms import wms_router
from app.wmts import WMTSExtension
from compositor import __version__
from compositor.read import use_gdal_env
from app.settings import ServerSettings

logger = logging.getLogger(__name__)

# The 413 of a body over deps.MAX_BODY_BYTES (posted GeoJSON): what to change, like every other error.
BODY_TOO_LARGE = (f"request body larger than {deps.MAX_BODY_BYTES / (1 << 20):g} MiB ({deps.MAX_BODY_BYTES} bytes): "
                  f"send fewer features (at most {deps.MAX_FEATURES} per FeatureCollection), simpler geometries "
                  "or fewer properties")


def season_factory() -> TilerFactory:
    """TiTiler's tiler routes over `SeasonReader`, mounted at ``/seasons/{season}``."""
    return TilerFactory(
        reader=SeasonReader,
        path_dependency=deps.season_source,
        layer_dependency=deps.LayerParams,
        dataset_dependency=deps.ReadParams,
        tile_dependency=deps.TileParams,
        img_preview_dependency=deps.PreviewParams,
        img_part_dependency=deps.PartParams,
        stats_dependency=deps.StatisticsParams,
        histogram_dependency=deps.HistogramParams,
        process_dependency=deps.no_post_process,
        colormap_dependency=deps.colormap_params,
        render_dependency=deps.render_params,
        router_prefix="/seasons/{season}",
        add_viewer=False,
        extensions=[WMTSExtension()],
    )


def create_app(settings: ServerSettings | None = None, services: Services | None = None) -> FastAPI:
    """The FastAPI application for ``settings`` (read from the environment when None).

    ``services`` replaces the default services (tests and benchmarks pass their own).
    """
    use_gdal_env()  # GDAL's options for every thread of the server (compositor.read.use_gdal_env)
    settings = settings or ServerSettings()
    services = services or make_services(settings)
    configure_logging(settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.warm_up:
            await run_in_threadpool(services.warm_up)  # before the first request: `Services.warm_up`
        yield
        services.close()

    app = FastAPI(
        title="s2seasons",
        description="Seasonal cloud-free Sentinel-2 percentile mosaics as map tiles: built seasons from their "
                    "COGs, anything else composited on the fly from the source scenes.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.settings = settings

    app.include_router(series_router())  # first: /seasons/{season}/point/... would take /seasons/series/point/...
    tiler = season_factory()
    app.include_router(tiler.router, prefix="/seasons/{season}", tags=["Season tiles"],
                       dependencies=[Depends(deps.check_request_limits)])
    app.include_router(TMSFactory().router, tags=["Tiling schemes"])
    app.include_router(ColorMapFactory().router, tags=["Colormaps"], dependencies=[Depends(deps.check_legend_size)])
    app.include_router(seasons_router())
    app.include_router(files_router())
    app.include_router(wms_router())
    app.include_router(viewer_router())
    app.include_router(health_router(settings))

    add_exception_handlers(app)
    app.add_middleware(SeasonResponseMiddleware, services=services)
    app.add_middleware(BodyLimitMiddleware, max_bytes=deps.MAX_BODY_BYTES, detail=BODY_TOO_LARGE)
    # POST: GeoJSON for /feature and the series statistics, from web maps on other origins too
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD", "POST"],
                       allow_headers=["Content-Type"],
                       expose_headers=["ETag", "X-S2Seasons-Source", "X-S2Seasons-Not-Built",
                                       "X-S2Seasons-Skipped-Scenes", "X-S2Seasons-Scenes", "X-S2Seasons-Season", "X-Request-ID",
                                       "Retry-After", "Content-Range"])
    app.add_middleware(RequestLogMiddleware)
    return app
