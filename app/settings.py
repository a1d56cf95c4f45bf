"""The server's settings: the library's (`compositor.settings.Settings`: where the seasons are, the catalog,
the grid, masking and blending) and the server's own, all read from ``S2SEASONS_<FIELD>``.

Read once by `app.main.create_app` (or given to it) and passed on; nothing reads the environment at import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from compositor.settings import Settings

# Names under /seasons/ that the server's own routes take (``/seasons/series/...``: `app.series`): a custom season
# of that name could never be reached, so the settings refuse it.
RESERVED_SEASON_NAMES = ("series",)


class ServerSettings(Settings):
    """What ``s2seasons serve`` reads: the library's settings plus caches, on-the-fly compositing and logs."""

    catalog_cache_ttl_s: float = Field(600.0, ge=0, description="How long the server keeps a catalog search (s).")
    tile_cache_size: int = Field(2048, ge=0, description="Rendered tiles kept in memory by the server.")
    onthefly_min_zoom: int = Field(9, ge=0, le=24, description="Lowest WebMercator zoom composited on the fly.")
    onthefly_max_scenes: int | None = Field(
        None, ge=1, description="Preview setting, off by default: read at most this many scenes per block on the fly, "
                                "the least cloudy (eo:cloud_cover). Faster, but the tiles are then no longer the "
                                "ones the build will give (a build reads every scene).")
    onthefly_read_threads: int | None = Field(
        None, ge=1, le=64, description="Scene files one on-the-fly chunk reads at once; None (the default): 16 when "
                                       "the scenes are read over the network (http, s3: each request waits a round "
                                       "trip, more threads overlap the waits), 4 for local files (more only cost CPU "
                                       "on 2 cores: measured +18 %).")
    onthefly_chunk_px: int = Field(
        256, ge=64, le=2048, description="Side (pixels of the season grid at the level read) of the square chunks "
                                         "composited on the fly and shared by the tiles over them.")
    onthefly_cache_mb: float = Field(
        512.0, ge=0, description="Memory (MB) for composited on-the-fly chunks kept for the other tiles, zooms "
                                 "and renderings over them (least recently used dropped first); 0 keeps none.")
    onthefly_budget_s: float = Field(20.0, gt=0, description="Time budget of an on-the-fly tile before a 503 (s).")
    onthefly_workers: int = Field(2, ge=1, description="Threads that composite on the fly (built tiles never wait).")
    onthefly_nice: int = Field(
        10, ge=0, le=19, description="How much lower the CPU priority of on-the-fly threads (and the read threads "
                                     "they start) is than the server's (Linux nice steps); 0 keeps it equal.")
    warm_up: bool = Field(True, description="Load the compiled kernels, the map CRSs' coordinate checks and a local "
                                            "catalog before taking requests (a second or two at start; the first "
                                            "tiles then do not all wait on them).")
    queue_unbuilt: bool = Field(False, description="Queue the blocks of on-the-fly tiles for building.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Server logs: 'text' lines or 'json' lines (one object per line, with the request id).")
    catalog_failure_ttl_s: float = Field(
        30.0, ge=0, description="After a catalog search failed, on-the-fly requests of that area answer 503 at "
                                "once for this long before the catalog is asked again (s); 0 asks every time.")
    readyz_timeout_s: float = Field(2.0, gt=0, description="Timeout of /readyz's request to the STAC API (s).")
    store_refresh_s: float = Field(
        30.0, ge=0, description="Serving from an object store (s3://): how often the server lists a season to "
                                "notice a finished build (s); 0 lists on every request.")
    readyz_cache_s: float = Field(5.0, ge=0, description="How long /readyz keeps the result of its checks (s).")

    @field_validator("custom_seasons")
    @classmethod
    def _no_reserved_season_name(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(value) & set(RESERVED_SEASON_NAMES))
        if taken:
            raise ValueError(f"custom season name {taken[0]!r} is taken by the server's /seasons/{taken[0]}/... "
                             "routes: choose another name")
        return value
