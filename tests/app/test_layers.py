"""Layers: request parameters into rasters to read and output bands (no data, no server)."""

from __future__ import annotations

import numpy as np
import pytest

from app.layers import all_variables_layer, check_image_layer, evaluate, make_layer
from app.presets import PRESETS
from compositor.errors import InvalidInputError


@pytest.mark.parametrize(
    ("params", "variables", "expressions"),
    [
        ({}, (("red", "p50"), ("green", "p50"), ("blue", "p50")), ()),
        ({"bands": "nir,red,green", "statistic": "p75"}, (("nir", "p75"), ("red", "p75"), ("green", "p75")), ()),
        ({"bands": "swir22"}, (("swir22", "p50"),), ()),
        ({"preset": "swir"}, (("swir22", "p50"), ("nir", "p50"), ("red", "p50")), ()),
        ({"preset": "count"}, (("red", "count"),), ()),
        ({"preset": "ndvi"}, (("nir", "p50"), ("red", "p50")), ("(nir - red) / (nir + red)",)),
        ({"preset": "ndvi", "statistic": "p25"}, (("nir", "p25"), ("red", "p25")), ("(nir - red) / (nir + red)",)),
        ({"expression": "nir_p75 - nir_p25"}, (("nir", "p75"), ("nir", "p25")), ("nir_p75 - nir_p25",)),
        ({"expression": "sqrt(red);green;blue*2"}, (("red", "p50"), ("green", "p50"), ("blue", "p50")),
         ("sqrt(red)", "green", "blue*2")),
        ({"bands": "Red", "preset": "ndvi"}, (("red", "p50"),), ()),
    ],
)
def test_make_layer(params, variables, expressions):
    layer = make_layer(**params)
    assert layer.variables == variables
    assert layer.expressions == expressions


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bands": "purple"}, "unknown band"),
        ({"bands": "red", "expression": "red"}, "not both"),
        ({"statistic": "p90"}, "unknown statistic"),
        ({"preset": "sepia"}, "unknown preset"),
        ({"expression": "__import__('os').system('x')"}, "not allowed"),
        ({"expression": "red.real"}, "not allowed"),
        ({"expression": "foo + red"}, "unknown name 'foo'"),
        ({"expression": "1 + 2"}, "uses no band"),
        ({"expression": "red;green"}, "1 or 3"),
        ({"expression": "x" * 600}, "longer than"),
        ({"expression": "red +"}, "not allowed"),
    ],
)
def test_make_layer_rejects(params, message):
    with pytest.raises(InvalidInputError, match=message):
        make_layer(**params)


def test_images_take_one_or_three_bands():
    with pytest.raises(InvalidInputError, match="1 or 3"):
        check_image_layer(make_layer(bands="red,green"))
    assert check_image_layer(make_layer(bands="red")).variables == (("red", "p50"),)


def test_point_layer_defaults_to_every_band_and_kind():
    layer = all_variables_layer()
    assert len(layer.variables) == 24
    assert layer.output_names[:4] == ["blue_p25", "blue_p50", "blue_p75", "blue_count"]
    assert all_variables_layer("nir", "count").variables == (("nir", "count"),)


def test_evaluate_expression_masks_inputs_and_non_finite_results():
    layer = make_layer(preset="ndvi")
    nir = np.ma.MaskedArray(np.array([[3000, 0, 2000]], dtype=np.uint16), mask=[[False, True, False]])
    red = np.ma.MaskedArray(np.array([[1000, 500, 0]], dtype=np.uint16), mask=[[False, False, False]])
    out = evaluate(layer, {("nir", "p50"): nir, ("red", "p50"): red})
    assert out.dtype == np.float32 and out.shape == (1, 1, 3)
    assert out[0, 0, 0] == pytest.approx(0.5)
    assert out.mask[0, 0, 1]  # nir masked
    assert out[0, 0, 2] == pytest.approx(1.0) and not out.mask[0, 0, 2]


def test_evaluate_bands_keeps_dn():
    layer = make_layer(bands="red")
    red = np.ma.MaskedArray(np.array([[7, 0]], dtype=np.uint16), mask=[[False, True]])
    out = evaluate(layer, {("red", "p50"): red})
    assert out.dtype == np.uint16 and out.tolist() == [[[7, None]]]


def test_presets_are_consistent():
    for preset in PRESETS.values():
        layer = make_layer(preset=preset.name)
        assert len(layer.output_names) in (1, 3)
        assert len(preset.rescale) == len(layer.output_names) or (preset.colormap and not preset.rescale)
