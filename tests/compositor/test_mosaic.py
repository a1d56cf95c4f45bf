"""The season outputs (compositor.mosaic and its parts): season VRTs, overview rasters, the STAC catalog of the outputs, the byte export.

Two kinds of seasons: four real blocks built from the sample scene (red and nir at 200 m), and
blocks planted by hand whose values are constant on each half of 16 x 16 pixel cells, so that the
value of every pixel of a 1/16 overview is known exactly, for an average and for a nearest sample.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from compositor import cog
from compositor.storage import folder as folder_store
from compositor.block import BlockJob, build_block
from compositor.catalog import load_scenes
from compositor.cog import describe, open_strip_writer, translate_to_cog
from compositor.errors import InvalidInputError
from compositor.grid import OutputGrid
from compositor.layout import OUTPUT_KINDS, SeasonLayout
from compositor.export import export_byte, reflectance_to_byte
from compositor.mosaic import update_season_outputs
from compositor.outputs_stac import write_output_catalog
from compositor.overview import write_season_overview
from compositor.vrt import write_season_vrts
from compositor.seasons import resolve_season
from tests.samples import SAMPLE_DIR, SAMPLE_FILES

SEASON = resolve_season("2020-winter")
SAMPLE_GRID = OutputGrid(resolution_m=200, block_size_px=512)
# The four sample blocks: (col, row) -> (row, col) offset in pixels of the 1024 x 1024 mosaic, north-west first.
SAMPLE_OFFSETS = {(20, 5): (0, 0), (21, 5): (0, 512), (20, 4): (512, 0), (21, 4): (512, 512)}
CELL = 16


def layout_for(data_dir: Path, grid: OutputGrid) -> SeasonLayout:
    return SeasonLayout(data_dir, SEASON, grid.crs, grid.resolution_m)


def read(path: Path, **kwargs) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, **kwargs)


def temporaries(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if ".tmp" in p.name or ".strips" in p.name]


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    """A data folder with the four real blocks of the sample scene, red and nir, and their season outputs."""
    scene = load_scenes(str(SAMPLE_DIR))[0]
    hrefs = MappingProxyType({key: f"{SAMPLE_DIR}/{name}.tif" for key, name in SAMPLE_FILES.items()})
    scene = dataclasses.replace(scene, hrefs=hrefs)
    root = tmp_path_factory.mktemp("sample")
    layout = layout_for(root, SAMPLE_GRID)
    blocks = SAMPLE_GRID.blocks_for_bbox((-11.9, 24.4, -10.9, 25.2))
    assert {(b.col, b.row) for b in blocks} == set(SAMPLE_OFFSETS)
    for block in blocks:
        assert build_block(BlockJob(layout, block, (scene,), ("red", "nir"))).status == "built"
    update_season_outputs(layout, SAMPLE_GRID)
    return root


@pytest.fixture()
def sample(sample_root, tmp_path) -> SeasonLayout:
    """A private copy of the sample season, free to damage."""
    shutil.copytree(sample_root, tmp_path / "data")
    return layout_for(tmp_path / "data", SAMPLE_GRID)


def expected_mosaic(layout: SeasonLayout, band: str, kind: str) -> np.ndarray:
    """The four block files pasted by hand at their known offsets."""
    out = np.zeros((1024, 1024), np.uint16)
    for (col, row), (y, x) in SAMPLE_OFFSETS.items():
        out[y:y + 512, x:x + 512] = read(layout.block_file(f"c{col}_r{row}", band, kind))
    return out


# --- planted blocks -----------------------------------------------------------------------------

PLANTED_GRID = OutputGrid(resolution_m=100, block_size_px=256)
PLANTED_BLOCKS = ((160, 120), (161, 120), (160, 119))  # an L: block (161, 119) is a hole


@dataclasses.dataclass(frozen=True)
class PlantedCells:
    """16 x 16 pixel cells of one block, each with a value for its left and its right half.

    Reflectance cells are whole (left == right), nodata (0), half nodata (right 0) or split in two
    values of the same parity, so that their mean (left + right) / 2 is an integer. Count cells
    are whole or split in c and c + 50, so that their mean is a value that no pixel has.
    """

    left: np.ndarray
    right: np.ndarray
    count_left: np.ndarray
    count_right: np.ndarray


def planted_cells(col: int, row: int) -> PlantedCells:
    rng = np.random.default_rng(col * 1000 + row)
    n = PLANTED_GRID.block_size_px // CELL
    left = rng.integers(1, 10_001, size=(n, n), dtype=np.uint16)
    left[rng.random((n, n)) < 0.2] = 0
    right = left.copy()
    kind = rng.random((n, n))
    right[(kind < 0.25) & (left > 0)] = 0
    split = (kind > 0.75) & (left > 0)
    right[split] = 2 * rng.integers(1, 5000, size=split.sum()) - left[split] % 2
    count_left = rng.integers(0, 40, size=(n, n), dtype=np.uint16)
    count_right = np.where(rng.random((n, n)) < 0.3, count_left + 50, count_left).astype(np.uint16)
    return PlantedCells(left, right, count_left, count_right)


def cell_pixels(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """A 256 x 256 block from 16 x 16 cells: each cell's left 8 columns from ``left``, the right 8 from ``right``."""
    in_right_half = (np.arange(PLANTED_GRID.block_size_px) % CELL >= CELL // 2)[None, :]
    ones = np.ones((CELL, CELL), np.uint16)
    return np.where(in_right_half, np.kron(right, ones), np.kron(left, ones)).astype(np.uint16)


def cell_averages(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The mean of each cell's valid pixels: nodata (0) is left out, not averaged in."""
    both = (left > 0) & (right > 0)
    return np.where(both, (left.astype(np.int64) + right) // 2, np.maximum(left, right)).astype(np.uint16)


def write_planted_file(layout: SeasonLayout, block_id: str, kind: str, data: np.ndarray, tmp: Path) -> None:
    block = PLANTED_GRID.block_by_id(block_id)
    path = layout.block_file(block_id, "red", kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    nodata = None if kind == "count" else 0
    with open_strip_writer(tmp, block.crs, block.transform, block.shape, "uint16", nodata) as dst:
        describe(dst, f"planted red {kind}", None if kind == "count" else 0.0001, {"season": SEASON.name})
        dst.write(data, 1)
    translate_to_cog(tmp, path, resampling="NEAREST" if kind == "count" else "AVERAGE")
    tmp.unlink()


@pytest.fixture()
def planted(tmp_path) -> SeasonLayout:
    """Three hand-written blocks (red only), an L with a hole, values constant on halves of 16 x 16 cells."""
    layout = layout_for(tmp_path / "data", PLANTED_GRID)
    record = {"crs": PLANTED_GRID.crs, "resolution_m": PLANTED_GRID.resolution_m,
              "block_size_px": PLANTED_GRID.block_size_px}
    for col, row in PLANTED_BLOCKS:
        block = PLANTED_GRID.block(col, row)
        cells = planted_cells(col, row)
        for kind in OUTPUT_KINDS:
            data = (cell_pixels(cells.count_left, cells.count_right) if kind == "count"
                    else cell_pixels(cells.left, cells.right))
            write_planted_file(layout, block.id, kind, data, tmp_path / "strips.tif")
        manifest = {"block": block.id, "status": "built", "bands": ["red"], "grid": record,
                    "bounds": list(block.bounds), "scenes": ["planted"], "n_acquisitions": 1,
                    "files": sorted(p.name for p in layout.block_dir(block.id).glob("*.tif"))}
        layout.manifest_path(block.id).write_text(json.dumps(manifest))
    return layout


# --- VRT ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["p50", "count"])
def test_vrt_window_across_block_edges_equals_the_block_files(sample_root, kind):
    layout = layout_for(sample_root, SAMPLE_GRID)
    with rasterio.open(layout.vrt_file("red", kind)) as src:
        assert (src.width, src.height) == (1024, 1024)
        assert tuple(src.transform)[:6] == (200.0, 0.0, 20 * 102_400.0, 0.0, -200.0, 6 * 102_400.0)
        assert src.crs.to_epsg() == 3035
        window = src.read(1, window=Window(480, 470, 70, 80))  # covers the corner of all four blocks
        whole = src.read(1)
    expected = expected_mosaic(layout, "red", kind)
    np.testing.assert_array_equal(window, expected[470:550, 480:550])
    np.testing.assert_array_equal(whole, expected)
    assert (window > 0).all()  # real values on each side of both edges, not only nodata


def test_vrt_declares_nodata_scale_description_and_season(sample_root):
    layout = layout_for(sample_root, SAMPLE_GRID)
    with rasterio.open(layout.vrt_file("nir", "p25")) as src:
        assert src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.scales == (0.0001,) and src.offsets == (0.0,)
        assert src.descriptions[0].startswith("Near infrared (B08, 842 nm): P25")
        tags = src.tags()
        assert (tags["season"], tags["start_date"], tags["end_date"]) == ("2020-winter", "2019-12-02", "2020-03-20")
    with rasterio.open(layout.vrt_file("nir", "count")) as src:
        assert src.nodata is None and src.scales == (1.0,)
        assert "number of valid" in src.descriptions[0]
    sources = ET.parse(layout.vrt_file("nir", "p25")).findall(".//SimpleSource/SourceFilename")
    assert len(sources) == 4 and all(s.get("relativeToVRT") == "1" and s.text.startswith("blocks/") for s in sources)


def test_missing_block_file_is_skipped_with_a_warning(sample, caplog):
    sample.block_file("c21_r4", "red", "p50").unlink()
    with caplog.at_level(logging.WARNING, logger="compositor"):
        write_season_vrts(sample, SAMPLE_GRID, ["red"])
    assert any("c21_r4" in r.getMessage() and "missing" in r.getMessage() for r in caplog.records)
    assert len(ET.parse(sample.vrt_file("red", "p50")).findall(".//SimpleSource")) == 3
    assert len(ET.parse(sample.vrt_file("red", "p75")).findall(".//SimpleSource")) == 4
    expected = expected_mosaic_without(sample, (21, 4))
    with rasterio.open(sample.vrt_file("red", "p50")) as src:
        assert (src.width, src.height) == (1024, 1024)  # extent of the built blocks, not of the files
        np.testing.assert_array_equal(src.read(1), expected)


def expected_mosaic_without(layout: SeasonLayout, missing: tuple[int, int]) -> np.ndarray:
    out = np.zeros((1024, 1024), np.uint16)
    for (col, row), (y, x) in SAMPLE_OFFSETS.items():
        if (col, row) != missing:
            out[y:y + 512, x:x + 512] = read(layout.block_file(f"c{col}_r{row}", "red", "p50"))
    return out


def test_vrt_covers_the_union_of_blocks_with_nodata_in_holes(planted):
    write_season_vrts(planted, PLANTED_GRID)
    with rasterio.open(planted.vrt_file("red", "p50")) as src:
        assert (src.width, src.height) == (512, 512)
        assert src.bounds == (160 * 25_600, 119 * 25_600, 162 * 25_600, 121 * 25_600)
        data = src.read(1)
    assert (data[256:, 256:] == 0).all()  # block (161, 119) was never built
    np.testing.assert_array_equal(data[256:, :256], read(planted.block_file("c160_r119", "red", "p50")))
    np.testing.assert_array_equal(data[:256, 256:], read(planted.block_file("c161_r120", "red", "p50")))


# --- overview -----------------------------------------------------------------------------------


def test_overview_is_a_valid_cog_with_the_blocks_metadata(sample_root):
    layout = layout_for(sample_root, SAMPLE_GRID)
    for kind in OUTPUT_KINDS:
        path = layout.overview_file("red", kind, 3200)
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
        block = layout.block_file("c20_r4", "red", kind)
        vrt_path = layout.vrt_file("red", kind)
        with rasterio.open(path) as src, rasterio.open(vrt_path) as vrt, rasterio.open(block) as blk:
            assert src.res == (3200.0, 3200.0) and (src.width, src.height) == (64, 64)
            assert src.bounds == vrt.bounds and src.crs == vrt.crs
            assert src.dtypes == blk.dtypes == ("uint16",)
            assert src.nodata == blk.nodata == (None if kind == "count" else 0)
            assert src.descriptions == vrt.descriptions == blk.descriptions
            assert src.scales == vrt.scales == blk.scales
            assert src.tags()["season"] == "2020-winter" and src.tags()["statistic"] == kind


def test_overview_values_equal_the_planted_cells(planted):
    write_season_overview(planted, PLANTED_GRID)
    res = PLANTED_GRID.resolution_m * 16
    p50 = read(planted.overview_file("red", "p50", res))
    count = read(planted.overview_file("red", "count", res))
    assert p50.shape == count.shape == (32, 32)
    n = 16
    for (col, row), (y, x) in zip(PLANTED_BLOCKS, ((0, 0), (0, n), (n, 0))):
        cells = planted_cells(col, row)
        # reflectance: the mean of the valid pixels; split cells tell an average from a nearest sample
        expected = cell_averages(cells.left, cells.right)
        assert (expected != cells.left).any() and (expected != cells.right).any()
        np.testing.assert_array_equal(p50[y:y + n, x:x + n], expected)
        # count: nearest neighbour, so the count of a pixel of the cell, never the mean of a split cell
        got = count[y:y + n, x:x + n]
        assert ((got == cells.count_left) | (got == cells.count_right)).all()
        assert (cells.count_left != cells.count_right).any()
    assert (p50[n:, n:] == 0).all() and (count[n:, n:] == 0).all()


def overwrite_blocks_with(layout: SeasonLayout, band: str, kind: str, value: int) -> None:
    for (col, row) in SAMPLE_OFFSETS:
        path = layout.block_file(f"c{col}_r{row}", band, kind)
        with rasterio.open(path) as src:
            profile = src.profile
        profile.update(driver="GTiff")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.full((512, 512), value, np.uint16), 1)


def test_low_resolution_vrt_read_uses_the_overview_not_the_blocks(sample):
    vrt = sample.vrt_file("red", "p50")
    overview = read(sample.overview_file("red", "p50", 3200))
    with rasterio.open(vrt) as src:
        assert src.overviews(1) == [16]
    # Replace every block's pixels with 7: a read that touched a block would see 7s.
    overwrite_blocks_with(sample, "red", "p50", 7)
    with rasterio.open(vrt) as src:
        low = src.read(1, out_shape=(64, 64))
        full = src.read(1, window=Window(0, 0, 1024, 1024))
    np.testing.assert_array_equal(low, overview)
    assert not (low == 7).any() and (low > 0).any()
    assert (full == 7).all()  # the full-resolution read does reach the (overwritten) blocks
    # Control: the same read of a VRT without the overview does reach the blocks.
    sample.overview_file("red", "p50", 3200).unlink()
    write_season_vrts(sample, SAMPLE_GRID, ["red"])
    with rasterio.open(vrt) as src:
        assert src.overviews(1) != [16]
        assert (src.read(1, out_shape=(64, 64)) == 7).all()


def test_stale_overview_is_not_referenced(planted, caplog):
    write_season_overview(planted, PLANTED_GRID)
    manifest = json.loads(planted.manifest_path("c160_r119").read_text())
    shutil.copytree(planted.block_dir("c160_r119"), planted.block_dir("c162_r119"))  # a new block widens the extent
    manifest["block"] = "c162_r119"
    planted.manifest_path("c162_r119").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="compositor"):
        write_season_vrts(planted, PLANTED_GRID)
    assert ET.parse(planted.vrt_file("red", "p50")).find(".//Overview") is None
    assert any("overview" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("factor", [0, 1, 3, 512])
def test_overview_factor_must_divide_the_block(planted, factor):
    with pytest.raises(InvalidInputError, match="overview factor"):
        write_season_overview(planted, PLANTED_GRID, factor=factor)


# --- STAC ---------------------------------------------------------------------------------------


def assert_hrefs_exist(catalog_path: Path) -> int:
    catalog = pystac.Catalog.from_file(str(catalog_path))
    [collection] = list(catalog.get_children())
    hrefs = [a.get_absolute_href() for a in collection.assets.values()]
    for item in collection.get_items():
        hrefs += [a.get_absolute_href() for a in item.assets.values()]
    missing = [h for h in hrefs if not Path(h).is_file()]
    assert not missing
    return len(hrefs)


def test_stac_catalog_reloads_and_every_href_exists(sample):
    path = write_output_catalog(sample, SAMPLE_GRID)
    assert path == sample.catalog_dir / "catalog.json"
    catalog = pystac.Catalog.from_file(str(path))
    [collection] = list(catalog.get_children())
    assert isinstance(collection, pystac.Collection)
    assert collection.extent.temporal.intervals[0][0].isoformat() == "2019-12-02T00:00:00+00:00"
    assert collection.extent.temporal.intervals[0][1].date().isoformat() == "2020-03-20"
    assert {b["name"] for b in collection.summaries.get_list("eo:bands")} == {"red", "nir"}
    assert {"red_p50_mosaic", "red_p50_overview", "nir_count_mosaic"} <= set(collection.assets)
    items = {item.properties["s2seasons:block"]: item for item in collection.get_items()}
    assert set(items) == {f"c{c}_r{r}" for c, r in SAMPLE_OFFSETS}
    item = items["c20_r4"]
    assert item.datetime is None
    assert item.properties["start_datetime"] == "2019-12-02T00:00:00Z"
    assert item.properties["proj:code"] == "EPSG:3035"
    assert item.properties["proj:shape"] == [512, 512]
    assert item.properties["proj:transform"] == [200.0, 0.0, 2_048_000.0, 0.0, -200.0, 512_000.0]
    footprint = SAMPLE_GRID.block(20, 4).footprint_4326()
    assert np.allclose(item.bbox, footprint.bounds)
    assert set(item.assets) == {f"{b}_{k}" for b in ("red", "nir") for k in OUTPUT_KINDS}
    asset = item.assets["red_p50"]
    assert asset.media_type == pystac.MediaType.COG and asset.roles == ["data"]
    raster_band = asset.extra_fields["raster:bands"][0]
    assert {"nodata": 0, "scale": 0.0001, "data_type": "uint16"}.items() <= raster_band.items()
    assert "nodata" not in item.assets["red_count"].extra_fields["raster:bands"][0]
    raw = json.loads(Path(item.get_self_href()).read_text())
    assert all(not a["href"].startswith("/") for a in raw["assets"].values())
    assert raw["properties"]["proj:epsg"] == 3035  # for clients of projection v1 (pystac drops it on read)
    assert assert_hrefs_exist(path) == 16 + 4 * 8


def test_stac_catalog_hrefs_are_relative_so_the_season_can_move(sample, tmp_path):
    write_output_catalog(sample, SAMPLE_GRID)
    moved = tmp_path / "moved"
    shutil.move(sample.root, moved)
    assert assert_hrefs_exist(moved / "catalog" / "catalog.json") == 16 + 4 * 8


def test_stac_catalog_rewrite_drops_items_of_removed_blocks(sample):
    write_output_catalog(sample, SAMPLE_GRID)
    shutil.rmtree(sample.block_dir("c21_r4"))
    write_output_catalog(sample, SAMPLE_GRID)
    catalog = pystac.Catalog.from_file(str(sample.catalog_dir / "catalog.json"))
    assert len(list(catalog.get_items(recursive=True))) == 3
    assert len(list(sample.catalog_dir.rglob("*.json"))) == 2 + 3
    assert not temporaries(sample.root)


# --- byte export --------------------------------------------------------------------------------


def test_reflectance_to_byte_table():
    dn = np.array([0, 1, 19, 20, 59, 60, 61, 4000, 9980, 9999, 10_000, 10_020, 65_535], np.uint16)
    expected = [255, 0, 0, 1, 1, 2, 2, 100, 250, 250, 250, 250, 250]
    np.testing.assert_array_equal(reflectance_to_byte(dn), expected)


def test_export_byte_values_follow_the_formula_and_are_cogs(sample, tmp_path):
    out = tmp_path / "byte"
    calls = []
    paths = export_byte(sample, SAMPLE_GRID, out, ["red"], progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (16, 16) and len(calls) == 16
    assert len(paths) == 4 + 16 and all(p.exists() for p in paths)
    for (col, row) in SAMPLE_OFFSETS:
        block_id = f"c{col}_r{row}"
        for kind in ("p25", "count"):
            path = out / "blocks" / block_id / f"{sample.stem('red', kind)}_byte.tif"
            assert cog_validate(str(path))[0]
            source = read(sample.block_file(block_id, "red", kind)).astype(np.float64)
            with rasterio.open(path) as src:
                got = src.read(1)
                assert src.dtypes[0] == "uint8" and src.nodata == 255
                assert "byte_mapping" in src.tags()
                if kind == "count":
                    expected = np.minimum(source, 254)
                else:
                    expected = np.where(source == 0, 255, np.clip(np.floor(source / 40 + 0.5), 0, 250))
                    assert src.scales == (0.004,) and "round(DN / 40)" in src.descriptions[0]
            np.testing.assert_array_equal(got, expected)
    vrt = out / f"{sample.stem('red', 'p50')}_byte.vrt"
    with rasterio.open(vrt) as src:
        assert src.nodata == 255 and src.dtypes[0] == "uint8" and src.scales == (0.004,)
        mosaic_dn = expected_mosaic(sample, "red", "p50").astype(np.float64)
        expected = np.where(mosaic_dn == 0, 255, np.clip(np.floor(mosaic_dn / 40 + 0.5), 0, 250))
        np.testing.assert_array_equal(src.read(1, window=Window(400, 400, 300, 300)), expected[400:700, 400:700])
    assert not temporaries(out)


# --- atomic writes ------------------------------------------------------------------------------


def test_season_outputs_leave_no_temporaries(sample_root):
    layout = layout_for(sample_root, SAMPLE_GRID)
    assert not temporaries(layout.root)
    assert not [p for p in layout.root.iterdir() if p.name.startswith(".")]


def test_failed_overview_write_keeps_the_previous_file(sample, monkeypatch):
    path = sample.overview_file("red", "p50", 3200)
    before = path.read_bytes()

    def broken(src, dst, **kwargs):
        Path(dst).write_bytes(b"half a COG")
        raise OSError("disk full")

    monkeypatch.setattr(cog, "translate_to_cog", broken)
    with pytest.raises(OSError, match="disk full"):
        write_season_overview(sample, SAMPLE_GRID, ["red"])
    assert path.read_bytes() == before
    assert not temporaries(sample.root)


def test_failed_vrt_write_keeps_the_previous_file(sample, monkeypatch):
    paths = [sample.vrt_file("red", kind) for kind in OUTPUT_KINDS]
    before = [p.read_text() for p in paths]
    sample.block_file("c21_r4", "red", "p50").unlink()  # the new VRT would differ

    def broken(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(folder_store.os, "replace", broken)
    with pytest.raises(OSError, match="killed"):
        write_season_vrts(sample, SAMPLE_GRID, ["red"])
    assert [p.read_text() for p in paths] == before
    assert not temporaries(sample.root)


def test_no_built_block_writes_nothing(tmp_path):
    layout = layout_for(tmp_path, SAMPLE_GRID)
    assert write_season_vrts(layout, SAMPLE_GRID) == []
    assert write_season_overview(layout, SAMPLE_GRID) == []
    assert export_byte(layout, SAMPLE_GRID, tmp_path / "out") == []
