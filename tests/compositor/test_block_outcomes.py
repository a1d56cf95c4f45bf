"""Honest block outcomes and command results on planted scenes: empty, failed, partly read, offset corrected,
the scene filters counted, and no output folder left behind by a command that fails on its arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import mapping
from typer.testing import CliRunner

from compositor.block import BlockJob, build_block, read_manifest
from compositor.cli import cli
from compositor.layout import SeasonLayout
from compositor.offsets import clear_offset_cache
from compositor.seasons import resolve_season
from compositor.testing.planted import BLOCK, GRID, SEASON, plant


@pytest.fixture(autouse=True)
def _fresh_offset_cache():
    clear_offset_cache()
    yield
    clear_offset_cache()


def job_of(tmp_path: Path, scenes) -> BlockJob:
    layout = SeasonLayout(tmp_path / "data", resolve_season(SEASON), GRID.crs, GRID.resolution_m)
    return BlockJob(layout, BLOCK, tuple(scenes), ("red", "swir22"))


def p50(job: BlockJob, band: str) -> np.ndarray:
    import rasterio

    with rasterio.open(job.layout.block_file(BLOCK.id, band, "p50")) as src:
        return src.read(1)


# --- block outcomes ---------------------------------------------------------------------------------


def test_readable_scenes_without_valid_observation_make_an_empty_block(tmp_path):
    cloudy, _ = plant(tmp_path / "scenes", "cloudy", "cloud")
    job = job_of(tmp_path, [cloudy])
    result = build_block(job)
    assert result.status == "empty" and not result.skipped_scenes
    assert read_manifest(job.layout, BLOCK.id)["status"] == "empty"


def test_a_block_whose_scenes_all_failed_is_failed_and_not_installed(tmp_path):
    scenes = [plant(tmp_path / "scenes", f"s{i}", day=i)[0] for i in range(2)]
    for scene in scenes:
        Path(scene.hrefs["scl"]).unlink()
    job = job_of(tmp_path, scenes)
    result = build_block(job)
    assert result.status == "failed"
    assert "2 of its 2 scenes could not be read" in result.reason and "scl.tif" in result.reason
    assert set(result.skipped_scenes) == {"s0", "s1"}
    assert read_manifest(job.layout, BLOCK.id) is None  # not built: the next build tries it again


def test_a_block_whose_only_scene_has_unreadable_bands_is_failed(tmp_path):
    """SCL read (so the scene looked like an observation), its bands not: nothing was observed."""
    scene, _ = plant(tmp_path / "scenes", "bands-gone")
    for band in ("red", "swir22"):
        Path(scene.hrefs[band]).unlink()
    job = job_of(tmp_path, [scene])
    result = build_block(job)
    assert result.status == "failed" and "1 of its 1 scenes could not be read" in result.reason
    assert read_manifest(job.layout, BLOCK.id) is None


def test_a_previous_block_stays_when_a_rebuild_cannot_read_its_scenes(tmp_path):
    good, _ = plant(tmp_path / "scenes", "good")
    job = job_of(tmp_path, [good])
    assert build_block(job).status == "built"
    before = read_manifest(job.layout, BLOCK.id)
    Path(good.hrefs["red"]).unlink()
    Path(good.hrefs["scl"]).unlink()
    assert build_block(job, force=True).status == "failed"
    assert read_manifest(job.layout, BLOCK.id) == before


def test_a_forced_rebuild_replaces_an_up_to_date_block(tmp_path):
    good, _ = plant(tmp_path / "scenes", "good")
    job = job_of(tmp_path, [good])
    assert build_block(job).status == "built"
    marker = tmp_path / "data" / SEASON / "blocks" / BLOCK.id / "left-by-the-first-build.txt"
    marker.write_text("the first build's folder")
    assert build_block(job).status == "skipped"
    assert build_block(job, force=True).status == "built"
    assert not marker.exists()  # the block folder is the rebuild's


def test_some_scenes_failed_others_gave_data_is_built_with_failed_scenes(tmp_path):
    good, _ = plant(tmp_path / "scenes", "good")
    gone, _ = plant(tmp_path / "scenes", "gone", day=1)
    Path(gone.hrefs["scl"]).unlink()
    job = job_of(tmp_path, [good, gone])
    result = build_block(job)
    assert result.status == "built" and set(result.skipped_scenes) == {"gone"}
    manifest = read_manifest(job.layout, BLOCK.id)
    assert [f["scene"] for f in manifest["failed_scenes"]] == ["gone"]


def test_mistagged_scene_is_corrected_and_recorded_in_the_manifest(tmp_path):
    """Flag false (offset 1000 stated) but the data already shifted (cirrus-earth-search#33)."""
    mistagged, truth = plant(tmp_path / "scenes", "S2B_20HMD_20221023_0_L2A", data_offset=0, item_offset=1000)
    job = job_of(tmp_path, [mistagged])
    result = build_block(job)
    assert result.status == "built"
    (record,) = read_manifest(job.layout, BLOCK.id)["offset_corrections"]
    assert record["scene"] == "S2B_20HMD_20221023_0_L2A"
    assert (record["item_offset_dn"], record["used_offset_dn"]) == (1000, 0) and "already removed" in record["reason"]
    assert result.offset_corrections == (record,)
    # The pixels are the scene's reflectance, not reflectance - 1000 clipped to 1.
    clear = np.asarray(truth["swir22"]) > 0
    assert np.abs(p50(job, "swir22")[clear].astype(int) - np.rint(truth["swir22"][clear])).max() <= 1


def test_correct_scene_has_no_correction(tmp_path):
    scene, truth = plant(tmp_path / "scenes", "fine", data_offset=1000, item_offset=1000)
    job = job_of(tmp_path, [scene])
    assert build_block(job).offset_corrections == ()
    assert read_manifest(job.layout, BLOCK.id)["offset_corrections"] == []
    assert np.abs(p50(job, "red").astype(int) - np.rint(truth["red"])).max() <= 1


# --- the commands on a local catalog of planted scenes ------------------------------------------------


def item_of(scene, cloud: float) -> dict:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": scene.id, "geometry": mapping(scene.footprint),
        "properties": {"datetime": scene.datetime.isoformat().replace("+00:00", "Z"), "platform": scene.platform,
                       "sat:relative_orbit": scene.relative_orbit, "proj:epsg": 3035, "eo:cloud_cover": cloud,
                       "s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": False},
        "assets": {key: {"href": href} for key, href in scene.hrefs.items()},
    }


