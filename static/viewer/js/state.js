// The view: what the page shows, read from and written to the query string so a link restores it.
//
//   ?season=2022-winter&preset=ndvi&statistic=p75&z=11&lat=47.9&lon=11.4
//   ?season=2022-winter&bands=nir,swir16,red&statistic=p50&compare=2022-summer&split=0.4
//   ?season=2022-summer&filled=1&flag=1   (the gap-filled variant, with the fill flag over it)

const SEASON_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const STATISTICS = ["p25", "p50", "p75"];

export const DEFAULT_VIEW = Object.freeze({
  season: null,       // null: the first built season
  preset: null,       // null with bands null: the server's default preset
  bands: null,        // [r, g, b] band names: a custom triple instead of a preset
  statistic: "p50",
  opacity: 1,
  coverage: true,
  basemap: false,
  filled: false,      // the season's gap-filled variant (variant=filled) where it has one
  flag: false,        // the fill flag over the map, where the season has a gap-filled variant
  compare: null,      // season shown right of the swipe bar, or null
  split: 0.5,         // swipe bar position, share of the map width
  chartBand: null,    // band of the inspector's chart
  lat: null, lon: null, z: null,
});

function number(value, min, max) {
  const n = Number.parseFloat(value);
  return Number.isFinite(n) && n >= min && n <= max ? n : null;
}

function flag(value, fallback) {
  if (value === "1" || value === "true") return true;
  if (value === "0" || value === "false") return false;
  return fallback;
}

/** The view in ``search`` (a query string), with anything unknown or malformed left at its default. */
export function readView(search, { presets, bands }) {
  const q = new URLSearchParams(search);
  const view = { ...DEFAULT_VIEW };
  const season = q.get("season");
  if (season && SEASON_NAME.test(season)) view.season = season;
  const compare = q.get("compare");
  if (compare && SEASON_NAME.test(compare)) view.compare = compare;
  const triple = (q.get("bands") || "").split(",").filter(Boolean);
  if (triple.length === 3 && triple.every((b) => bands.includes(b))) view.bands = triple;
  const preset = q.get("preset");
  if (!view.bands && preset && presets.includes(preset)) view.preset = preset;
  const statistic = q.get("statistic");
  if (STATISTICS.includes(statistic)) view.statistic = statistic;
  const opacity = number(q.get("opacity"), 0, 1);
  if (opacity !== null) view.opacity = opacity;
  const split = number(q.get("split"), 0, 1);
  if (split !== null) view.split = split;
  view.coverage = flag(q.get("coverage"), view.coverage);
  view.basemap = flag(q.get("basemap"), view.basemap);
  view.filled = flag(q.get("filled"), view.filled);
  view.flag = flag(q.get("flag"), view.flag);
  const chartBand = q.get("band");
  if (bands.includes(chartBand)) view.chartBand = chartBand;
  view.lat = number(q.get("lat"), -85.06, 85.06);
  view.lon = number(q.get("lon"), -180, 180);
  view.z = number(q.get("z"), 0, 24);
  return view;
}

/** The query string of ``view`` (defaults left out, coordinates rounded to about a metre). */
export function writeView(view) {
  const q = new URLSearchParams();
  if (view.season) q.set("season", view.season);
  if (view.bands) q.set("bands", view.bands.join(","));
  else if (view.preset) q.set("preset", view.preset);
  q.set("statistic", view.statistic);
  if (view.opacity !== DEFAULT_VIEW.opacity) q.set("opacity", String(view.opacity));
  if (view.coverage !== DEFAULT_VIEW.coverage) q.set("coverage", view.coverage ? "1" : "0");
  if (view.basemap !== DEFAULT_VIEW.basemap) q.set("basemap", view.basemap ? "1" : "0");
  if (view.filled) q.set("filled", "1");
  if (view.flag) q.set("flag", "1");
  if (view.compare) {
    q.set("compare", view.compare);
    q.set("split", view.split.toFixed(3));
  }
  if (view.chartBand) q.set("band", view.chartBand);
  if (view.z !== null && view.lat !== null && view.lon !== null) {
    q.set("z", String(Math.round(view.z * 100) / 100));
    q.set("lat", view.lat.toFixed(5));
    q.set("lon", view.lon.toFixed(5));
  }
  return q.toString();
}
