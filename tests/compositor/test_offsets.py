"""The offset rule on 473 real items' metadata, and the data check on scenes shaped like the real mis-tagged ones."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from compositor.bands import ASSET_KEYS
from compositor.catalog import scene_from_item
from compositor.offsets import (
    SOURCE_BASELINE,
    SOURCE_DATA_CHECK,
    SOURCE_DATE,
    SOURCE_FLAG,
    SOURCE_RASTER_BANDS,
    check_offsets,
    check_scene_offset,
    clear_offset_cache,
    item_offset,
)
from compositor.testing.planted import planted_scene

RECORDS = Path(__file__).resolve().parents[1] / "data" / "offsets" / "earth-search-offsets.jsonl"
# stactools' fixture whose product metadata XML states BOA_ADD_OFFSET -7000 (see tests/data/offsets/README.md)
STATED_7000 = {"S2A_OPER_MSI_L2A_TL_VGS1_20220401T110010_A035382_T34LBQ", "S2A_T34LBQ_20220401T090142_L2A"}


def records() -> list[dict]:
    return [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]


def as_item_metadata(record: dict) -> tuple[dict, dict, dt.datetime]:
    """The properties and assets of the real item, as far as the record gives them."""
    props = {}
    if record["processing_baseline"] is not None:
        props["s2:processing_baseline"] = record["processing_baseline"]
    if record["boa_offset_applied"] is not None:
        props["earthsearch:boa_offset_applied"] = record["boa_offset_applied"]
    band = {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": record["b02_offset"]}
    assets = {"blue": {"href": "B02.tif", "raster:bands": [band]}}
    when = dt.datetime.fromisoformat(record["datetime"].replace("Z", "+00:00"))
    return props, assets, when


def expected_offset(record: dict) -> tuple[int, str]:
    """What is true of each real item, from what is known of its catalog, not from the rule's code:
    Earth Search sentinel-2-l2a items (the ones with the flag) removed the offset where the flag says so
    (the maintainers: the flag is the truth there, raster:bands says -0.1 regardless); catalogs without
    the flag do not harmonise, so a baseline-04.00+ product (from 2022-01-25 when the baseline is not
    given) carries ESA's BOA_ADD_OFFSET of -1000, older ones none; the fixture product stating -7000 carries 7000."""
    baseline, flag = record["processing_baseline"], record["boa_offset_applied"]
    when = dt.datetime.fromisoformat(record["datetime"].replace("Z", "+00:00"))
    new = baseline >= "04.00" if baseline else when >= dt.datetime(2022, 1, 25, tzinfo=dt.UTC)
    if flag is not None:
        return (0 if flag or not new else 1000), SOURCE_FLAG
    if record["id"] in STATED_7000:
        return 7000, SOURCE_RASTER_BANDS
    return (1000 if new else 0), SOURCE_RASTER_BANDS


def test_the_rule_on_every_real_item(record_property):
    rows = records()
    assert len(rows) == 473
    figures: collections.Counter = collections.Counter()
    for record in rows:
        props, assets, when = as_item_metadata(record)
        decided = item_offset(props, assets, when, ASSET_KEYS)
        assert (decided.offset_dn, decided.source) == expected_offset(record), record
        figures[(decided.source, decided.offset_dn)] += 1
    record_property("offset_rule", dict((f"{s} {o}", n) for (s, o), n in figures.items()))
    assert figures == {
        (SOURCE_FLAG, 0): 186 + 56,  # flag true (raster:bands -0.1 on every one) / flag false before 04.00
        (SOURCE_FLAG, 1000): 2,  # flag false, baseline 04.00: offset still in the data
        (SOURCE_RASTER_BANDS, 1000): 30 + 185,  # 30 Earth Search L1C, 185 c1-l2a / CDSE / stactools L2A
        (SOURCE_RASTER_BANDS, 0): 12,  # products before baseline 04.00
        (SOURCE_RASTER_BANDS, 7000): 2,
    }


def test_raster_bands_alone_would_be_wrong_on_earth_search():
    """On the flag's items raster:bands says -0.1 whatever the data: trusting it first would double-subtract."""
    wrong = 0
    for record in records():
        if record["boa_offset_applied"] is True:
            _, assets, when = as_item_metadata(record)
            assert item_offset({}, assets, when, ASSET_KEYS).offset_dn == 1000
            wrong += 1
    assert wrong == 186