def catalog_of(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def bbox_text() -> str:
    west, south, east, north = BLOCK.footprint_4326().buffer(-0.02).bounds
    return f"{west},{south},{east},{north}"


def build_args(catalog: Path, out: Path, *extra: str) -> list[str]:
    return ["build", "--season", SEASON, "--bbox", bbox_text(), "--catalog", str(catalog), "--out", str(out),
            "--resolution", "100", "--block-size", "256", "--workers", "1", *extra]


def test_build_whose_every_scene_failed_exits_non_zero_and_says_what_to_check(tmp_path):
    scenes = [plant(tmp_path / "scenes", f"s{i}", day=i)[0] for i in range(2)]
    catalog = catalog_of(tmp_path / "catalog.json", [item_of(s, 5.0) for s in scenes])
    for scene in scenes:  # as if the network were down or the signed URLs expired
        for href in scene.hrefs.values():
            Path(href).unlink()
    result = CliRunner().invoke(cli, build_args(catalog, tmp_path / "data"))
    assert result.exit_code == 1, result.output
    assert "0 empty" in result.output and "1 failed" in result.output
    assert "could not be read" in result.output and "network" in result.output and "--retry-failed" in result.output
    assert not list((tmp_path / "data").rglob("manifest.json"))


def test_build_summary_counts_the_scenes_each_filter_dropped(tmp_path, monkeypatch):
    good, _ = plant(tmp_path / "scenes", "clear")
    cloudy, _ = plant(tmp_path / "scenes", "cloudy", "cloud", day=1)
    catalog = catalog_of(tmp_path / "catalog.json", [item_of(good, 5.0), item_of(cloudy, 100.0)])
    result = CliRunner().invoke(cli, build_args(catalog, tmp_path / "all"))
    assert result.exit_code == 0, result.output
    assert "scenes: 2 found, none dropped by a filter, 2 read" in result.output
    assert "1 built" in result.output
    monkeypatch.setenv("S2SEASONS_MAX_CLOUD_COVER", "80")
    result = CliRunner().invoke(cli, build_args(catalog, tmp_path / "capped"))
    assert result.exit_code == 0, result.output
    assert "scenes: 2 found, 1 dropped by cloud cover above 80 % (max_cloud_cover), 1 read" in result.output


def test_scenes_command_shows_each_offset_rule_and_the_filters(tmp_path):
    good, _ = plant(tmp_path / "scenes", "clear")
    cloudy, _ = plant(tmp_path / "scenes", "cloudy", "cloud", day=1)
    c1 = item_of(good, 5.0)
    c1["id"] = "c1-like"
    del c1["properties"]["earthsearch:boa_offset_applied"]
    c1["assets"]["red"]["raster:bands"] = [{"scale": 0.0001, "offset": -0.1}]
    catalog = catalog_of(tmp_path / "catalog.json", [item_of(good, 5.0), item_of(cloudy, 100.0), c1])
    result = CliRunner().invoke(cli, ["scenes", "--season", SEASON, "--bbox", bbox_text(), "--catalog", str(catalog),
                                      "--max-cloud-cover", "50", "--collection", "sentinel-2-c1-l2a"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("offset 1000 (earthsearch:boa_offset_applied)" in line and line.endswith(" clear") for line in lines)
    assert any("offset 1000 (raster:bands)" in line and line.endswith(" c1-like") for line in lines)
    assert "scenes: 3 found, 1 dropped by cloud cover above 50 % (max_cloud_cover)" in result.output


def test_scenes_command_can_check_offsets_against_the_pixels(tmp_path):
    good, _ = plant(tmp_path / "scenes", "fine")
    shifted, _ = plant(tmp_path / "scenes", "S2B_20HMD_20221023_0_L2A", data_offset=0, day=1)
    catalog = catalog_of(tmp_path / "catalog.json", [item_of(good, 5.0), item_of(shifted, 5.0)])
    args = ["scenes", "--season", SEASON, "--bbox", bbox_text(), "--catalog", str(catalog)]
    plain = CliRunner().invoke(cli, args)
    assert plain.exit_code == 0 and plain.output.count("offset 1000 (earthsearch:boa_offset_applied)") == 2
    checked = CliRunner().invoke(cli, [*args, "--check-offsets"])
    assert checked.exit_code == 0, checked.output
    lines = checked.output.splitlines()
    assert any(line.endswith(" fine") and "offset 1000 (earthsearch:boa_offset_applied)" in line for line in lines)
    assert any(line.endswith(" S2B_20HMD_20221023_0_L2A") and "offset    0 (data check)" in line for line in lines)
    assert "already removed" in checked.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--season": "2022-sumer"}, "unknown season"),
        ({"--bands": "red,nri"}, "unknown band"),
        ({"--bbox": "12.9,47.75,12.1,48.05"}, "west<east"),
        ({"--bbox": "-120,30,-110,40"}, "outside the area"),
        ({"--catalog": "missing-catalog.json"}, "does not exist"),
    ],
)
def test_build_failing_on_its_arguments_creates_no_folder(tmp_path, change, message):
    good, _ = plant(tmp_path / "scenes", "clear")
    catalog = catalog_of(tmp_path / "catalog.json", [item_of(good, 5.0)])
    out = tmp_path / "new" / "data"
    args = build_args(catalog, out)
    for option, value in change.items():
        if option in args:
            args[args.index(option) + 1] = str(tmp_path / value) if option == "--catalog" else value
        else:
            args += [option, value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample-data", "{out}", "--season", "2022-sumer"], "unknown season"),
        (["sample-data", "{out}", "--bbox", "1,2,3"], "west,south,east,north"),
        (["export", "--season", "2022-sumer", "--out", "{out}", "--byte", "--data", "{data}"], "unknown season"),
        (["export", "--season", SEASON, "--out", "{out}", "--byte", "--data", "{data}"], "no built block"),
        (["export", "--season", SEASON, "--out", "{out}", "--data", "{data}"], "--byte"),
    ],
)
def test_other_commands_failing_on_their_arguments_create_no_folder(tmp_path, args, message):
    out = tmp_path / "new" / "out"
    filled = [a.format(out=out, data=tmp_path / "nothing-built") for a in args]
    result = CliRunner().invoke(cli, filled)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "new").exists() and not (tmp_path / "nothing-built").exists()


