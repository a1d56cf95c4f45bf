"""The batch build on the synthetic archive: outputs, accuracy, stripes, seams, resumption, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds
from rio_cogeo.cogeo import cog_validate

from compositor.bands import BAND_NAMES
from compositor.errors import BandNotFoundError, InvalidBBoxError, SeasonNotFoundError
from compositor.testing.synthetic.truth import homogeneous
from tests.conftest import (
    SYNTH_BBOX,
    SYNTH_BLOCK_PX,
    SYNTH_RESOLUTION_M,
    SYNTH_SEASON,
    build_synthetic,
)


def pixel_checksums(data: Path) -> dict[str, str]:
    """sha256 of the pixels (not the bytes) of every block COG of the season."""
    sums = {}
    for path in sorted((data / SYNTH_SEASON / "blocks").glob("*/*.tif")):
        if path.parent.name.startswith("."):  # temporary folders of killed builds are not outputs
            continue
        with rasterio.open(path) as src:
            sums[f"{path.parent.name}/{path.name}"] = hashlib.sha256(src.read(1).tobytes()).hexdigest()
    return sums


def season_raster(data: Path, band: str, kind: str = "p50") -> rasterio.DatasetReader:
    (vrt,) = (data / SYNTH_SEASON).glob(f"s2l2a_{band}_{kind}_*.vrt")
    return rasterio.open(vrt)


def read_on_truth_grid(data: Path, archive: Path, band: str) -> tuple[np.ndarray, np.ndarray, rasterio.DatasetReader]:
    """(estimate, truth) P50 DN on the truth grid (same CRS, resolution and alignment as the build)."""
    truth_src = rasterio.open(archive / "truth" / SYNTH_SEASON / f"{band}_p50.tif")
    with season_raster(data, band) as src:
        assert src.res == truth_src.res and src.crs == truth_src.crs
        est = src.read(1, window=from_bounds(*truth_src.bounds, transform=src.transform), boundless=True)
    return est.astype(np.float64), truth_src.read(1).astype(np.float64), truth_src


# --- outputs ----------------------------------------------------------------------------------


def test_every_block_output_is_a_valid_described_cog(built_season):
    blocks = sorted(p for p in (built_season / SYNTH_SEASON / "blocks").iterdir() if not p.name.startswith("."))
    assert len(blocks) >= 2
    for block in blocks:
        manifest = json.loads((block / "manifest.json").read_text())
        assert manifest["status"] == "built" and manifest["scenes"]
        tifs = sorted(block.glob("*.tif"))
        assert len(tifs) == 6 * 4 and sorted(p.name for p in tifs) == manifest["files"]
        for path in tifs:
            valid, errors, _ = cog_validate(str(path))
            assert valid, (path, errors)
            with rasterio.open(path) as src:
                kind = path.name.split("_")[2]
                assert src.dtypes[0] == "uint16" and src.crs.to_epsg() == 3035 and src.res == (300.0, 300.0)
                assert src.overviews(1), path
                assert src.descriptions[0]
                tags = src.tags()
                assert tags["season"] == SYNTH_SEASON and tags["start_date"] == "2022-06-25"
                assert tags["end_date"] == "2022-09-12" and int(tags["n_scenes"]) == len(manifest["scenes"])
                assert tags["software"].startswith("s2seasons ")
                if kind == "count":
                    assert src.nodata is None
                else:
                    assert src.nodata == 0 and src.scales[0] == pytest.approx(1e-4)


def test_file_names_follow_the_product_pattern(built_season):
    names = {p.name for p in (built_season / SYNTH_SEASON).glob("*.vrt")}
    assert "s2l2a_nir_p25_300m_20220625..20220912_epsg3035.vrt" in names
    assert len(names) == 24


def test_gdal_reads_the_season_vrt_across_block_edges(built_season):
    blocks = [p for p in (built_season / SYNTH_SEASON / "blocks").iterdir() if not p.name.startswith(".")]
    with season_raster(built_season, "red") as src:
        full = src.read(1)
        assert src.nodata == 0 and (full > 0).sum() > 10_000
        for block in blocks:  # every block file sits in the VRT where its bounds say
            (path,) = block.glob("s2l2a_red_p50_*.tif")
            with rasterio.open(path) as part:
                window = from_bounds(*part.bounds, transform=src.transform).round_offsets().round_lengths()
                assert np.array_equal(src.read(1, window=window), part.read(1))
        # A window straddling a vertical block edge reads both blocks in one call.
        span = SYNTH_BLOCK_PX
        edge = int(round(src.width / 2 / span)) * span if src.width > span else span
        rows = np.flatnonzero((full[:, edge - 1] > 0) & (full[:, edge] > 0))
        assert rows.size
        window = rasterio.windows.Window(edge - 8, int(rows[0]), 16, int(rows[-1] - rows[0] + 1))
        assert np.array_equal(src.read(1, window=window), full[rows[0] : rows[-1] + 1, edge - 8 : edge + 8])
    gdalinfo = shutil.which("gdalinfo")
    if gdalinfo:  # the GDAL command line, as a data engineer uses it
        (vrt,) = (built_season / SYNTH_SEASON).glob("s2l2a_red_p50_*.vrt")
        out = subprocess.run([gdalinfo, "-stats", str(vrt)], capture_output=True, text=True, check=True).stdout
        assert "EPSG\",3035" in out.replace(" ", "") or "ETRS89-extended / LAEA Europe" in out
        assert "NoData Value=0" in out


# --- accuracy ---------------------------------------------------------------------------------


def test_p50_matches_the_true_clear_sky_median(built_season, synthetic_archive, record_property):
    """RMSE and bias of P50 against the generator's truth, inside land-cover patches.

    Bounds: the composite differs from the truth by the orbits' brightness (a few percent toward
    swath edges), sensor noise, missed cloud edges left in by SCL (a few percent of pixels, bright)
    and the season's clear days not being all of its days. RMSE under 10 % of the mean
    reflectance and a bias under 2 % are what a correct method gives here; a broken mask
    (clouds kept) or a forgotten +1000 offset each give errors far above these bounds.
    """
    report = {}
    for band in BAND_NAMES:
        est, truth, _ = read_on_truth_grid(built_season, synthetic_archive, band)
        inside = (truth > 0) & (est > 0) & homogeneous(truth)
        assert inside.sum() > 500
        diff = est[inside] - truth[inside]
        mean = truth[inside].mean()
        rmse, bias = float(np.sqrt((diff**2).mean())), float(diff.mean())
        report[band] = {"rmse_dn": round(rmse, 1), "bias_dn": round(bias, 1), "mean_dn": round(float(mean), 1)}
        assert rmse < 0.10 * mean, (band, report[band])
        assert abs(bias) < 0.02 * mean, (band, report[band])
    record_property("accuracy", report)
    print("P50 vs truth (DN):", json.dumps(report))


# --- seams (stripes: test_stripes.py) -------------------------------------------------------


def test_no_seam_at_block_edges(built_season, synthetic_archive, tmp_path):
    """Blocks of 512 px give the pixels that blocks of 256 px give: no block edge shows."""
    summary = build_synthetic(synthetic_archive, tmp_path / "big-blocks", block_size_px=512)
    assert not summary.failed
    for band in ("red", "swir22"):
        with season_raster(built_season, band) as small, season_raster(tmp_path / "big-blocks", band) as big:
            window = from_bounds(*small.bounds, transform=big.transform)
            a, b = small.read(1), big.read(1, window=window, boundless=True)
        both = (a > 0) & (b > 0)
        assert both.sum() > 5000
        differs = np.abs(a.astype(int) - b.astype(int))[both]
        assert (differs <= 1).mean() > 0.999, (band, np.percentile(differs, [50, 99, 100]))


# --- resumption -------------------------------------------------------------------------------


def test_rerun_skips_built_blocks(built_season, synthetic_archive):
    summary = build_synthetic(synthetic_archive, built_season)
    assert summary.counts["skipped"] == len(summary.results) and summary.counts["built"] == 0


def test_new_scenes_rebuild_only_the_blocks_they_touch(built_season, synthetic_archive, tmp_path):
    catalog = json.loads((synthetic_archive / "catalog.json").read_text())
    manifests = [json.loads(p.read_text()) for p in (built_season / SYNTH_SEASON / "blocks").glob("*/manifest.json")]
    blocks_of: dict[str, set[str]] = {}
    for manifest in manifests:  # a block depends on the scenes it reads and on the footprints near it
        for scene in (*manifest["scenes"], *manifest["nearby_scenes"]):
            blocks_of.setdefault(scene, set()).add(manifest["block"])
    # Hold back the scenes that touch (or lie near) the fewest blocks, as if they had not been published yet.
    fewest = min(len(b) for b in blocks_of.values())
    assert fewest < len(manifests)
    touched = min((frozenset(b) for b in blocks_of.values() if len(b) == fewest), key=sorted)
    held_back = {scene for scene, b in blocks_of.items() if b == touched}
    partial = dict(catalog, features=[f for f in catalog["features"] if f["id"] not in held_back])
    archive = tmp_path / "archive"
    archive.mkdir()
    for entry in synthetic_archive.iterdir():
        if entry.name != "catalog.json":
            (archive / entry.name).symlink_to(entry)
    (archive / "catalog.json").write_text(json.dumps(partial))
    out = tmp_path / "data"
    first = build_synthetic(archive, out)
    assert first.counts["built"] == len(first.results) == len(manifests)
    (archive / "catalog.json").write_text(json.dumps(catalog))  # the held-back scenes arrive
    second = build_synthetic(archive, out)
    rebuilt = {r.block_id for r in second.results if r.status == "built"}
    assert rebuilt == set(touched)
    assert second.counts["skipped"] == len(manifests) - len(touched)
    assert pixel_checksums(out) == pixel_checksums(built_season)


def test_kill_minus_9_then_rerun_gives_identical_outputs(built_season, synthetic_archive, tmp_path):
    out = tmp_path / "data"
    command = [sys.executable, "-m", "compositor.cli", "build", "--season", SYNTH_SEASON,
               "--bbox", ",".join(map(str, SYNTH_BBOX)), "--catalog", str(synthetic_archive / "catalog.json"),
               "--out", str(out), "--resolution", str(SYNTH_RESOLUTION_M), "--block-size", str(SYNTH_BLOCK_PX),
               "--workers", "1"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blocks = out / SYNTH_SEASON / "blocks"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(blocks.glob("*/manifest.json")):
        time.sleep(0.05)
    time.sleep(0.3)  # well into the next block
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list(blocks.glob("*/manifest.json"))
    assert 1 <= len(done) < len(pixel_checksums(built_season)) // 24
    # Every installed block is complete; partial work sits only in hidden temporary folders.
    for folder in blocks.iterdir():
        if not folder.name.startswith("."):
            assert (folder / "manifest.json").exists()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} skipped" in rerun.stdout
    assert pixel_checksums(out) == pixel_checksums(built_season)


# --- bad input --------------------------------------------------------------------------------


def test_missing_and_corrupt_scenes_are_skipped_and_recorded(synthetic_archive, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(synthetic_archive, archive, ignore=shutil.ignore_patterns("truth"))
    catalog = json.loads((archive / "catalog.json").read_text())
    clear = [f for f in catalog["features"] if f["properties"]["eo:cloud_cover"] < 40
             and f["geometry"]["coordinates"]]
    victims = clear[3], clear[7]
    corrupt = archive / next(a["href"] for k, a in victims[0]["assets"].items() if k in ("red", "B04"))
    corrupt.write_bytes(corrupt.read_bytes()[:2000])  # truncated
    missing = archive / next(a["href"] for k, a in victims[1]["assets"].items() if k in ("scl", "SCL"))
    missing.unlink()
    summary = build_synthetic(archive, tmp_path / "data")
    assert not summary.failed and summary.counts["built"] == len(summary.results)
    assert {victims[0]["id"], victims[1]["id"]} <= set(summary.skipped_scenes)
    assert "scenes that could not be read" in summary.describe()
    recorded = set()
    for manifest in (tmp_path / "data" / SYNTH_SEASON / "blocks").glob("*/manifest.json"):
        recorded |= {f["scene"] for f in json.loads(manifest.read_text())["failed_scenes"]}
    assert {victims[0]["id"], victims[1]["id"]} <= recorded


def test_block_without_scenes_is_empty_with_count_zero(synthetic_archive, tmp_path):
    from compositor.build import run_build
    from compositor.settings import Settings

    settings = Settings(data_dir=tmp_path, catalog=str(synthetic_archive / "catalog.json"),
                        resolution_m=SYNTH_RESOLUTION_M, block_size_px=SYNTH_BLOCK_PX)
    summary = run_build(settings, SYNTH_SEASON, (20.0, 60.0, 20.1, 60.1), workers=1, progress=False)
    assert summary.counts["empty"] == len(summary.results) >= 1
    block = next(p for p in (tmp_path / SYNTH_SEASON / "blocks").iterdir() if not p.name.startswith("."))
    assert json.loads((block / "manifest.json").read_text())["status"] == "empty"
    (count,) = block.glob("s2l2a_nir_count_*.tif")
    (p50,) = block.glob("s2l2a_nir_p50_*.tif")
    with rasterio.open(count) as c, rasterio.open(p50) as p:
        assert (c.read(1) == 0).all() and (p.read(1) == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"season": "2022-sumer"}, SeasonNotFoundError, "YEAR-summer"),
        ({"bands": "red,nri"}, BandNotFoundError, "nri"),
        ({"bbox": (-120.0, 30.0, -110.0, 40.0)}, InvalidBBoxError, "outside the area of EPSG:3035"),
        ({"bbox": (12.9, 47.75, 12.1, 48.05)}, InvalidBBoxError, "west<east"),
        ({"crs": "EPSG:4326"}, Exception, "not projected"),
    ],
)
def test_bad_input_fails_before_any_work(synthetic_archive, tmp_path, kwargs, error, message):
    from compositor.build import run_build
    from compositor.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", catalog=str(synthetic_archive / "catalog.json"))
    args = {"season": SYNTH_SEASON, "bbox": SYNTH_BBOX, **kwargs}
    with pytest.raises(error, match=message):
        run_build(settings, args.pop("season"), args.pop("bbox"), progress=False, **args)
    assert not (tmp_path / "data").exists()


def test_cli_reports_bad_input_without_traceback(synthetic_archive, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "compositor.cli", "build", "--season", "2022-sumer", "--bbox", "12,47,13,48",
         "--catalog", str(synthetic_archive / "catalog.json"), "--out", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "error: unknown season '2022-sumer'" in result.stderr and "Traceback" not in result.stderr


# --- offsets ----------------------------------------------------------------------------------


def test_offset_check_on_the_synthetic_archive(synthetic_archive):
    """Correctly tagged, no scene is corrected; with every scene's metadata flipped, each correction the
    check makes restores the truth, and it catches most "flag false but already removed" scenes
    (the ones it misses are mostly cloud, where it keeps the metadata)."""
    import dataclasses

    from compositor.catalog import load_scenes
    from compositor.offsets import check_offsets, clear_offset_cache

    clear_offset_cache()
    scenes = load_scenes(synthetic_archive / "catalog.json")
    assert {s.offset_dn for s in scenes} == {0, 1000}
    _, corrections = check_offsets(scenes)
    assert corrections == []
    flipped = [dataclasses.replace(s, offset_dn=1000 - s.offset_dn) for s in scenes]
    fixed, corrections = check_offsets(flipped)
    clear_offset_cache()
    truth = {s.id: s.offset_dn for s in scenes}
    assert corrections and all(c.used_offset_dn == truth[c.scene] for c in corrections)
    removed = [s.id for s in scenes if s.offset_dn == 0]
    caught = {c.scene for c in corrections if c.used_offset_dn == 0}
    # Synthetic scenes hold data only inside the archive's region, a small part of their tile: on the
    # check's 256 px read a scene mostly cloudy there has too few clear pixels to tell, and keeps its
    # metadata (36 of 52 caught with the real-orbit archive, 42 of 48 with the old one's region).
    assert len(caught) >= 0.6 * len(removed), (len(caught), len(removed))
    assert [f.offset_dn for f in fixed if f.id in caught] == [0] * len(caught)
