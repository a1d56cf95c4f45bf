// The side panel's controls: filled from the presets, bands and seasons, and reflecting the view.

import { fillsStatistic } from "./api.js";
import { onTheFlyChoices } from "./seasons.js";

export const CUSTOM = "custom";
const STATISTIC_LABELS = { p25: "P25", p50: "P50", p75: "P75", medoid: "Medoid" };

const byId = (id) => document.getElementById(id);

function radio(name, value, parts, className) {
  const label = document.createElement("label");
  label.className = className;
  const input = document.createElement("input");
  input.type = "radio";
  input.name = name;
  input.value = value;
  label.append(input, ...parts);
  return label;
}

function span(className, text) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  return node;
}

/** Preset cards (plus 'Custom bands'), statistic buttons and band selects. */
export function buildControls({ presets, bands, statistics }) {
  const presetBox = byId("presets");
  for (const preset of presets) {
    const card = radio("preset", preset.name, [span("preset-title", preset.title)], "preset");
    card.title = preset.description;
    presetBox.append(card);
  }
  const custom = radio("preset", CUSTOM, [span("preset-title", "Custom bands")], "preset");
  custom.title = "Any three bands as red, green, blue.";
  presetBox.append(custom);
  const statisticBox = byId("statistics");
  for (const statistic of statistics) {
    statisticBox.append(radio("statistic", statistic, [span("", STATISTIC_LABELS[statistic] || statistic)], "segment"));
  }
  for (const id of ["band-r", "band-g", "band-b"]) {
    const select = byId(id);
    for (const band of bands) select.add(new Option(band.name, band.name));
  }
}

// What /seasons' built.coverage_percent is a share of (built.coverage_of): short, and in full. It is
// never the area tiles can come from (the catalog's scenes, composited on the fly where not built).
const COVERAGE_OF = {
  "build-bboxes": ["bbox", "the bbox its builds were asked for"],
  "built-extent": ["extent", "the box around its built blocks"],
};

/** "100 % of bbox" (``long``: "... of the bbox its builds were asked for"), or "" when
 *  the season says no share. 100 % only when complete: 99.6 % shows as 99 %. */
export function builtShare(built, long = false) {
  const percent = built?.coverage_percent;
  if (percent === null || percent === undefined) return "";
  const shown = percent >= 100 ? "100" : percent > 0 && percent < 1 ? "< 1" : String(Math.floor(percent));
  const of = COVERAGE_OF[built.coverage_of] || ["area", "the area its builds were asked for"];
  return `${shown} % of ${of[long ? 1 : 0]}`;
}

function seasonOption(season) {
  const share = builtShare(season.built);
  const text = share ? `${season.name} · ${share} built` : season.name;  // fits the select: the long form is below it
  const option = new Option(text, season.name);
  option.dataset.built = "1";
  return option;
}

/** Fill a season select: the built seasons, then calendar seasons offered on the fly. */
export function fillSeasons(select, built, selected) {
  select.replaceChildren();
  const builtGroup = document.createElement("optgroup");
  builtGroup.label = "Built";
  for (const season of built) builtGroup.append(seasonOption(season));
  const flyGroup = document.createElement("optgroup");
  flyGroup.label = "Not built: composited on the fly";
  const names = new Set(built.map((s) => s.name));
  const choices = onTheFlyChoices(built);
  if (selected && !names.has(selected) && !choices.includes(selected)) choices.push(selected);
  for (const name of choices) flyGroup.append(new Option(name, name));
  if (built.length) select.append(builtGroup);
  select.append(flyGroup);
  if (selected) select.value = selected;
}

/** Make the controls show ``view``; ``hasFill``: the season has a gap-filled variant (``filled``: how it was made). */
export function showView(view, { preset, statisticApplies, hasFill = false, filled = null }) {
  const presetValue = view.bands ? CUSTOM : preset.name;
  for (const input of document.querySelectorAll('input[name="preset"]')) {
    input.checked = input.value === presetValue;
    input.closest("label").classList.toggle("selected", input.checked);
  }
  byId("custom-bands").hidden = !view.bands;
  if (view.bands) {
    ["band-r", "band-g", "band-b"].forEach((id, i) => { byId(id).value = view.bands[i]; });
  }
  for (const input of document.querySelectorAll('input[name="statistic"]')) {
    input.checked = input.value === view.statistic;
    input.disabled = !statisticApplies;
    input.closest("label").classList.toggle("selected", input.checked && statisticApplies);
  }
  byId("statistic-hint").textContent = !statisticApplies
    ? "The count layer shows how many cloud-free observations each pixel has."
    : view.statistic === "medoid"
      ? "The medoid: per pixel one real cloud-free observation, every band of one date (built with --products " +
        "medoid, else composited on the fly)."
      : "Percentile of the cloud-free observations of each pixel.";
  byId("opacity").value = String(Math.round(view.opacity * 100));
  byId("opacity-value").textContent = `${Math.round(view.opacity * 100)} %`;
  byId("coverage").checked = view.coverage;
  byId("coverage-key").hidden = !view.coverage;
  byId("basemap").checked = view.basemap;
  byId("filled").checked = view.filled && hasFill;
  byId("fill-flag").checked = view.flag && hasFill;
  byId("filled").disabled = byId("fill-flag").disabled = !hasFill;
  byId("filled-hint").textContent = !hasFill
    ? "(not made for this season: s2seasons fill)"
    : !fillsStatistic(view.statistic)
      ? "(fills the percentiles: the medoid shown is the season's own)"
      : `(below ${filled?.min_observations ?? "?"} observations, from ${(filled?.used || []).join(", ") || "neighbours"})`;
  byId("compare").checked = Boolean(view.compare);
  byId("compare-season").disabled = !view.compare;
  if (view.compare) byId("compare-season").value = view.compare;
  if (byId("season").value !== view.season) byId("season").value = view.season;
}

/** The line under the season select: dates, what is built, from which zoom the rest is composited. */
export function describeSeason(season, minZoom) {
  const formatDate = (iso) => new Date(`${iso}T00:00:00Z`).toLocaleDateString("en-GB",
    { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  if (!season) {
    return `Not built: composited on the fly from the scenes at zoom ${minZoom} and closer (slower).`;
  }
  const built = season.built;
  const share = builtShare(built, true);
  const coverage = share ? ` (${share})` : "";
  return `${formatDate(season.start_date)} – ${formatDate(season.end_date)} · ${built.blocks} block${built.blocks === 1 ? "" : "s"} built${coverage}; `
    + `elsewhere on the fly from zoom ${minZoom}.`;
}
