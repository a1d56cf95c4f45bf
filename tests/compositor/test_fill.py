"""Gap filling (``s2seasons fill``) on the synthetic archive: accuracy against the truth, exact flags, untouched
observations and originals, nodata where nothing is known, valid COGs, bad input, a fill failing midway.

The season filled and its neighbours are `tests.conftest.filled_season`: 2022-summer built from its cloudy scenes
only (most pixels under 3 valid observations), 2021-summer from all its scenes in the south block, 2022-spring from
all its scenes in both blocks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from compositor.bands import FILL_FLAG, FILLED, STATISTICS
from compositor.errors import InvalidInputError
from compositor.fill import choose_sources, neighbour_seasons
from compositor.layout import SeasonLayout
from compositor.seasons import Season, resolve_season
from compositor.testing.synthetic.truth import homogeneous
from tests.conftest import (FILL_ADJACENT, FILL_BANDS, FILL_BBOX, FILL_OTHER_YEAR, FILL_RESOLUTION_M, FILL_SEASON,
                            file_hashes, fill_settings)

N = 3  # S2SEASONS_FILL_MIN_OBSERVATIONS, the default
KINDS = (*STATISTICS, "count")


def layout(data: Path, season: str, variant: str = "") -> SeasonLayout:
    return SeasonLayout(data, resolve_season(season), "EPSG:3035", FILL_RESOLUTION_M, variant)


def read(data: Path, season: str, band: str, kind: str, bounds, variant: str = "") -> np.ndarray:
    """A season raster (its VRT) over ``bounds`` of the grid; 0 where the season has no block."""
    path = layout(data, season, variant).vrt_file(band, kind)
    if not path.exists():
        shape = (round((bounds[3] - bounds[1]) / FILL_RESOLUTION_M), round((bounds[2] - bounds[0]) / FILL_RESOLUTION_M))
        return np.zeros(shape, dtype=np.uint16)
    with rasterio.open(path) as src:
        return src.read(1, window=from_bounds(*bounds, transform=src.transform), boundless=True, fill_value=0)


def filled_bounds(data: Path) -> tuple[float, ...]:
    with rasterio.open(layout(data, FILL_SEASON, FILLED).vrt_file(*FILL_FLAG)) as src:
        return tuple(src.bounds)


def min_count(data: Path, season: str, bounds) -> np.ndarray:
    """A pixel's observations: the smallest count of its bands."""
    return np.min([read(data, season, band, "count", bounds) for band in FILL_BANDS], axis=0)


# --- the rule, on planted counts ----------------------------------------------------------------


@pytest.mark.parametrize(("own", "years", "adjacent", "source"), [
    (3, (9, 9), (9, 9), 0),  # observed often enough: its own values
    (2, (3, 0), (9, 9), 1),  # too few: the year before, which has enough
    (2, (0, 4), (9, 9), 2),  # ... or the year after
    (2, (3, 5), (9, 9), 2),  # both other years have enough: the one with more observations
    (1, (4, 4), (9, 9), 1),  # a tie: the year before
    (2, (1, 2), (9, 9), 0),  # no other year has enough: its own few, not an adjacent season's
    (0, (1, 2), (9, 9), 2),  # never observed: the other year that saw it most, even with few
    (0, (0, 0), (2, 5), 4),  # no year of the season saw it: the adjacent season that saw it most
    (0, (0, 0), (0, 1), 4),  # ... even once
    (0, (0, 0), (0, 0), -1),  # nothing anywhere: no source
])
def test_choose_sources_ranks_as_documented(own, years, adjacent, source):
    counts = np.array([own, *years, *adjacent]).reshape(5, 1, 1)
    assert choose_sources(counts, (0, 1, 1, 2, 2), N)[0, 0] == source


def test_neighbours_are_the_same_season_of_other_years_then_the_adjacent_seasons():
    assert [(n.season.name, n.tier) for n in neighbour_seasons(resolve_season("2022-winter"))] == [
        ("2021-winter", 1), ("2023-winter", 1), ("2021-autumn", 2), ("2022-spring", 2)]
    import datetime as dt

    with pytest.raises(InvalidInputError, match="not a calendar season"):
        neighbour_seasons(Season(dt.date(2022, 6, 1), dt.date(2022, 8, 31), "alps-2022"))


