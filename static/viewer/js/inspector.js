// The pixel inspector: a click on the map shows, for the season's pixel under it, every band's
// P25/P50/P75 and count (one point query), how many of the observations seen were clear (seasons built with
// the QA layer), and a chart of one band's P50 across the built seasons
// (one small point query per season, at most MAX_SEASONS of them, a few at a time).

import { SOURCE_HEADER } from "./tiles.js";
import { renderChart } from "./chart.js";
import { bySeasonStart } from "./seasons.js";

const L = window.L;
const KINDS = ["p25", "p50", "p75", "count"];
export const MAX_SEASONS = 12;
const PARALLEL = 3;

function cellText(value) {
  return Number.isFinite(value) ? String(Math.round(value)) : "–";
}

/** The seasons of the chart: ``current`` and its neighbours in time, at most ``limit`` of them. */
export function chartSeasons(built, current, limit = MAX_SEASONS) {
  const names = built.map((s) => s.name);
  if (!names.includes(current)) return names.slice(-(limit - 1));
  const at = names.indexOf(current);
  const start = Math.max(0, Math.min(at - Math.floor(limit / 2), names.length - limit));
  return names.slice(start, start + limit);
}

async function inPool(items, worker, parallel) {
  const results = new Array(items.length);
  let next = 0;
  async function run() {
    while (next < items.length) {
      const i = next++;
      results[i] = await worker(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, run));
  return results;
}

export class Inspector {
  /**
   * ``context()`` returns {season, seasons (built, in time order, [{name, start_date}]), chartBand, bands}.
   * ``onChartBand(band)`` is told when the user picks another band for the chart.
   */
  constructor(map, api, { context, onChartBand }) {
    this.map = map;
    this.api = api;
    this.context = context;
    this.onChartBand = onChartBand;
    this.panel = document.getElementById("inspector");
    this.tableBody = this.panel.querySelector("#inspector-table tbody");
    this.where = document.getElementById("inspector-where");
    this.meta = document.getElementById("inspector-meta");
    this.clear = document.getElementById("inspector-clear");
    this.chart = document.getElementById("chart");
    this.bandSelect = document.getElementById("chart-band");
    this.latlng = null;
    this.controller = null;
    this.marker = L.circleMarker([0, 0], { radius: 7, color: "#fff", weight: 2, fillColor: "#0ea5e9",
                                            fillOpacity: 1, interactive: false, className: "inspector-marker" });
    for (const band of context().bands) this.bandSelect.add(new Option(band.name, band.name));
    this.bandSelect.addEventListener("change", () => {
      this.onChartBand(this.bandSelect.value);
      if (this.latlng) this._loadChart(this.controller);
    });
    document.getElementById("inspector-close").addEventListener("click", () => this.close());
    L.DomEvent.disableClickPropagation(this.panel);
    L.DomEvent.disableScrollPropagation(this.panel);
  }

  isOpen() {
    return this.latlng !== null;
  }

  open(latlng) {
    this.latlng = L.latLng(latlng.lat, L.Util.wrapNum(latlng.lng, [-180, 180], true));
    this.marker.setLatLng(this.latlng).addTo(this.map);
    this.panel.hidden = false;
    this.panel.dataset.state = "loading";
    this.refresh();
  }

  close() {
    this.controller?.abort();
    this.latlng = null;
    this.marker.remove();
    this.panel.hidden = true;
  }

  /** Query again (the season or the chart band changed). */
  async refresh() {
    if (!this.latlng) return;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const { season, chartBand, variant } = this.context();
    this.bandSelect.value = chartBand;
    const { lat, lng } = this.latlng;
    this.where.textContent = `${lat.toFixed(5)}, ${lng.toFixed(5)}`;
    this.meta.textContent = `${season} · querying…`;
    this.panel.dataset.state = "loading";
    this.current = null;
    try {
      const query = variant ? new URLSearchParams({ variant }) : undefined;
      const { body, headers } = await this.api.json(this.api.point(season, lng, lat, query),
                                                    { signal: controller.signal });
      if (controller.signal.aborted) return;
      this.current = body;
      this._renderTable(body);
      const source = headers.get(SOURCE_HEADER);
      const where = source === "built" ? "built" : source ? `${source.replace(/-/g, " ")}` : "";
      this.meta.textContent = `${season}${variant ? ` (${variant})` : ""} · ${where}`;
      this.panel.dataset.source = source || "";
      this.panel.dataset.state = "ready";
    } catch (err) {
      if (controller.signal.aborted) return;
      this.tableBody.replaceChildren();
      this.clear.hidden = true;
      this.meta.textContent = `${season} · ${err.message}`;
      this.panel.dataset.state = "error";
      return;
    }
    await this._loadChart(controller);
  }

  _renderTable(body) {
    const values = new Map(body.band_names.map((name, i) => [name, body.values[i]]));
    const rows = this.context().bands.map(({ name, description }) => {
      const row = document.createElement("tr");
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = name;
      head.title = description;
      row.append(head);
      for (const kind of KINDS) {
        const cell = document.createElement("td");
        const value = values.get(`${name}_${kind}`);
        cell.textContent = cellText(value);
        cell.dataset.band = name;
        cell.dataset.kind = kind;
        cell.dataset.value = value === null || value === undefined ? "" : String(value);
        row.append(cell);
      }
      return row;
    });
    this.tableBody.replaceChildren(...rows, ...this._indexRows(body));
    this._renderClearShare(values);
    this._renderFillSource(values);
  }

  /** Where the values of a gap-filled variant's pixel came from (its point answer has fill_flag). */
  _renderFillSource(values) {
    const flag = values.get("fill_flag");
    const { fillFlag } = this.context();
    const box = document.getElementById("inspector-fill");
    box.hidden = !Number.isFinite(flag) || !fillFlag;
    if (box.hidden) {
      box.replaceChildren();
      delete box.dataset.flag;
      return;
    }
    const swatch = document.createElement("i");
    swatch.style.background = fillFlag.colormap[String(flag)] || "transparent";
    const label = fillFlag.categories[String(flag)] || "no value";
    box.replaceChildren(swatch, document.createTextNode(`Values: ${label} (fill flag ${flag})`));
    box.dataset.flag = String(flag);
  }

  /** Rows of the season's index percentiles (a season built with --products indices): int16 x 0.0001. */
  _indexRows(body) {
    const bandNames = new Set(this.context().bands.map((b) => b.name));
    const values = new Map(body.band_names.map((name, i) => [name, body.values[i]]));
    const names = body.band_names.filter((n) => n.endsWith("_p50")).map((n) => n.slice(0, -4))
      .filter((n) => !bandNames.has(n));
    return names.map((name) => {
      const row = document.createElement("tr");
      row.className = "index-row";
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = name.toUpperCase();
      head.title = "Percentiles of the index computed per observation (scale 0.0001)";
      row.append(head);
      for (const kind of KINDS) {
        const cell = document.createElement("td");
        const value = values.get(`${name}_${kind}`);
        const shown = Number.isFinite(value) && value !== -32768 ? (value * 0.0001).toFixed(3) : "–";
        cell.textContent = kind === "count" ? "" : shown;
        cell.dataset.index = name;
        cell.dataset.kind = kind;
        row.append(cell);
      }
      return row;
    });
  }

  /** "n of m clear" where the season was built with the QA layer (its point answer has qa_seen). */
  _renderClearShare(values) {
    const seen = values.get("qa_seen");
    const counts = this.context().bands.map(({ name }) => values.get(`${name}_count`)).filter(Number.isFinite);
    if (!Number.isFinite(seen) || !counts.length) {
      this.clear.hidden = true;
      this.clear.textContent = "";
      return;
    }
    const clear = Math.max(...counts);
    const share = seen > 0 ? ` (${Math.round((100 * clear) / seen)} %)` : "";
    this.clear.textContent = `${clear} of ${seen} observations clear${share}`;
    this.clear.dataset.clear = String(clear);
    this.clear.dataset.seen = String(seen);
    this.clear.title = "Observations seen: acquisitions whose data cover the pixel, cloud-free or masked (QA layer)";
    this.clear.hidden = false;
  }

  async _loadChart(controller) {
    const { season, seasons, chartBand } = this.context();
    const names = chartSeasons(seasons, season);
    const { lat, lng } = this.latlng;
    this.chart.dataset.state = "loading";
    this.chart.dataset.band = chartBand;
    const own = this.current && this.current.values[this.current.band_names.indexOf(`${chartBand}_p50`)];
    const values = await inPool(names, async (name) => {
      if (name === season && this.current) return own;
      try {
        const query = new URLSearchParams({ bands: chartBand, statistic: "p50" });
        const { body } = await this.api.json(this.api.point(name, lng, lat, query), { signal: controller.signal });
        return body.values[0];
      } catch {
        return null;
      }
    }, PARALLEL);
    if (controller.signal.aborted || this.controller !== controller) return;
    const points = names.map((name, i) => ({ season: name, value: values[i] }));
    if (!names.includes(season)) {
      const order = bySeasonStart(seasons);
      points.push({ season, value: own });
      points.sort((a, b) => order(a.season, b.season));
    }
    renderChart(this.chart, points, { current: season, label: `${chartBand} P50 (DN)` });
    this.chart.dataset.state = "ready";
  }
}
