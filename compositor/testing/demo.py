"""The demo: a synthetic archive, part of a season built, the rest left for on-the-fly tiles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compositor.settings import Settings

DEMO_SEASON = "2022-winter"
DEMO_BBOX_4326 = (11.0, 47.6, 12.9, 48.2)
# The western part is built; the east stays unbuilt so that the viewer shows on-the-fly tiles.
DEMO_BUILD_BBOX_4326 = (11.0, 47.6, 11.9, 48.2)
DEMO_RESOLUTION_M = 100.0
DEMO_BLOCK_PX = 256


def prepare_demo(folder: Path, echo: Callable[[str], None] = print) -> dict[str, str]:
    """Generate (once) and build the demo data under ``folder``; returns the server's environment."""
    from compositor.build import run_build
    from compositor.progress import Progress
    from compositor.testing.synthetic import generate_archive

    archive = folder / "archive"
    catalog = archive / "catalog.json"
    data = folder / "data"
    if not catalog.exists():
        echo(f"generating the synthetic Sentinel-2 archive in {archive} ...")
        with Progress("scenes", unit="scene") as bar:
            generate_archive(archive, seasons=(DEMO_SEASON,), bbox_4326=DEMO_BBOX_4326,
                             pixel_size_m=DEMO_RESOLUTION_M, workers=0, progress=bar.report)
    settings = Settings(data_dir=data, catalog=str(catalog), resolution_m=DEMO_RESOLUTION_M,
                        block_size_px=DEMO_BLOCK_PX)
    echo(f"building {DEMO_SEASON} over {DEMO_BUILD_BBOX_4326} into {data} ...")
    summary = run_build(settings, DEMO_SEASON, DEMO_BUILD_BBOX_4326, echo=echo, products="indices,qa")
    echo(summary.describe())
    return {
        "S2SEASONS_DATA_DIR": str(data.resolve()),
        "S2SEASONS_CATALOG": str(catalog.resolve()),
        "S2SEASONS_RESOLUTION_M": str(DEMO_RESOLUTION_M),
        "S2SEASONS_BLOCK_SIZE_PX": str(DEMO_BLOCK_PX),
    }