# --- the fill of the synthetic archive ----------------------------------------------------------


def test_flags_follow_the_rule_exactly(filled_season):
    """The flag of every pixel, computed apart with numpy from the three seasons' count layers, and the values
    taken from the season the flag names."""
    data = filled_season.data
    bounds = filled_bounds(data)
    own, year, adjacent = (min_count(data, s, bounds) for s in (FILL_SEASON, FILL_OTHER_YEAR, FILL_ADJACENT))
    own_any = np.max([read(data, FILL_SEASON, b, "count", bounds) for b in FILL_BANDS], axis=0) > 0
    expected = np.select(
        [own >= N, year >= N, own >= 1, year >= 1, adjacent >= 1, own_any],
        [0, 1, 0, 1, 2, 0], default=255)
    flag = read(data, FILL_SEASON, *FILL_FLAG, bounds, FILLED)
    assert np.array_equal(flag, expected)
    counts = {v: int((flag == v).sum()) for v in (0, 1, 2, 255)}
    assert counts[1] > 100 and counts[2] > 100 and ((own >= 1) & (own < N) & (flag == 0)).sum() > 10, counts
    for band in FILL_BANDS:
        for kind in KINDS:
            filled = read(data, FILL_SEASON, band, kind, bounds, FILLED)
            for value, season in ((0, FILL_SEASON), (1, FILL_OTHER_YEAR), (2, FILL_ADJACENT)):
                source = read(data, season, band, kind, bounds)
                assert np.array_equal(filled[flag == value], source[flag == value]), (band, kind, value)


def test_observed_pixels_and_the_original_files_are_untouched(filled_season):
    data = filled_season.data
    bounds = filled_bounds(data)
    observed = min_count(data, FILL_SEASON, bounds) >= N
    assert observed.sum() > 100
    for band in FILL_BANDS:
        for kind in KINDS:
            original = read(data, FILL_SEASON, band, kind, bounds)
            filled = read(data, FILL_SEASON, band, kind, bounds, FILLED)
            assert np.array_equal(filled[observed], original[observed]), (band, kind)
    rasters = {k: v for k, v in filled_season.originals.items() if k.endswith((".tif", ".vrt"))}
    now = file_hashes(data / FILL_SEASON)
    assert rasters and {k: now[k] for k in rasters} == rasters


def test_pixels_no_season_observed_stay_nodata(filled_season):
    data = filled_season.data
    bounds = filled_bounds(data)
    seen = np.zeros(read(data, FILL_SEASON, "red", "count", bounds).shape, dtype=bool)
    for season in (FILL_SEASON, FILL_OTHER_YEAR, FILL_ADJACENT):
        for band in FILL_BANDS:
            seen |= read(data, season, band, "count", bounds) > 0
    assert (~seen).sum() > 1000  # the blocks beyond the archive's data, and a few cloudy pixels in it
    assert (read(data, FILL_SEASON, *FILL_FLAG, bounds, FILLED)[~seen] == 255).all()
    for band in FILL_BANDS:
        for kind in KINDS:
            assert (read(data, FILL_SEASON, band, kind, bounds, FILLED)[~seen] == 0).all(), (band, kind)


