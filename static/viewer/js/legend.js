// The legend of the current layer: a colour ramp for colormapped layers (NDVI, count), the band
// of each channel and its display range for band triples. Colormaps come from the server's
// /colorMaps/{name} (TiTiler), so the ramp is exactly the one the tiles use.

const STOPS = 16;
const ramps = new Map(); // colormap name -> CSS gradient

async function colormapGradient(api, name) {
  if (!ramps.has(name)) {
    const { body } = await api.json(api.url(`/colorMaps/${encodeURIComponent(name)}`));
    const stops = [];
    for (let i = 0; i <= STOPS; i += 1) {
      const index = Math.round((i / STOPS) * 255);
      const [r, g, b] = body[String(index)] || [0, 0, 0];
      stops.push(`rgb(${r} ${g} ${b}) ${((i / STOPS) * 100).toFixed(1)}%`);
    }
    ramps.set(name, `linear-gradient(to right, ${stops.join(", ")})`);
  }
  return ramps.get(name);
}

function format(value) {
  return Math.abs(value) < 10 && !Number.isInteger(value) ? value.toFixed(1) : String(Math.round(value));
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draw the legend of ``layer`` into ``container``.
 * layer: {title, description, colormap: name|null, range: [min, max], unit, channels: [{band, range}]}
 */
export async function renderLegend(container, api, layer) {
  const body = element("div", "legend-body");
  body.append(element("p", "legend-title", layer.title));
  if (layer.colormap) {
    const ramp = element("div", "legend-ramp");
    ramp.dataset.colormap = layer.colormap;
    const labels = element("div", "legend-labels");
    labels.append(element("span", "", format(layer.range[0])), element("span", "legend-unit", layer.unit),
                  element("span", "", format(layer.range[1])));
    body.append(ramp, labels);
    try {
      ramp.style.background = await colormapGradient(api, layer.colormap);
    } catch (err) {
      ramp.textContent = `colormap unavailable (${err.message})`;
    }
  } else {
    const list = element("ul", "legend-channels");
    ["R", "G", "B"].forEach((channel, i) => {
      const item = layer.channels[i];
      if (!item) return;
      const row = element("li", `legend-channel legend-${channel.toLowerCase()}`);
      row.append(element("b", "", channel), element("span", "", item.band),
                 element("span", "legend-range", `${format(item.range[0])}–${format(item.range[1])} DN`));
      list.append(row);
    });
    body.append(list);
  }
  if (layer.description) body.append(element("p", "hint", layer.description));
  container.replaceChildren(body);
}

/**
 * Draw a categorical legend (the fill flag) into ``container``: a swatch and a label per class.
 * layer: {title, description, categories: [{value, colour, label}]}; ``null`` hides the container.
 */
export function renderCategories(container, layer) {
  container.hidden = !layer;
  if (!layer) {
    container.replaceChildren();
    return;
  }
  const body = element("div", "legend-body");
  body.append(element("p", "legend-title", layer.title));
  const list = element("ul", "legend-categories");
  for (const { value, colour, label } of layer.categories) {
    const row = element("li", "legend-category");
    row.dataset.value = String(value);
    const swatch = element("i");
    swatch.style.background = colour;
    row.append(swatch, element("span", "", `${value} ${label}`));
    list.append(row);
  }
  body.append(list);
  if (layer.description) body.append(element("p", "hint", layer.description));
  container.replaceChildren(body);
}
