// The Traces view's filters, as the page reads them from its URL.

/** "200ms", "1.5s", "200" (ms): the minimum-duration filter in ms; 0 when empty, NaN when it cannot be read. */
export function parseMinDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(text.trim());
  if (!m) return text.trim() === "" ? 0 : NaN;
  return Number(m[1]) * (m[2] === "s" ? 1000 : 1);
}
