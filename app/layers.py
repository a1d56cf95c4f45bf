"""What a request reads from a season and how its output bands are computed.

A `Layer` names the rasters it needs as ``(band, kind)`` pairs (kind: p25, p50, p75 or count) and
either returns them as they are (1 or 3 bands: uint16 DN, or observations for count) or evaluates
an expression over them (float32). In expressions a band name stands for the request's statistic
(``(nir - red) / (nir + red)``) and ``band_kind`` names one explicitly (``nir_p75 - nir_p25``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numexpr
import numpy as np
from rio_tiler.errors import InvalidExpression
from rio_tiler.expression import get_expression_blocks, validate_expression

from compositor.bands import (BAND_NAMES, BANDS_BY_NAME, COUNT, FILL, FILL_FLAG, FLAG, INDICES, MEDOID, MEDOID_DOY, QA,
                              QA_VARIABLE, STATISTICS, resolve_statistic)
from compositor.describe import describe_kind, is_index
from compositor.errors import BandNotFoundError, InvalidInputError
from app.presets import DEFAULT_PRESET, PRESETS, Preset, resolve_preset

KINDS: tuple[str, ...] = (*STATISTICS, COUNT)
INDEX_NAMES: tuple[str, ...] = tuple(i.name for i in INDICES)
MAX_EXPRESSION_CHARS = 512
Variable = tuple[str, str]  # (band, kind)


@dataclass(frozen=True)
class Layer:
    """Rasters to read (``variables``) and, optionally, expression blocks computed from them."""

    variables: tuple[Variable, ...]
    statistic: str
    expressions: tuple[str, ...] = ()
    preset: Preset | None = None
    everything: bool = False  # every band and kind (a point query's default): the QA layer too where built

    @property
    def bands(self) -> tuple[str, ...]:
        """Distinct bands read, in product order, then indices, then "medoid" for the medoid's rasters (its six bands
        come with the product, whatever bands a block holds), then the QA layer's pseudo-band "qa"."""
        return variable_bands(self.variables)

    def with_variables(self, extra: tuple[Variable, ...]) -> Layer:
        """The layer with ``extra`` rasters read too (a point query of a season with indices or the QA layer)."""
        added = tuple(v for v in extra if v not in self.variables)
        return Layer((*self.variables, *added), self.statistic, self.expressions, self.preset, self.everything)

    @property
    def output_names(self) -> list[str]:
        if self.expressions:
            return list(self.expressions)
        return [variable_name(v) for v in self.variables]

    @property
    def output_descriptions(self) -> list[str]:
        if self.expressions:
            return list(self.expressions)
        return [describe_variable(v) for v in self.variables]

    def key(self) -> tuple:
        """Hashable identity (for caches)."""
        return (self.variables, self.expressions)


def variable_bands(variables: Iterable[Variable]) -> tuple[str, ...]:
    """The bands rasters of ``variables`` come from, in product order, then indices, then "medoid" for the
    medoid's rasters (a block built with the medoid has them for all six bands), then the QA layer's "qa" and the
    fill flag's "fill" (of a filled variant): what a block must hold to be read for them, and what an on-the-fly
    chunk composites."""
    variables = list(variables)
    wanted = {band for band, kind in variables if kind != MEDOID and band != MEDOID}
    medoid = any(kind == MEDOID or band == MEDOID for band, kind in variables)
    indices = tuple(sorted(b for b in wanted if is_index(b)))
    return (tuple(b for b in BAND_NAMES if b in wanted) + indices + ((MEDOID,) if medoid else ())
            + ((QA,) if QA in wanted else ()) + ((FILL,) if FILL in wanted else ()))


def variable_name(variable: Variable) -> str:
    band, kind = variable
    return f"{band}_{kind}"


def describe_variable(variable: Variable) -> str:
    band, kind = variable
    if variable in (QA_VARIABLE, MEDOID_DOY, FILL_FLAG) or is_index(band) or kind == MEDOID:
        return describe_kind(band, kind)
    name = BANDS_BY_NAME[band].description
    return f"{name}: number of valid observations" if kind == COUNT else f"{name}: {kind.upper()} (DN, scale 0.0001)"


def parse_band_list(text: str) -> tuple[str, ...]:
    """``"nir,red,green"`` as band names in the given order (images take 1 or 3: `check_image_layer`)."""
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in BANDS_BY_NAME]
    if unknown or not names:
        raise BandNotFoundError(f"unknown band {', '.join(map(repr, unknown))}: use any of {', '.join(BAND_NAMES)}")
    if len(names) > 6:
        raise InvalidInputError(f"give at most 6 bands (got {len(names)})")
    return names


def check_image_layer(layer: Layer) -> Layer:
    """Images have 1 or 3 bands (grey or RGB)."""
    n = len(layer.output_names)
    if n not in (1, 3):
        raise InvalidInputError(f"an image takes 1 or 3 bands or expressions (got {n}), e.g. bands=red,green,blue")
    return layer


