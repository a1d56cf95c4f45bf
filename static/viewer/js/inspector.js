// The pixel inspector: a click on the map shows, for the season's pixel under it, every band's
// P25/P50/P75 and count (one point query), how many of the observations seen were clear (seasons built with
// the QA layer), the medoid's date and bands (seasons built with the medoid), and a chart of one band's P50
// across the built seasons near it, at most MAX_SEASONS (one series query, /seasons/series/point, of that
// band's P50: where a season is not built, only that band is composited on the fly).

import { SOURCE_HEADER } from "./tiles.js";
import { renderChart } from "./chart.js";
import { bySeasonStart } from "./seasons.js";

const L = window.L;
const KINDS = ["p25", "p50", "p75", "count"];
export const MAX_SEASONS = 12; // the server's series take at most 16

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

/** The date (YYYY-MM-DD) of day of year ``doy`` within a season from ``start`` to ``end`` (ISO dates). */
export function medoidDate(start, end, doy) {
  const first = Number(start.slice(0, 4));
  for (const year of [first, first + 1]) {
    const day = new Date(Date.UTC(year, 0, 1) + (doy - 1) * 86400000).toISOString().slice(0, 10);
    if (day >= start && day <= end) return day;
  }
  return null;
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
    this.medoid = document.getElementById("inspector-medoid");
    this.chart = document.getElementById("chart");
    this.bandSelect = document.getElementById("chart-band");
    this.latlng = null;
    this.controller = null;
    this.series = null; // {url, entries}: the last series answer (a redraw of the same chart asks nothing)
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
      this.medoid.hidden = true;
      this._renderFillSource(new Map());  // no answer: no fill source either
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
    this._renderMedoid(values);
    this._renderFillSource(values);
  }

  /** The medoid observation's date and six bands where the season was built with it (medoid_doy in the answer). */
  _renderMedoid(values) {
    const doy = values.get("medoid_doy");
    if (!Number.isFinite(doy) || doy <= 0) {
      this.medoid.hidden = true;
      this.medoid.textContent = "";
      return;
    }
    const { season, seasons } = this.context();
    const record = seasons.find((s) => s.name === season);
    const date = record ? medoidDate(record.start_date, record.end_date, doy) : null;
    const bands = this.context().bands.map(({ name }) => `${name} ${cellText(values.get(`${name}_medoid`))}`);
    this.medoid.textContent = `Medoid: the observation of ${date || `day ${doy}`} · ${bands.join(", ")}`;
    this.medoid.dataset.date = date || "";
    this.medoid.dataset.doy = String(doy);
    this.medoid.title = "The one observation closest to all others over the six bands (S2GM's medoid): every band from this date";
    this.medoid.hidden = false;
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
    const { season, seasons, chartBand, variant } = this.context();
    const names = chartSeasons(seasons, season);
    if (!names.includes(season)) {
      names.push(season);
      names.sort(bySeasonStart(seasons));
    }
    const { lat, lng } = this.latlng;
    // the variant shown (gap-filled): its values, so the chart agrees with the table (seasons without it: gaps)
    const query = new URLSearchParams({ bands: chartBand, statistic: "p50", ...(variant ? { variant } : {}) });
    const url = this.api.seriesPoint(names, lng, lat, query);
    this.chart.dataset.state = "loading";
    this.chart.dataset.band = chartBand;
    let entries = this.series?.url === url ? this.series.entries : null;
    if (!entries) {
      try {
        const { body } = await this.api.json(url, { signal: controller.signal });
        entries = body.series;
        this.series = { url, entries };
      } catch {
        entries = []; // no chart values: "no value in any season"
      }
    }
    if (controller.signal.aborted || this.controller !== controller) return;
    const bySeason = new Map(entries.map((e) => [e.season, e.values ? e.values[`${chartBand}_p50`] : null]));
    const points = names.map((name) => ({ season: name, value: bySeason.get(name) ?? null }));
    renderChart(this.chart, points, { current: season, label: `${chartBand} P50 (DN${variant ? `, ${variant}` : ""})` });
    this.chart.dataset.state = "ready";
  }
}
