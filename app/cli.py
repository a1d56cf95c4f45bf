"""The ``s2seasons`` command: the library's commands (`compositor.cli`) and the ones that start the server.

``serve`` runs uvicorn with `app.main.create_app`; ``demo`` prepares the demo data
(`compositor.testing.demo`) and serves it. This module is the entry point (``s2seasons = app.cli:run``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from app.settings import ServerSettings
from compositor.settings import read_settings
from compositor.cli import CatalogOpt, cli, fail, setup_logging

__all__ = ["cli", "run"]


@cli.command()
def serve(
    data: Annotated[Optional[str], typer.Option("--data", "-d", help="Where the built seasons are: a folder, or s3://BUCKET/PREFIX (AWS_* environment for credentials and endpoint; new blocks show when their build ends, checked every S2SEASONS_STORE_REFRESH_S). (env S2SEASONS_DATA_DIR)")] = None,
    catalog: CatalogOpt = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve built seasons (and on-the-fly composites elsewhere) as XYZ/WMTS tiles with a web viewer."""
    import os

    import uvicorn

    if data is not None:
        os.environ["S2SEASONS_DATA_DIR"] = str(data)
    if catalog is not None:
        os.environ["S2SEASONS_CATALOG"] = catalog
    try:
        settings = read_settings(ServerSettings)
        from compositor.storage import output_location

        output_location(settings.data_dir)  # a folder or s3://BUCKET/PREFIX, nothing else
    except Exception as exc:  # invalid environment: say which setting
        raise fail(exc) from None
    typer.echo(f"s2seasons viewer on http://{host}:{port}/")
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, log_config=_uvicorn_log_config(settings.log_format))


def _uvicorn_log_config(log_format: str) -> dict:
    """uvicorn's own log lines (errors, exceptions) as JSON objects too with ``log_format=json``; else its default."""
    from uvicorn.config import LOGGING_CONFIG

    if log_format != "json":
        return LOGGING_CONFIG
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
            "handlers": {"json": handler},
            "loggers": {name: {"handlers": ["json"], "level": "WARNING", "propagate": False}
                        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}}


@cli.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Folder for the demo archive and built season.")] = Path("demo-data"),
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port.")] = 8000,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Prepare the demo data, do not start the server.")] = False,
) -> None:
    """Generate the synthetic archive, build part of a season, then serve it with the viewer."""
    from compositor.testing.demo import prepare_demo

    setup_logging(False)
    started = time.perf_counter()
    env = prepare_demo(folder, echo=typer.echo)
    typer.echo(f"demo ready in {time.perf_counter() - started:.0f} s")
    if no_serve:
        return
    import os

    os.environ.update(env)
    serve(data=None, catalog=None, host=host, port=port, workers=1)


def run() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    run()
