// The s2seasons viewer: a Leaflet map of one season (or two, side by side), the controls of the side
// panel, the coverage overlay, the gap-filled variant and its fill flag, the pixel inspector and the share
// buttons, all kept in the URL.

import { Api, FILLED, fillsStatistic, usesStatistic } from "./api.js";
import { Coverage } from "./coverage.js";
import { Inspector } from "./inspector.js";
import { renderCategories, renderLegend } from "./legend.js";
import { CUSTOM, buildControls, builtShare, describeSeason, fillSeasons, showView } from "./panel.js";
import { bySeasonStart, onTheFlyChoices } from "./seasons.js";
import { wireShareButtons } from "./share.js";
import { readView, writeView } from "./state.js";
import { Swipe } from "./swipe.js";
import { SeasonTileLayer } from "./tiles.js";

const L = window.L;
const config = JSON.parse(document.getElementById("s2-config").textContent);
const api = new Api(config.apiRoot);
const presets = new Map(config.presets.map((p) => [p.name, p]));
const fillFlag = config.fillFlag; // the preset of the fill flag: its colours and what each class means
const bandNames = config.bands.map((b) => b.name);
const bandRanges = Object.fromEntries(config.presets.filter((p) => p.bands.length === 3)
  .flatMap((p) => p.bands.map((band, i) => [band, p.rescale[i]])));
const DEFAULT_TRIPLE = ["nir", "swir16", "red"];
const EXTRA_ZOOM = 4; // zoom levels drawn beyond the season's own resolution (pixels get bigger)
const FLAG_OPACITY = 0.7;
const BASEMAP_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
const ATTRIBUTION = "Contains modified Copernicus Sentinel data · s2seasons";
const byId = (id) => document.getElementById(id);

const view = readView(window.location.search, { presets: [...presets.keys()], bands: bandNames });
const catalog = { built: [], minZoom: config.onTheFlyMinZoom ?? 0 };
const seasonInfo = new Map(); // season -> {maxZoom, footprint, blocks}

const map = L.map("map", { minZoom: 2, maxZoom: 18, worldCopyJump: true, zoomSnap: 1 });
map.attributionControl.addAttribution(ATTRIBUTION);
L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);
map.createPane("seasonLeft").style.zIndex = 210;
map.createPane("seasonRight").style.zIndex = 220;
map.createPane("fillFlag").style.zIndex = 230; // over the season it belongs to (left of the swipe bar)

const coverage = new Coverage(map, { minZoom: catalog.minZoom });
const compareCoverage = new Coverage(map, { minZoom: catalog.minZoom, side: "right" });
const coverages = { main: coverage, compare: compareCoverage }; // of the season left / right of the swipe bar
const layers = { main: null, compare: null, basemap: null, flag: null };

function currentPreset() {
  return presets.get(view.preset) || presets.get(config.defaultPreset);
}

function chartBand() {
  if (view.chartBand) return view.chartBand;
  if (view.bands) return view.bands[0];
  return currentPreset().bands[0] || "nir";
}

function builtSeason(name) {
  return catalog.built.find((s) => s.name === name) || null;
}

/** Whether ``season`` has a gap-filled variant (made by s2seasons fill; /seasons lists it among its products). */
function hasFill(season) {
  return Boolean(builtSeason(season)?.products?.includes(FILLED));
}

/** The variant the main season is drawn from: the gap-filled one when asked for, made and holding the statistic
 * (`fillsStatistic`), else its own. */
function mainVariant() {
  return view.filled && hasFill(view.season) && fillsStatistic(view.statistic) ? FILLED : null;
}

function variantOf(role) {
  return role === "main" ? mainVariant() : null;
}

// --- the URL ----------------------------------------------------------------------------------

function saveView() {
  const center = map.getCenter();
  view.lat = center.lat;
  view.lon = L.Util.wrapNum(center.lng, [-180, 180], true);
  view.z = map.getZoom();
  window.history.replaceState(null, "", `${window.location.pathname}?${writeView(view)}`);
}