def _expression_variables(block: str, statistic: str) -> list[tuple[str, Variable]]:
    """The names an expression block uses, each with the raster it stands for."""
    try:
        tree = ast.parse(block, mode="eval")
    except SyntaxError as exc:  # validate_expression ran first; defensive
        raise InvalidInputError(f"expression {block!r} is not valid: {exc.msg}") from None
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    found: list[tuple[str, Variable]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or node.id in called:
            continue
        name = node.id
        if name in BANDS_BY_NAME:
            found.append((name, (name, statistic)))
            continue
        if name in INDEX_NAMES and statistic in STATISTICS:  # an index's percentile (a season built with --products indices, or on the fly)
            found.append((name, (name, statistic)))
            continue
        band, _, kind = name.rpartition("_")
        if (band in BANDS_BY_NAME and kind in (*KINDS, MEDOID)) or (band, kind) in (QA_VARIABLE, MEDOID_DOY, FILL_FLAG):
            found.append((name, (band, kind)))
            continue
        if band.isidentifier() and band not in (QA, FILL) and kind in STATISTICS:  # an index's, checked later
            found.append((name, (band, kind)))
            continue
        raise InvalidInputError(
            f"expression uses unknown name {name!r}: use band names ({', '.join(BAND_NAMES)}), "
            "optionally with _p25, _p50, _p75, _count or _medoid (e.g. nir_p75), indices with a statistic "
            "(ndvi_p50), medoid_doy (the medoid's day of year), qa_seen (observations seen) or fill_flag (where a "
            "filled variant's values came from)"
        )
    return found


def parse_expression(expression: str, statistic: str) -> tuple[tuple[str, ...], tuple[Variable, ...]]:
    """Validated expression blocks (1 or 3, ';'-separated) and the rasters they read."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidInputError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        validate_expression(expression)
    except InvalidExpression as exc:
        raise InvalidInputError(f"expression {expression!r} is not allowed: {exc}") from None
    blocks = tuple(b.strip() for b in get_expression_blocks(expression) if b.strip())
    if len(blocks) not in (1, 3):
        raise InvalidInputError(f"give 1 or 3 ';'-separated expressions (got {len(blocks)})")
    variables: dict[Variable, None] = {}
    for block in blocks:
        used = _expression_variables(block, statistic)
        if not used:
            raise InvalidInputError(f"expression {block!r} uses no band: e.g. (nir - red) / (nir + red)")
        for _, variable in used:
            variables[variable] = None
    return blocks, tuple(variables)


def make_layer(bands: str | None = None, statistic: str | None = None, expression: str | None = None,
               preset: str | None = None, *, default_preset: str | None = DEFAULT_PRESET) -> Layer:
    """A layer from request parameters; explicit ``bands``/``expression``/``statistic`` override the preset.

    Without any of them the ``default_preset`` is used (true colour for images). Raises
    `InvalidInputError` (a 4xx) for unknown names, 2 or 4+ bands, or a disallowed expression.
    """
    if bands and expression:
        raise InvalidInputError("give either bands or expression, not both")
    chosen = resolve_preset(preset) if preset else None
    if chosen is None and not bands and not expression and default_preset:
        chosen = PRESETS[default_preset]
    kind = resolve_statistic(statistic) if statistic else (chosen.statistic if chosen else "p50")
    if chosen is not None and chosen.statistic == FLAG and not bands and not expression:
        return Layer((FILL_FLAG,), FLAG, (), chosen)  # classes: no statistic to choose
    if expression or (not bands and chosen and chosen.expression):
        text = expression or chosen.expression  # type: ignore[union-attr]
        if kind == COUNT and not expression:
            kind = "p50"
        blocks, variables = parse_expression(text, kind)
        return Layer(variables, kind, blocks, chosen)
    names = parse_band_list(bands) if bands else (chosen.bands if chosen else ())
    if not names:
        raise InvalidInputError("give bands, an expression or a preset")
    return Layer(tuple((b, kind) for b in names), kind, (), chosen)


def all_variables_layer(bands: str | None = None, statistic: str | None = None) -> Layer:
    """Every kind of every band (or of the given bands / statistic): the default of point queries."""
    names = parse_band_list(bands) if bands else BAND_NAMES
    kinds = (resolve_statistic(statistic),) if statistic else KINDS
    return Layer(tuple((b, k) for b in names for k in kinds), kinds[0] if statistic else "p50",
                 everything=not bands and not statistic)


def evaluate(layer: Layer, values: Mapping[Variable, np.ma.MaskedArray]) -> np.ma.MaskedArray:
    """The layer's output bands ``(n, ...)`` from the rasters it read.

    Without expressions: the rasters stacked as they are (uint16). With expressions: float32, masked
    where any input is masked or the result is not finite (a division by zero, for instance).
    """
    if not layer.expressions:
        return np.ma.stack([values[v] for v in layer.variables])
    first = values[layer.variables[0]]
    mask = np.zeros(first.shape, dtype=bool)
    local: dict[str, np.ndarray] = {}
    for variable in layer.variables:
        array = values[variable]
        mask |= np.ma.getmaskarray(array)
        data = array.filled(0).astype(np.float32)
        local[variable_name(variable)] = data
        if variable[1] == layer.statistic:
            local.setdefault(variable[0], data)
    outputs = []
    for block in layer.expressions:
        try:
            with np.errstate(all="ignore"):
                result = numexpr.evaluate(block, local_dict=local)
        except Exception as exc:  # numexpr's errors are not documented; any failure is the expression's
            raise InvalidInputError(f"cannot evaluate expression {block!r}: {exc}") from None
        result = np.broadcast_to(np.asarray(result, dtype=np.float32), first.shape)
        outputs.append(np.ma.MaskedArray(result, mask=mask | ~np.isfinite(result)))
    return np.ma.stack(outputs)
