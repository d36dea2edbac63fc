// Keeps tool output within the model's context: a result longer than its
// budget is cut at a line boundary (the head: tools put their summary line and
// the newest rows first) and ends with a note telling the model how to page.

/** Argument names that narrow a query, in the order worth suggesting. */
const narrowing: Array<[string, string]> = [
  ["since", "a shorter since (e.g. 15m)"],
  ["until", "an until"],
  ["service", "one service"],
  ["event_type", "one event_type"],
  ["metric", "one metric"],
  ["interval", "a coarser interval (e.g. 1h)"],
  ["limit", "a smaller limit"],
];

/** "a shorter since (e.g. 15m), one service, a smaller limit" from the tool's schema. */
export function pagingHint(inputSchema: object): string {
  const props = (inputSchema as { properties?: Record<string, unknown> }).properties ?? {};
  const hints = narrowing.filter(([name]) => name in props).map(([, hint]) => hint);
  return hints.length > 0 ? hints.join(", ") : "narrower arguments";
}

export interface Fitted {
  text: string;
  truncated: boolean;
}

/** Cuts `text` to at most `budget` characters (note included) with a paging note. */
export function fitToolResult(text: string, budget: number, tool: { name: string; inputSchema: object }, reason = "the per-result budget"): Fitted {
  if (text.length <= budget) return { text, truncated: false };
  const lines = text.split("\n");
  const hint = pagingHint(tool.inputSchema);
  const note = (shownLines: number, shownChars: number) =>
    `\n[coral ask cut this result to fit ${reason}: showing ${shownLines} of ${lines.length} lines (${shownChars} of ${text.length} characters). ` +
    `To see the rest, call ${tool.name} again with ${hint}.]`;
  const room = Math.max(0, budget - note(lines.length, text.length).length);
  let shown = 0;
  let chars = 0;
  while (shown < lines.length && chars + lines[shown]!.length + 1 <= room) chars += lines[shown++]!.length + 1;
  let head = lines.slice(0, shown).join("\n");
  if (shown === 0) head = text.slice(0, room); // one huge line: cut inside it
  return { text: head + note(shown, head.length), truncated: true };
}

/** The first non-empty line, clipped: the one-line digest shown as evidence. */
export function digestOf(text: string, max = 160): string {
  const line = text.split("\n").find((l) => l.trim() !== "")?.trim() ?? "(empty)";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
