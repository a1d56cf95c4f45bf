// Copy buttons: the permalink, the XYZ template for QGIS, the WMTS capabilities URL and the WMS-T URL. The text is
// also put in a read-only field, for browsers that refuse the clipboard (plain http off localhost).

async function writeClipboard(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the legacy path
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** Wire the buttons; ``texts`` maps a button id to {text(), hint()} giving what to copy and a how-to. */
export function wireShareButtons(texts) {
  const output = document.getElementById("share-output");
  const hint = document.getElementById("share-hint");
  for (const [id, { text, hint: howTo }] of Object.entries(texts)) {
    const button = document.getElementById(id);
    button.addEventListener("click", async () => {
      const value = text();
      output.value = value;
      output.dataset.kind = id;
      const copied = await writeClipboard(value);
      hint.textContent = `${copied ? "Copied" : "Select and copy"}: ${howTo()}`;
      button.classList.add("done");
      setTimeout(() => button.classList.remove("done"), 1200);
      if (!copied) output.select();
    });
  }
}