// --- tile layers ------------------------------------------------------------------------------

/** The loading indicator: tiles in flight (of both seasons in compare mode, saying which side waits). */
function updateStatus() {
  const left = layers.main?.pending() || 0;
  const right = layers.compare?.pending() || 0;
  const pending = left + right;
  const onTheFly = coverage.onTheFlyPending() + compareCoverage.onTheFlyPending();
  const status = byId("status");
  status.hidden = pending === 0;
  status.dataset.pending = String(pending);
  status.dataset.onTheFly = String(onTheFly);
  let sides = "";
  if (layers.compare) {
    status.dataset.pendingLeft = String(left);
    status.dataset.pendingRight = String(right);
    if (left && right) sides = ` · left ${left}, right ${right}`;
    else if (pending) sides = left ? ` · left side (${layers.main.season})` : ` · right side (${layers.compare.season})`;
  } else {
    delete status.dataset.pendingLeft;
    delete status.dataset.pendingRight;
  }
  byId("status-text").textContent = (onTheFly
    ? `Compositing ${onTheFly} tile${onTheFly > 1 ? "s" : ""} on the fly…`
      + (pending > onTheFly ? ` (${pending - onTheFly} more loading)` : "")
    : `Loading ${pending} tile${pending > 1 ? "s" : ""}…`) + sides;
}

/** The 'not built at this zoom' banner, from the tiles' X-S2Seasons-Not-Built headers (of either season);
 * tiles left empty because no scene exists there ("no scenes") say nothing about the zoom. */