@pytest.mark.parametrize(
    ("props", "offset", "source"),
    [
        ({"s2:processing_baseline": "05.11"}, 1000, SOURCE_BASELINE),
        ({"s2:processing_baseline": "03.01"}, 0, SOURCE_BASELINE),
        ({}, 1000, SOURCE_DATE),  # 2023: after 2022-01-25
    ],
)
def test_without_flag_or_raster_bands_the_baseline_then_the_date(props, offset, source):
    decided = item_offset(props, {"blue": {"href": "x"}}, dt.datetime(2023, 5, 1, tzinfo=dt.UTC), ASSET_KEYS)
    assert (decided.offset_dn, decided.source) == (offset, source)
    before = item_offset({}, {}, dt.datetime(2022, 1, 24, 23, 59, tzinfo=dt.UTC), ASSET_KEYS)
    assert (before.offset_dn, before.source) == (0, SOURCE_DATE)


def test_c1_item_offset_from_raster_bands(tmp_path):
    """A sentinel-2-c1-l2a-like item: no flag, band-id keys CDSE-style, offset -0.1 in raster:bands."""
    band = {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}
    names = {"blue": "B02_10m", "green": "B03_10m", "red": "B04_10m", "nir": "B08_10m", "swir16": "B11_20m",
             "swir22": "B12_20m", "scl": "SCL_20m"}
    item = {"type": "Feature", "id": "S2B_T33UXP_20250302T095029_L2A",
            "geometry": {"type": "Polygon", "coordinates": [[[15, 50], [16, 50], [16, 51], [15, 51], [15, 50]]]},
            "properties": {"datetime": "2025-03-02T09:50:29Z", "s2:processing_baseline": "05.11", "proj:epsg": 32633,
                           "sat:relative_orbit": 79, "platform": "sentinel-2b"},
            "assets": {key: {"href": f"{key}.tif", **({"raster:bands": [band]} if key != "SCL_20m" else {})}
                       for key in names.values()}}
    scene = scene_from_item(item)
    assert (scene.offset_dn, scene.offset_source) == (1000, SOURCE_RASTER_BANDS)
    assert scene.hrefs["swir22"] == "B12_20m.tif" and scene.hrefs["scl"] == "SCL_20m.tif"


# --- the data check ---------------------------------------------------------------------------------

CRS = "EPSG:32633"
TRANSFORM = Affine(200.0, 0, 500_000.0, 0, -200.0, 5_600_000.0)
SIZE = 300  # 60 km at 200 m


