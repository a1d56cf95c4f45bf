"""The built wheel, installed (not editable) in a fresh venv, serves the viewer, its static files and tiles.

The wheel is built from a copy of the sources (no build isolation: offline, with this environment's
setuptools) and installed without dependencies in a new venv; a ``.pth`` file after the venv's own
site-packages lends it this environment's dependencies. Everything runs from a temporary folder, so
the checkout cannot be imported: ``app`` and ``compositor`` must come from the wheel.
"""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from compositor.testing.serving import serve_process
from tests.app.helpers import BUILT_LONLAT, GRID, REPO, decode, tile_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
SOURCES = ("pyproject.toml", "README.md", "app", "compositor", "templates", "static")  # what a build reads
PACKAGES = ("app", "compositor")


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    assert done.returncode == 0, f"{command} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout's sources (a build in place would leave build/ there)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(root / "dist"), str(source)], cwd=root, check=True, timeout=120)
    (built,) = (root / "dist").glob("s2seasons-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed and this environment's dependencies behind its own site-packages."""
    root = tmp_path_factory.mktemp("wheel-venv")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], cwd=root, check=True, timeout=120)
    own = Path(run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=root).strip())
    lent = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    # a .pth adds its lines after its own folder: the venv's s2seasons comes first; .pth files in the
    # lent folders (this environment's editable install of the checkout) are not read
    (own / "zz_lent_dependencies.pth").write_text("".join(f"{path}\n" for path in lent))
    return venv


def test_wheel_holds_every_module_and_the_viewer(wheel):
    """Packages are listed in pyproject.toml, not found: a module of a package it forgets would be missing here."""
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {path.relative_to(REPO).as_posix() for package in PACKAGES for path in (REPO / package).rglob("*.py")
               if "__pycache__" not in path.parts}
    assert modules - names == set()
    for folder in ("templates", "static"):
        files = {f"app/{path.relative_to(REPO).as_posix()}" for path in (REPO / folder).rglob("*") if path.is_file()}
        assert files and files - names == set(), folder


def test_installed_wheel_serves_viewer_static_and_tiles(venv, built, tmp_path):
    """``s2seasons serve`` of the venv: ``/``, a static script it references and a built tile."""
    inside = run(venv / "bin" / "python", "-c", "import app, app.viewer, compositor; "
                 "print(app.__file__, compositor.__file__, app.viewer.TEMPLATES_DIR, app.viewer.STATIC_DIR)",
                 cwd=tmp_path).split()
    assert all(Path(path).resolve().is_relative_to(venv.resolve()) for path in inside), inside

    env = {"S2SEASONS_CRS": GRID["crs"], "S2SEASONS_RESOLUTION_M": str(GRID["resolution_m"]),
           "S2SEASONS_BLOCK_SIZE_PX": str(GRID["block_size_px"]), "PYTHONPATH": ""}
    with serve_process([str(venv / "bin" / "s2seasons")], built.data, built.archive.catalog, tmp_path / "server.log",
                       env=env, cwd=tmp_path) as (base, _):
        with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
            page = client.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text
            script = re.search(r'<script type="module" src="([^"]+\.js)"', page.text)
            assert script and script[1].startswith("/static/"), page.text
            js = client.get(script[1])
            assert js.status_code == 200 and "javascript" in js.headers["content-type"] and js.content

            tile = client.get(tile_url(BUILT_LONLAT, 11))
            assert tile.status_code == 200 and tile.headers["content-type"] == "image/png", tile.text
            image = decode(tile.content)
            assert image.shape[0] == 4 and (image[3] == 255).mean() > 0.3  # the built block covers much of it
    log = (tmp_path / "server.log").read_text()
    assert "viewer disabled" not in log, log