def test_filled_values_are_closer_to_the_truth_than_the_few_observations(filled_season):
    """Mean absolute error (DN) of P50 against the generator's truth (the clear-sky median of 2022-summer), over the
    bands built, inside land-cover patches (where a 300 m composite can equal the truth at the pixel centre):
    where the season saw a pixel once or twice and the year before saw it 3 times or more, the year before's P50 is
    closer to the truth than the season's own. The season before (spring) is not: its phenology differs, which is
    why the rule keeps the season's own few observations rather than an adjacent season's."""
    data, archive = filled_season.data, filled_season.archive
    with rasterio.open(archive / "truth" / FILL_SEASON / "red_p50.tif") as src:
        window = tuple(src.bounds)
    own = min_count(data, FILL_SEASON, window)
    adjacent = min_count(data, FILL_ADJACENT, window)
    flag = read(data, FILL_SEASON, *FILL_FLAG, window, FILLED)
    errors: dict[str, list[float]] = {"own few": [], "filled from the year before": [], "own few (vs spring)": [],
                                      "spring": [], "filled from spring (never observed)": []}
    sizes = {}
    for band in FILL_BANDS:
        with rasterio.open(archive / "truth" / FILL_SEASON / f"{band}_p50.tif") as src:
            truth = src.read(1).astype(float)
        patch = homogeneous(truth) & (truth > 0)
        few = patch & (own >= 1) & (own < N)
        filled_year = few & (flag == 1)
        spring_instead = few & (flag == 0) & (adjacent >= N)
        never = patch & (own == 0) & (flag == 2)
        mine = read(data, FILL_SEASON, band, "p50", window).astype(float)
        filled = read(data, FILL_SEASON, band, "p50", window, FILLED).astype(float)
        spring = read(data, FILL_ADJACENT, band, "p50", window).astype(float)
        for name, values, where in (("own few", mine, filled_year),
                                    ("filled from the year before", filled, filled_year),
                                    ("own few (vs spring)", mine, spring_instead), ("spring", spring, spring_instead),
                                    ("filled from spring (never observed)", filled, never)):
            errors[name].append(float(np.abs(values[where] - truth[where]).mean()))
            sizes[name] = int(where.sum())
        errors.setdefault("truth (never observed)", []).append(float(truth[never].mean()))
    mae = {name: round(float(np.mean(values)), 1) for name, values in errors.items()}
    print("P50 MAE vs truth (DN), pixels:", json.dumps({k: [mae[k], sizes.get(k)] for k in mae}))
    assert min(sizes.values()) >= 20, sizes
    assert mae["filled from the year before"] < 0.9 * mae["own few"], mae
    assert mae["spring"] > mae["own few (vs spring)"], mae
    # where nothing of the season was seen, spring's values instead of nodata: within a third of the reflectance
    assert mae["filled from spring (never observed)"] < mae["truth (never observed)"] / 3, mae


def test_the_outputs_are_valid_cogs_with_vrts_stac_and_a_record(filled_season):
    data = filled_season.data
    variant = layout(data, FILL_SEASON, FILLED)
    files = sorted(Path(variant.blocks_dir).glob("*/*.tif")) + sorted(Path(variant.overview_dir).glob("*.tif"))
    assert len(files) == 2 * (len(FILL_BANDS) * 4 + 1) + len(FILL_BANDS) * 4 + 1
    for path in files:
        valid, errors, _ = cog_validate(str(path), quiet=True)
        assert valid, (path.name, errors)
    with rasterio.open(files[-1] if "fill_flag" in files[-1].name else variant.vrt_file(*FILL_FLAG)) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 255 and "Fill flag" in src.descriptions[0]
    assert Path(variant.vrt_file("red", "p50")).name.endswith("_filled.vrt")
    catalog = json.loads((Path(variant.catalog_dir) / "catalog.json").read_text())
    assert catalog["id"] == f"s2seasons-{FILL_SEASON}-filled"
    item = json.loads(next(Path(variant.catalog_dir).rglob(f"{FILL_SEASON}-filled_c56_r35.json")).read_text())
    assert item["assets"]["fill_flag"]["raster:bands"][0] == {"data_type": "uint8", "spatial_resolution": 300.0,
                                                              "nodata": 255}
    record = json.loads((data / FILL_SEASON / "season.json").read_text())
    assert record["products"] == ["bands", FILLED]
    assert record[FILLED]["min_observations"] == N and record[FILLED]["used"] == [FILL_OTHER_YEAR, FILL_ADJACENT]
    assert record[FILLED]["neighbours"] == {"same_season_other_year": ["2021-summer", "2023-summer"],
                                            "adjacent_season": ["2022-spring", "2022-autumn"]}


def cli(*args: str):
    from app.cli import cli as s2seasons

    return CliRunner().invoke(s2seasons, ["fill", *args])