function updateBanner() {
  const banner = byId("not-built-banner");
  const notBuilt = [layers.main, layers.compare].filter(Boolean).flatMap((layer) =>
    [...layer.getContainer()?.querySelectorAll("img[data-not-built]") || []]
      .filter((img) => Number(img.dataset.z) === layer._tileZoom && img.dataset.notBuilt !== "no scenes"));
  if (!notBuilt.length) {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  banner.replaceChildren();
  const text = document.createElement("span");
  text.textContent = `Not built at this zoom: below zoom ${catalog.minZoom} only built blocks are drawn.`;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = `Zoom to ${catalog.minZoom} to composite on the fly`;
  button.addEventListener("click", () => map.setZoom(catalog.minZoom));
  banner.append(text, button);
}

function showProblem(message) {
  const box = byId("problem");
  box.textContent = `Some tiles failed: ${message}`;
  box.hidden = false;
}

function clearProblem() {
  byId("problem").hidden = true;
}

function makeSeasonLayer(season, pane, role) {
  const info = seasonInfo.get(season);
  const layer = new SeasonTileLayer(api.tileTemplate(season, view, currentPreset(), variantOf(role)), {
    pane,
    className: `s2-season s2-season-${role}`,
    opacity: view.opacity,
    maxNativeZoom: info?.maxZoom ?? 14,
    maxZoom: 22,
    keepBuffer: 1,
  });
  layer.season = season;
  layer.on("tilestart", (e) => coverages[role].tileStarted(e.img.dataset.key, e.coords));
  let failed = false; // whether a tile of the current loading round failed
  layer.on("loading", () => { failed = false; });
  layer.on("tileend", (e) => {
    coverages[role].tileDone(e.img.dataset.key);
    if (e.error) {
      failed = true;
      showProblem(e.error);
    }
    updateBanner();
  });
  layer.on("pendingchange", updateStatus);
  layer.on("load", () => {
    if (!failed) clearProblem();
    updateBanner();
  });
  return layer;
}

/** Put the season layers on the map as the view says (new layers when a season changes). */
function syncLayers() {
  const wanted = { main: view.season, compare: view.compare };
  const panes = { main: "seasonLeft", compare: "seasonRight" };
  for (const role of ["main", "compare"]) {
    const season = wanted[role];
    const layer = layers[role];
    if (layer && layer.season !== season) {
      map.removeLayer(layer);
      coverages[role].clearPending();
      layers[role] = null;
    }
    if (!season) continue;
    const url = api.tileTemplate(season, view, currentPreset(), variantOf(role));
    if (!layers[role]) {
      layers[role] = makeSeasonLayer(season, panes[role], role).addTo(map);
    } else if (layers[role]._url !== url) {
      clearProblem();
      coverages[role].clearPending();
      layers[role].setUrl(url);
    }
    layers[role].setOpacity(view.opacity);
  }
  const maxNative = Math.max(...[view.season, view.compare].filter(Boolean)
    .map((s) => seasonInfo.get(s)?.maxZoom ?? 14));
  map.setMaxZoom(maxNative + EXTRA_ZOOM);
  updateStatus();
}

/** The fill flag over the main season, where it has a gap-filled variant and the view asks for it. */
function syncFlag() {
  const url = view.flag && hasFill(view.season) ? api.flagTemplate(view.season) : null;
  if (layers.flag && layers.flag._url !== url) {
    map.removeLayer(layers.flag);
    layers.flag = null;
  }
  if (url && !layers.flag) {
    layers.flag = new SeasonTileLayer(url, { pane: "fillFlag", className: "s2-fill-flag", opacity: FLAG_OPACITY,
                                             maxNativeZoom: seasonInfo.get(view.season)?.maxZoom ?? 14, maxZoom: 22,
                                             keepBuffer: 1 });
    layers.flag.season = view.season;
    layers.flag.on("tileend", (e) => { if (e.error) showProblem(e.error); });
    layers.flag.addTo(map);
  }
}

function flagLegend() {
  if (!layers.flag) return null;
  const categories = Object.entries(fillFlag.categories).map(([value, label]) => (
    { value, label, colour: fillFlag.colormap[value] }));
  const made = builtSeason(view.season)?.filled;
  const minimum = made?.min_observations ? ` (fewer than ${made.min_observations} observations)` : "";
  return { title: `${fillFlag.title}: where the values come from`, categories,
           description: `Gap-filled where the season has too few observations${minimum}; transparent where no season saw the pixel.` };
}

function syncBasemap() {
  if (view.basemap && !layers.basemap) {
    layers.basemap = L.tileLayer(BASEMAP_URL, { maxZoom: 19, attribution: "© OpenStreetMap contributors" });
    layers.basemap.addTo(map);
  } else if (!view.basemap && layers.basemap) {
    map.removeLayer(layers.basemap);
    layers.basemap = null;
  }
}

// --- seasons ----------------------------------------------------------------------------------

/** Max zoom, built footprint and blocks of a season (fetched once). */
async function loadSeasonInfo(season) {
  if (seasonInfo.has(season)) return seasonInfo.get(season);
  const built = builtSeason(season);
  const [tilejson, blocks] = await Promise.all([
    api.json(api.tilejson(season, { ...view, bands: null }, presets.get(config.defaultPreset)))
      .then((r) => r.body).catch(() => null),
    built ? api.json(api.url(`${api.season(season)}/blocks.geojson`)).then((r) => r.body).catch(() => null)
      : Promise.resolve(null),
  ]);
  const info = { maxZoom: tilejson?.maxzoom ?? 14, footprint: built?.built.geojson ?? null, blocks };
  seasonInfo.set(season, info);
  return info;
}

async function applySeasons() {
  const names = [view.season, view.compare].filter(Boolean);
  await Promise.all(names.map(loadSeasonInfo));
  const info = seasonInfo.get(view.season);
  coverage.setSeason(info.footprint, info.blocks);
  if (view.compare) {
    const right = seasonInfo.get(view.compare);
    compareCoverage.setSeason(right.footprint, right.blocks);
  }
  byId("season-info").textContent = describeSeason(builtSeason(view.season), catalog.minZoom);
  if (inspector.isOpen()) inspector.refresh();
  render();
}

/** How ``season`` is served at this zoom, for the note under its name on the swipe bar. */
function coverageNote(season) {
  const state = coverage.outsideState();
  const elsewhere = state === "on-the-fly" ? "on the fly" : "not built at this zoom";
  const built = builtSeason(season);
  if (!built) {
    return { state, text: state === "on-the-fly" ? "not built: composited on the fly" : "not built at this zoom" };
  }
  const share = builtShare(built.built);
  return { state: "built", text: `built${share ? `: ${share}` : ""}, elsewhere ${elsewhere}` };
}

function describeSides() {
  if (view.compare) swipe.describe(coverageNote(view.season), coverageNote(view.compare));
}

// --- everything else follows the view -----------------------------------------------------------

function legendLayer() {
  const preset = currentPreset();
  const statistic = usesStatistic(view, preset) ? ` · ${view.statistic.toUpperCase()}` : "";
  const filled = mainVariant() ? " · gap-filled" : "";
  if (view.bands) {
    return { title: `Custom: ${view.bands.join(", ")}${statistic}${filled}`, colormap: null,
             channels: view.bands.map((band) => ({ band, range: bandRanges[band] || [0, 10000] })) };
  }
  if (preset.colormap_name) {
    return { title: `${preset.title}${statistic}${filled}`, colormap: preset.colormap_name, range: preset.rescale[0],
             unit: preset.statistic === "count" ? "observations" : "", description: preset.description };
  }
  return { title: `${preset.title}${statistic}${filled}`, colormap: null,
           channels: preset.bands.map((band, i) => ({ band, range: preset.rescale[i] })) };
}

function render() {
  const preset = currentPreset();
  showView(view, { preset, statisticApplies: usesStatistic(view, preset), filled: builtSeason(view.season)?.filled,
                   hasFill: hasFill(view.season) });
  syncLayers();
  syncFlag();
  syncBasemap();
  coverage.setVisible(view.coverage);
  compareCoverage.setVisible(view.coverage && Boolean(view.compare));
  if (view.compare) {
    swipe.enable(view.season, view.compare, view.split);
    describeSides();
  } else {
    swipe.disable();
  }
  renderLegend(byId("legend"), api, legendLayer());
  renderCategories(byId("flag-legend"), flagLegend());
  saveView();
}

function wireControls() {
  byId("season").addEventListener("change", (e) => {
    view.season = e.target.value;
    applySeasons();
  });
  byId("presets").addEventListener("change", (e) => {
    if (e.target.name !== "preset") return;
    if (e.target.value === CUSTOM) {
      view.bands = view.bands || (currentPreset().bands.length === 3 ? [...currentPreset().bands] : DEFAULT_TRIPLE);
    } else {
      view.bands = null;
      view.preset = e.target.value;
    }
    render();
  });
  for (const id of ["band-r", "band-g", "band-b"]) {
    byId(id).addEventListener("change", (e) => {
      const bands = [...(view.bands || DEFAULT_TRIPLE)];
      bands[Number(e.target.dataset.channel)] = e.target.value;
      view.bands = bands;
      render();
    });
  }
  byId("statistics").addEventListener("change", (e) => {
    if (e.target.name !== "statistic") return;
    view.statistic = e.target.value;
    render();
  });
  byId("opacity").addEventListener("input", (e) => {
    view.opacity = Number(e.target.value) / 100;
    byId("opacity-value").textContent = `${e.target.value} %`;
    for (const layer of [layers.main, layers.compare]) layer?.setOpacity(view.opacity);
  });
  byId("opacity").addEventListener("change", saveView);
  byId("coverage").addEventListener("change", (e) => {
    view.coverage = e.target.checked;
    render();
  });
  byId("basemap").addEventListener("change", (e) => {
    view.basemap = e.target.checked;
    render();
  });
  byId("filled").addEventListener("change", (e) => {
    view.filled = e.target.checked;
    render();
    if (inspector.isOpen()) inspector.refresh();
  });
  byId("fill-flag").addEventListener("change", (e) => {
    view.flag = e.target.checked;
    render();
  });
  byId("compare").addEventListener("change", (e) => {
    const select = byId("compare-season");
    if (e.target.checked) {
      const other = [...select.options].map((o) => o.value).find((name) => name !== view.season);
      view.compare = select.value && select.value !== view.season ? select.value : other || view.season;
    } else {
      view.compare = null;
    }
    applySeasons();
  });
  byId("compare-season").addEventListener("change", (e) => {
    view.compare = e.target.value;
    applySeasons();
  });
  wireShareButtons({
    "copy-link": { text: () => window.location.href,
                   hint: () => "a link that opens this view." },
    "copy-xyz": { text: () => api.absolute(api.tileTemplate(view.season, view, currentPreset(), mainVariant())),
                  hint: () => "QGIS ▸ XYZ Tiles ▸ New Connection ▸ URL." },
    "copy-wmts": { text: () => api.absolute(api.wmts(view.season, view, currentPreset(), mainVariant())),
                   hint: () => `QGIS ▸ WMS/WMTS ▸ New connection; then add layer '${api.wmtsLayerName(view, currentPreset())}'.` },
    "copy-wms": { text: () => api.absolute(api.url("/wms")),
                  hint: () => "QGIS ▸ WMS/WMTS ▸ New connection: every season in time (WMS-T); its layers are the "
                              + "presets, the temporal controller picks the season." },
  });
  map.on("moveend", saveView);
  map.on("zoomend", updateBanner);
  map.on("zoomend", describeSides);
  map.on("click", (e) => inspector.open(e.latlng));
}

const swipe = new Swipe(map, { leftPanes: ["seasonLeft", "fillFlag", ...Object.values(coverage.panes)],
                               rightPanes: ["seasonRight", ...Object.values(compareCoverage.panes)],
                               onChange: (split) => { view.split = split; saveView(); } });
const inspector = new Inspector(map, api, {
  context: () => ({ season: view.season, seasons: catalog.built, chartBand: chartBand(), bands: config.bands,
                    variant: mainVariant(), fillFlag }),
  onChartBand: (band) => { view.chartBand = band; saveView(); },
});

function initialPosition() {
  if (view.lat !== null && view.lon !== null && view.z !== null) {
    map.setView([view.lat, view.lon], view.z);
    return;
  }
  const season = builtSeason(view.season) || catalog.built[catalog.built.length - 1];
  const bounds = season?.built.bounds_4326;
  if (bounds) map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
  else map.setView([48.0, 11.5], 5);
}

async function boot() {
  buildControls({ presets: config.presets, bands: config.bands, statistics: config.statistics });
  wireControls();
  try {
    const { body } = await api.json(api.url("/seasons"));
    const order = bySeasonStart(body.seasons);
    catalog.built = body.seasons.sort((a, b) => order(a.name, b.name));
    catalog.minZoom = body.on_the_fly?.min_zoom ?? catalog.minZoom;
    coverage.minZoom = catalog.minZoom;
    compareCoverage.minZoom = catalog.minZoom;
  } catch (err) {
    showProblem(`the season list could not be read (${err.message})`);
  }
  if (!view.season) view.season = catalog.built[catalog.built.length - 1]?.name || onTheFlyChoices([])[2];
  fillSeasons(byId("season"), catalog.built, view.season);
  fillSeasons(byId("compare-season"), catalog.built, view.compare || view.season);
  initialPosition();
  await applySeasons();
  document.body.dataset.ready = "true";
}

window.s2viewer = { map, view, layers, coverage, coverages, inspector, swipe, ready: boot() };
