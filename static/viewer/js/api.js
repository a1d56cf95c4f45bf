// URLs of the s2seasons server and small fetch helpers. Every URL is on the page's own origin.

export const TMS = "WebMercatorQuad";

/** Whether the statistic control applies to ``view`` (the count preset draws the count, whatever it says). */
export function usesStatistic(view, preset) {
  return Boolean(view.bands) || !preset || preset.statistic !== "count";
}

export const FILLED = "filled";

/** Whether the gap-filled variant holds ``statistic``: gap filling fills the percentiles; the medoid (one real
 * observation) is always the season's own. */
export function fillsStatistic(statistic) {
  return statistic !== "medoid";
}
export const FLAG_PRESET = "fill-flag";

/** The layer parameters of ``view`` as the tile, WMTS and TileJSON endpoints read them; ``variant`` ("filled")
 * reads the season's gap-filled variant. */
export function layerQuery(view, preset, variant = null) {
  const q = new URLSearchParams();
  if (variant) q.set("variant", variant);
  if (view.bands) q.set("bands", view.bands.join(","));
  else q.set("preset", preset.name);
  if (usesStatistic(view, preset)) q.set("statistic", view.statistic);
  return q;
}

export class Api {
  constructor(root, origin = window.location.origin) {
    this.root = root;        // path prefix of the server ("" or "/s2")
    this.origin = origin;    // for URLs copied out of the page
  }

  url(path, query) {
    const q = query && String(query);
    return `${this.root}${path}${q ? `?${q}` : ""}`;
  }

  absolute(relative) {
    return `${this.origin}${relative}`;
  }

  season(season) {
    return `/seasons/${encodeURIComponent(season)}`;
  }

  /** Tile URL template with Leaflet's {z}/{x}/{y} placeholders (QGIS reads the same). */
  tileTemplate(season, view, preset, variant = null) {
    return this.url(`${this.season(season)}/tiles/${TMS}/{z}/{x}/{y}.png`, layerQuery(view, preset, variant));
  }

  /** Tiles of the fill flag of a season's gap-filled variant (classes in the flag preset's colours). */
  flagTemplate(season) {
    const q = new URLSearchParams({ variant: FILLED, preset: FLAG_PRESET });
    return this.url(`${this.season(season)}/tiles/${TMS}/{z}/{x}/{y}.png`, q);
  }

  wmts(season, view, preset, variant = null) {
    const q = layerQuery(view, preset, variant);
    // One preset at its default statistic is a layer of its own in the capabilities; anything else
    // is the 'custom' layer the request's parameters describe.
    const plain = !view.bands && (!usesStatistic(view, preset) || view.statistic === preset.statistic);
    const own = variant ? new URLSearchParams({ variant }) : "";
    return this.url(`${this.season(season)}/${TMS}/WMTSCapabilities.xml`, plain ? own : q);
  }

  wmtsLayerName(view, preset) {
    const plain = !view.bands && (!usesStatistic(view, preset) || view.statistic === preset.statistic);
    return plain ? preset.name : "custom";
  }

  point(season, lon, lat, query) {
    return this.url(`${this.season(season)}/point/${lon.toFixed(6)},${lat.toFixed(6)}`, query);
  }

  /**
   * One point in several seasons at once (``GET /seasons/series/point``): each season's percentiles and counts,
   * or those of ``query`` (``bands``, ``statistic``) only.
   */
  seriesPoint(seasons, lon, lat, query) {
    const q = new URLSearchParams({ seasons: seasons.join(",") });
    for (const [key, value] of new URLSearchParams(query)) q.set(key, value);
    return this.url(`/seasons/series/point/${lon.toFixed(6)},${lat.toFixed(6)}`, q);
  }

  tilejson(season, view, preset) {
    return this.url(`${this.season(season)}/${TMS}/tilejson.json`, layerQuery(view, preset));
  }

  async json(path, { signal } = {}) {
    const response = await fetch(path, { signal, headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(await problemText(response));
    return { body: await response.json(), headers: response.headers };
  }
}

/** What went wrong, from an error response: the server's ``detail`` when it gave one. */
export async function problemText(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    detail = response.statusText;
  }
  return `${response.status}: ${detail}`;
}