def surface(kind: str, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Reflectance * 10000 per band and SCL of a scene: vegetation with a lake and cloud, or desert."""
    rng = np.random.default_rng(seed)
    scl = np.full((SIZE, SIZE), 4, dtype=np.uint8)
    if kind == "vegetation":  # swir22 of vegetation 0.04..0.12, a lake at 0.00..0.02
        refl = {"blue": 300, "green": 600, "red": 400, "nir": 3000, "swir16": 1500, "swir22": 800}
        bands = {b: rng.normal(v, 0.25 * v, (SIZE, SIZE)) for b, v in refl.items()}
        lake = np.zeros((SIZE, SIZE), bool)
        lake[40:100, 50:150] = True
        scl[lake] = 6
        for b in bands:
            bands[b][lake] = rng.uniform(0, 200, lake.sum())
    else:  # desert: swir22 0.3..0.5, nothing dark
        refl = {"blue": 1500, "green": 2200, "red": 3000, "nir": 3500, "swir16": 4500, "swir22": 4000}
        bands = {b: rng.normal(v, 0.08 * v, (SIZE, SIZE)) for b, v in refl.items()}
        scl[:] = 5
    scl[200:260, 200:280] = 9  # a cloud
    for b in bands:
        bands[b][200:260, 200:280] = 6000
    scl[:, :10] = 0  # outside the swath
    return bands, scl


def scene(tmp_path: Path, name: str, kind: str, *, data_offset: int, item_offset_dn: int, baseline: str,
          when: dt.datetime):
    bands, scl = surface(kind)
    stored = {b: np.where(scl > 0, np.clip(np.rint(v) + data_offset, 1, 65535), 0).astype(np.uint16)
              for b, v in bands.items()}
    planted = planted_scene(tmp_path, name, when, 79, CRS, TRANSFORM, stored, scl, offset_dn=data_offset)
    source = SOURCE_FLAG
    return dataclasses.replace(planted, processing_baseline=baseline, offset_dn=item_offset_dn, offset_source=source)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_offset_cache()
    yield
    clear_offset_cache()


def test_flag_false_but_data_already_shifted_is_corrected(tmp_path):
    """cirrus-earth-search#33 (S2B_20HMD_20221023, baseline 04.00) and earth-search#71 (S2B_33UXP_20250302,
    05.11): the flag says the offset is still there, the pixels are already reflectance * 10000."""
    cases = [scene(tmp_path, "S2B_20HMD_20221023_0_L2A", "vegetation", data_offset=0, item_offset_dn=1000,
                   baseline="04.00", when=dt.datetime(2022, 10, 23, 14, tzinfo=dt.UTC)),
             scene(tmp_path, "S2B_33UXP_20250302_0_L2A", "vegetation", data_offset=0, item_offset_dn=1000,
                   baseline="05.11", when=dt.datetime(2025, 3, 2, 9, 50, tzinfo=dt.UTC))]
    fixed, corrections = check_offsets(cases)
    assert [(s.offset_dn, s.offset_source) for s in fixed] == [(0, SOURCE_DATA_CHECK)] * 2
    assert [(c.scene, c.item_offset_dn, c.used_offset_dn) for c in corrections] == [
        ("S2B_20HMD_20221023_0_L2A", 1000, 0), ("S2B_33UXP_20250302_0_L2A", 1000, 0)]
    record = corrections[0].record()
    assert set(record) >= {"scene", "item_offset_dn", "used_offset_dn", "reason"} and "already removed" in record["reason"]


def test_correctly_tagged_scenes_are_untouched(tmp_path):
    when = dt.datetime(2022, 8, 1, 10, tzinfo=dt.UTC)
    cases = [
        scene(tmp_path, "with-offset", "vegetation", data_offset=1000, item_offset_dn=1000, baseline="04.00", when=when),
        scene(tmp_path, "removed", "vegetation", data_offset=0, item_offset_dn=0, baseline="04.00", when=when),
        scene(tmp_path, "old", "vegetation", data_offset=0, item_offset_dn=0, baseline="02.14",
              when=dt.datetime(2020, 8, 1, 10, tzinfo=dt.UTC)),
        scene(tmp_path, "desert-with-offset", "desert", data_offset=1000, item_offset_dn=1000, baseline="04.00", when=when),
        scene(tmp_path, "desert-removed", "desert", data_offset=0, item_offset_dn=0, baseline="04.00", when=when),
    ]
    fixed, corrections = check_offsets(cases)
    assert corrections == [] and fixed == cases


def test_desert_tells_nothing_so_the_metadata_is_kept(tmp_path):
    """Bright desert, no dark pixel: shifted or not, the data cannot contradict the item."""
    when = dt.datetime(2022, 8, 1, 10, tzinfo=dt.UTC)
    mistagged = scene(tmp_path, "desert", "desert", data_offset=0, item_offset_dn=1000, baseline="04.00", when=when)
    assert check_scene_offset(mistagged) is None


def test_the_other_direction_flag_true_but_offset_still_there(tmp_path):
    """Item says removed, baseline 05.11, yet its lake reads 1000..1200 in swir22: the offset is there."""
    when = dt.datetime(2024, 7, 1, 10, tzinfo=dt.UTC)
    mistagged = scene(tmp_path, "still-shifted", "vegetation", data_offset=1000, item_offset_dn=0, baseline="05.11",
                      when=when)
    (fixed,), (correction,) = check_offsets([mistagged])
    assert (fixed.offset_dn, correction.used_offset_dn, correction.item_offset_dn) == (1000, 1000, 0)
    assert "still in the data" in correction.reason


def test_real_desert_scene_is_left_as_its_metadata_says(sample_scene):
    """The real 29RKH desert scene (baseline 02.14, no offset): whatever its item says, nothing is decided
    from its pixels: no dark water or vegetation, and a product before 04.00 never carries the offset."""
    assert check_scene_offset(sample_scene) is None
    as_if_04 = dataclasses.replace(sample_scene, processing_baseline="04.00",
                                   datetime=dt.datetime(2022, 2, 19, 11, 34, tzinfo=dt.UTC))
    assert check_scene_offset(as_if_04) is None  # no water: the "offset still there" direction cannot tell


def test_unreadable_scene_is_returned_unchanged_and_not_cached(tmp_path):
    when = dt.datetime(2022, 10, 23, 14, tzinfo=dt.UTC)
    bad = scene(tmp_path, "gone", "vegetation", data_offset=0, item_offset_dn=1000, baseline="04.00", when=when)
    scl = Path(bad.hrefs["scl"])
    saved = scl.read_bytes()
    scl.unlink()
    (same,), corrections = check_offsets([bad])
    assert same == bad and corrections == []
    scl.write_bytes(saved)  # readable again: checked now
    (fixed,), (correction,) = check_offsets([bad])
    assert fixed.offset_dn == 0 and correction.scene == "gone"
