import { describe, expect, it } from "vitest";
import { traceTree, type SpanRow } from "./otel-rows.ts";

const t0 = Date.parse("2026-05-01T14:00:00.000Z");
const span = (spanId: string, parentSpanId: string, service: string, startMs: number, durationMs: number): SpanRow => ({
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId,
  parentSpanId,
  service,
  name: spanId,
  kind: "server",
  start: new Date(t0 + startMs).toISOString(),
  durationMs,
  error: false,
  statusMessage: "",
  attributes: {},
});

describe("traceTree", () => {
  it("puts children under their parent by start time, and spans whose parent is not kept at the top", () => {
    const tree = traceTree([
      span("db", "charge", "api", 30, 5),
      span("charge", "root", "api", 2, 238),
      span("root", "", "web", 0, 250),
      span("auth", "root", "web", 1, 1),
      // Its parent lives in another agent's window: it hangs from the top, after root by start time.
      span("late", "gone", "mail", 300, 10),
    ]);
    expect(tree.spans.map((s) => [s.row.spanId, s.depth, s.offsetMs])).toEqual([
      ["root", 0, 0],
      ["auth", 1, 1],
      ["charge", 1, 2],
      ["db", 2, 30],
      ["late", 0, 300],
    ]);
    expect(tree.totalMs).toBe(310);
    expect(tree.services).toBe(3);
  });

  it("shows every span once, even when parents point at each other", () => {
    const tree = traceTree([span("a", "", "web", 0, 5), span("b", "c", "web", 1, 1), span("c", "b", "web", 2, 1)]);
    expect(tree.spans.map((s) => [s.row.spanId, s.depth])).toEqual([
      ["a", 0],
      ["b", 0],
      ["c", 1],
    ]);
  });
});
