// Season names and their order. Built seasons come from /seasons (with dates); any calendar season
// (YEAR-winter|spring|summer|autumn, GLAD ARD calendar) can be composited on the fly.

export const CALENDAR = ["winter", "spring", "summer", "autumn"];
const START = { winter: "12-02", spring: "03-21", summer: "06-25", autumn: "09-13" };
const CALENDAR_NAME = /^(\d{4})-(winter|spring|summer|autumn)$/;

/** Start date (YYYY-MM-DD) of a season: from ``built`` when listed there, else from the calendar. */
export function seasonStart(name, built = []) {
  const known = built.find((s) => s.name === name);
  if (known) return known.start_date;
  const match = CALENDAR_NAME.exec(name);
  if (!match) return name;
  const year = Number(match[1]) - (match[2] === "winter" ? 1 : 0);
  return `${year}-${START[match[2]]}`;
}

export function bySeasonStart(built) {
  return (a, b) => seasonStart(a, built).localeCompare(seasonStart(b, built));
}

/** Calendar seasons of the years of the built ones (or of last year), not built: offered on the fly. */
export function onTheFlyChoices(built, today = new Date()) {
  const years = new Set();
  for (const s of built) {
    const match = CALENDAR_NAME.exec(s.name);
    if (match) years.add(Number(match[1]));
  }
  if (!years.size) years.add(today.getFullYear() - 1);
  const names = new Set(built.map((s) => s.name));
  const choices = [];
  for (const year of [...years].sort()) {
    for (const part of CALENDAR) {
      const name = `${year}-${part}`;
      if (!names.has(name)) choices.push(name);
    }
  }
  return choices;
}
