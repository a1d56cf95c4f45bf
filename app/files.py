"""The built files of a season over HTTP, byte ranges included (GDAL ``/vsicurl/``, rasterio windows).

URLs mirror the season folder, so the relative paths inside a season VRT resolve to other URLs of
this route: ``/seasons/{season}/files/<path in DATA/<season>/>``. Only the season's own outputs are
served (COGs and VRTs at the top, in ``blocks/<id>/`` and ``overview/``, the STAC catalog's JSON; the same
below ``filled/`` for the gap-filled variant), matched by pattern before any file system access; hidden and
temporary files never are.

Seasons in an object store are not streamed through the server: a request is answered with a
redirect (307) to a presigned URL of the object, valid for `SIGNED_URL_S`, which GDAL, QGIS and
browsers follow (byte ranges included); relative paths in a VRT still resolve against this route.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from app.dependencies import SeasonPath, services_of
from app.errors import NotFoundError
from app.registry import SeasonState
from compositor.bands import FILLED

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,200}"
_ALLOWED = re.compile(
    rf"^(?:(?:blocks/c-?\d{{1,7}}_r-?\d{{1,7}}/(?:build-[A-Za-z0-9-]{{1,60}}/)?|overview/)?{_NAME}\.(?:tif|vrt)|catalog/(?:{_NAME}/){{0,3}}{_NAME}\.json)$"
)
MEDIA_TYPES = {".tif": "image/tiff; application=geotiff; profile=cloud-optimized", ".vrt": "application/xml",
               ".json": "application/json"}


SIGNED_URL_S = 3600.0


def season_file(state: SeasonState, relative: str) -> PurePath:
    """The file of a built season at ``relative``; `NotFoundError` for anything else.

    A block's files are named as in a folder store (``blocks/<id>/<name>.tif``) whatever the store: where
    the block's manifest puts them under its build's prefix (an object store), the name is followed there."""
    missing = f"no file {relative!r} in season {state.name}: see /seasons/{state.name} for the links"
    if not state.has_record or not _ALLOWED.match(relative) or ".." in relative.split("/"):
        raise NotFoundError(missing)
    parts = relative.split("/")
    if parts[0] == "blocks" and len(parts) == 3:
        built = state.built.by_id(parts[1])
        folder = built.folder.relative_to(state.layout.root).as_posix() if built is not None else f"blocks/{parts[1]}"
        relative = f"{folder}/{parts[2]}"
    path = state.layout.store.find(state.layout.root, relative)
    if path is None:
        raise NotFoundError(missing)
    return path


def files_router() -> APIRouter:
    router = APIRouter(tags=["Files"])

    def season_file_route(
        request: Request,
        season: SeasonPath,
        path: Annotated[str, PathParam(description="Path inside the season folder, e.g. blocks/c8_r107/....tif",
                                       max_length=400)],
        services=Depends(services_of),
    ) -> Response:
        variant, _, rest = path.partition("/")
        if variant == FILLED and rest:  # the gap-filled variant's files, laid out as the season's in its folder
            state, path = services.registry.get(season, FILLED), rest
        else:
            state = services.registry.get(season)
        target = season_file(state, path)
        signed = state.layout.store.signed_url(target, SIGNED_URL_S)
        if signed is not None:  # an object store: the client reads it there, ranges and all
            return RedirectResponse(signed, status_code=307,
                                    headers={"Cache-Control": f"private, max-age={int(SIGNED_URL_S) // 2}"})
        return FileResponse(target, media_type=MEDIA_TYPES.get(target.suffix, "application/octet-stream"),
                            headers={"Cache-Control": "public, max-age=60"})

    # GET and HEAD as two operations: one route with both methods gives both the same operation id.
    for method, operation_id, summary in (
        ("GET", "getSeasonFile", "A built COG, VRT or STAC file of a season (Range requests supported)"),
        ("HEAD", "headSeasonFile", "Size and type of a built file of a season"),
    ):
        router.add_api_route("/seasons/{season}/files/{path:path}", season_file_route, methods=[method],
                             operation_id=operation_id, summary=summary, response_class=FileResponse,
                             responses={200: {"content": {"image/tiff": {}, "application/xml": {}}},
                                        206: {"description": "Partial content (Range requests)."},
                                        307: {"description": "Redirect to a presigned URL of the file, for "
                                                             "seasons served from an object store."}})
    return router
