// A small hand-drawn SVG line chart: one value per season, in season order, gaps where a season
// has no value. Each point carries data-season and data-value (and a <title> tooltip).

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 150;
const MARGIN = { top: 12, right: 10, bottom: 34, left: 44 };

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Round, readable axis ticks covering [low, high]. */
function ticks(low, high, count = 4) {
  const span = high - low || Math.abs(high) || 1;
  const raw = span / count;
  const step = [1, 2, 2.5, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((s) => s >= raw);
  const first = Math.floor(low / step) * step;
  const values = [];
  for (let v = first; values.length < 50; v += step) {  // up to the first tick at or above ``high``
    values.push(Math.round(v * 1e6) / 1e6);
    if (v >= high) break;
  }
  return values;
}

function shortSeason(name) {
  const match = /^(\d{4})-(winter|spring|summer|autumn)$/.exec(name);
  return match ? `${match[2].slice(0, 3)} ${match[1].slice(2)}` : name.slice(0, 10);
}

/**
 * Draw ``points`` ([{season, value}] with value a number or null) into ``container``.
 * ``current`` is highlighted; ``label`` names the series (e.g. "red P50, DN").
 */
export function renderChart(container, points, { current, label }) {
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart-svg",
                            "aria-label": `${label} by season` });
  const known = points.filter((p) => Number.isFinite(p.value));
  if (!known.length) {
    root.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "chart-empty" },
                    "no value in any season"));
    container.replaceChildren(root);
    return;
  }
  const values = known.map((p) => p.value);
  const yTicks = ticks(Math.min(0, ...values), Math.max(...values));
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1] || 1];
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (i) => MARGIN.left + (points.length === 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const y = (v) => MARGIN.top + plotH - ((v - y0) / (y1 - y0 || 1)) * plotH;

  const grid = svg("g", { class: "chart-grid" });
  for (const t of yTicks) {
    grid.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(t), y2: y(t) }));
    grid.append(svg("text", { x: MARGIN.left - 6, y: y(t) + 3, "text-anchor": "end" }, String(t)));
  }
  root.append(grid);

  const every = Math.ceil(points.length / 6);
  const axis = svg("g", { class: "chart-axis" });
  points.forEach((p, i) => {
    if (i % every === 0 || p.season === current) {
      const anchor = points.length > 1 && i === 0 ? "start" : points.length > 1 && i === points.length - 1 ? "end"
        : "middle";
      axis.append(svg("text", { x: x(i), y: HEIGHT - MARGIN.bottom + 14, "text-anchor": anchor,
                                class: p.season === current ? "chart-current" : "" }, shortSeason(p.season)));
    }
  });
  root.append(axis);

  let path = "";
  let drawing = false;
  points.forEach((p, i) => {
    if (!Number.isFinite(p.value)) {
      drawing = false;
      return;
    }
    path += `${drawing ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`;
    drawing = true;
  });
  root.append(svg("path", { d: path, class: "chart-line" }));

  points.forEach((p, i) => {
    if (!Number.isFinite(p.value)) return;
    const dot = svg("circle", { cx: x(i), cy: y(p.value), r: p.season === current ? 5 : 3.5,
                                class: p.season === current ? "chart-dot chart-current" : "chart-dot",
                                "data-season": p.season, "data-value": p.value });
    dot.append(svg("title", {}, `${p.season}: ${Math.round(p.value)}`));
    root.append(dot);
  });
  root.append(svg("text", { x: MARGIN.left, y: HEIGHT - 4, class: "chart-label" }, label));
  container.replaceChildren(root);
}