def test_the_command_skips_blocks_up_to_date_and_shows_progress(filled_season):
    result = cli("--season", FILL_SEASON, "--bbox", ",".join(map(str, FILL_BBOX)), "--out", str(filled_season.data))
    assert result.exit_code == 0, result.output
    assert "blocks: 2/2 (100 %)" in result.output  # a progress line: the output is not a terminal
    assert "blocks: 0 filled, 2 skipped (up to date), 0 failed" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--season", "2022-summr"], "unknown season '2022-summr'"),
    (["--bbox", "10,48,11"], "not four numbers"),
    (["--bbox", "14,50,14.1,50.1"], "has no built block in bbox 14,50,14.1,50.1: build it there first "
                                    "(s2seasons build --season 2022-summer --bbox 14,50,14.1,50.1)"),
    (["--season", "2023-summer"], "season 2023-summer is not built under"),
    (["--min-observations", "0"], "--min-observations 0: give 1 or more"),
], ids=["unknown season", "bad bbox", "not built in the bbox", "season not built", "bad minimum"])
def test_bad_input_says_what_to_change(filled_season, args, message):
    options = {"--season": FILL_SEASON, "--bbox": ",".join(map(str, FILL_BBOX)), "--out": str(filled_season.data)}
    given = dict(zip(args[::2], args[1::2]))
    result = cli(*[part for key, value in {**options, **given}.items() for part in (key, value)])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_no_neighbour_built_is_an_error_and_writes_nothing(filled_season, tmp_path):
    shutil.copytree(filled_season.data / FILL_SEASON, tmp_path / FILL_SEASON, ignore=shutil.ignore_patterns(FILLED))
    result = cli("--season", FILL_SEASON, "--bbox", ",".join(map(str, FILL_BBOX)), "--out", str(tmp_path))
    assert result.exit_code == 2
    assert ("no neighbour season of 2022-summer is built in bbox 10.02,47.96,10.12,48.04: build the same season of "
            "another year (2021-summer or 2023-summer) or an adjacent season (2022-spring or 2022-autumn) there "
            "first") in " ".join(result.output.split())
    assert not (tmp_path / FILL_SEASON / FILLED).exists()


def test_a_fill_failing_midway_keeps_the_blocks_it_finished(filled_season, tmp_path, monkeypatch):
    import compositor.fill as fill

    for season in (FILL_SEASON, FILL_OTHER_YEAR, FILL_ADJACENT):
        shutil.copytree(filled_season.data / season, tmp_path / season, ignore=shutil.ignore_patterns(FILLED))
    real = fill._fill_into

    def fail_north(job, tmp):
        if job.block.id == "c56_r36":
            raise OSError("disk full")
        return real(job, tmp)

    monkeypatch.setattr(fill, "_fill_into", fail_north)
    settings = fill_settings(tmp_path, filled_season.catalog)
    summary = fill.run_fill(settings, FILL_SEASON, FILL_BBOX, progress=False)
    assert [(r.block_id, r.status) for r in summary.results] == [("c56_r36", "failed"), ("c56_r35", "filled")]
    blocks = tmp_path / FILL_SEASON / FILLED / "blocks"
    assert sorted(p.parent.name for p in blocks.glob("*/manifest.json")) == ["c56_r35"]
    assert not list(blocks.glob(".*.tmp-*"))  # no half-written block left behind
    monkeypatch.setattr(fill, "_fill_into", real)
    summary = fill.run_fill(settings, FILL_SEASON, FILL_BBOX, progress=False)
    assert [(r.block_id, r.status) for r in summary.results] == [("c56_r36", "filled"), ("c56_r35", "skipped")]


def test_neighbours_without_the_seasons_bands_stop_the_fill(filled_season, tmp_path):
    """Neighbours built there but none with every band of the season's blocks: an error naming the bands, not a
    variant equal to the season. (Here the neighbours' manifests are made to say they lack swir16.)"""
    from compositor.fill import run_fill
    from tests.conftest import fill_settings

    data = tmp_path / "data"
    for season in (FILL_SEASON, FILL_OTHER_YEAR, FILL_ADJACENT):
        shutil.copytree(filled_season.data / season, data / season, ignore=shutil.ignore_patterns(FILLED))
    for season in (FILL_OTHER_YEAR, FILL_ADJACENT):
        for manifest in (data / season / "blocks").glob("*/manifest.json"):
            record = json.loads(manifest.read_text())
            record["bands"] = [b for b in record["bands"] if b != "swir16"]
            record["files"] = [f for f in record["files"] if "_swir16_" not in f]
            manifest.write_text(json.dumps(record))
    with pytest.raises(InvalidInputError, match="has all the bands of its blocks .*nir, red, swir16.*--bands"):
        run_fill(fill_settings(data, filled_season.catalog), FILL_SEASON, FILL_BBOX, progress=False)
    assert not (data / FILL_SEASON / FILLED).exists()