def test_export_with_a_wrong_band_creates_no_folder(tmp_path):
    good, _ = plant(tmp_path / "scenes", "clear")
    catalog = catalog_of(tmp_path / "catalog.json", [item_of(good, 5.0)])
    data = tmp_path / "data"
    assert CliRunner().invoke(cli, build_args(catalog, data)).exit_code == 0
    out = tmp_path / "new" / "export"
    result = CliRunner().invoke(cli, ["export", "--season", SEASON, "--out", str(out), "--byte", "--data", str(data),
                                      "--bands", "red,nri"])
    assert result.exit_code == 2 and "unknown band" in result.output, result.output
    assert not (tmp_path / "new").exists()



def test_collection_reaches_the_catalog_search(tmp_path):
    import dataclasses

    from shapely.geometry import box

    from compositor.catalog import SceneSearch
    from compositor.plan import NO_BLOCK, make_request, plan_build
    from compositor.settings import Settings

    inside, _ = plant(tmp_path / "scenes", "inside")
    elsewhere = dataclasses.replace(inside, id="elsewhere", footprint=box(100.0, 0.0, 101.0, 1.0))  # in no block
    calls = []

    class Catalog:  # the request's scene query, answering for the catalog
        def __init__(self, query):
            self.query = query

        def search(self, bbox, season):
            calls.append(self.query)
            return SceneSearch([inside, elsewhere], {"cloud cover above 50 % (max_cloud_cover)": 3})

    settings = Settings(data_dir=tmp_path / "data", resolution_m=100, block_size_px=256)
    west, south, east, north = (float(v) for v in bbox_text().split(","))
    request = make_request(settings, SEASON, (west, south, east, north), collection="sentinel-2-c1-l2a")
    plan = plan_build(dataclasses.replace(request, query=Catalog(request.query)))
    assert calls[0].collection == "sentinel-2-c1-l2a" and calls[0].max_cloud_cover is None
    assert plan.dropped == {"cloud cover above 50 % (max_cloud_cover)": 3, NO_BLOCK: 1} and plan.n_scenes == 1
    assert plan.describe_scenes() == (f"scenes: 5 found, 3 dropped by cloud cover above 50 % (max_cloud_cover), "
                                      f"1 dropped by {NO_BLOCK}, 1 read")
