// The keep rules on spans built here (no wire): errors and slow spans keep
// their whole trace, the kept share is by trace id, late spans follow their
// trace's decision, and the buffer's bound decides the oldest traces early.
import { describe, expect, it } from "vitest";
import type { SpanRecord } from "./records.ts";
import { TailSampler, inKeptShare } from "./tail-sampler.ts";

let n = 0;
const span = (traceId: string, extra: Partial<SpanRecord> = {}): SpanRecord => ({
  traceId,
  spanId: (++n).toString(16).padStart(16, "0"),
  parentSpanId: "",
  service: "api",
  pid: 0,
  name: "GET /x",
  kind: "server",
  startNs: 0n,
  endNs: 1_000_000n,
  durationMs: 1,
  error: false,
  statusMessage: "",
  attributes: "{}",
  ...extra,
});
// Trace ids whose first 32 bits put them in or out of a 10 % share.
const inShare = (i: number) => `00${i.toString(16).padStart(6, "0")}${"a".repeat(24)}`;
const outShare = (i: number) => `f0${i.toString(16).padStart(6, "0")}${"a".repeat(24)}`;

describe("TailSampler", () => {
  it("keeps whole traces with an error or a slow span, a share of the rest, after the wait", () => {
    const t = new TailSampler({ slowMs: 200, keepShare: 0.1, decisionWaitMs: 1000 });
    const spans = [
      span(outShare(1)),
      span(outShare(1), { error: true }),
      span(outShare(2)),
      span(outShare(2), { durationMs: 250 }),
      span(outShare(3)),
      span(outShare(3)),
      span(inShare(4)),
    ];
    expect(t.add(spans, 0)).toEqual([]);
    expect(t.flush(999)).toEqual([]);
    const kept = t.flush(1000);
    expect(kept.map((s) => s.traceId)).toEqual([outShare(1), outShare(1), outShare(2), outShare(2), inShare(4)]);
    expect(t.stats()).toEqual({ received: 7, kept: 5, dropped: 2, buffered: 0, decidedEarly: 0 });
  });

  it("late spans follow their trace's decision; a late error span is kept on its own", () => {
    const t = new TailSampler({ keepShare: 0, decisionWaitMs: 10 });
    t.add([span(outShare(1), { error: true }), span(outShare(2))], 0);
    t.flush(10);
    const late = t.add([span(outShare(1)), span(outShare(2)), span(outShare(2), { error: true })], 20);
    expect(late.map((s) => [s.traceId, s.error])).toEqual([
      [outShare(1), false],
      [outShare(2), true],
    ]);
  });

  it("decides the oldest traces early when the buffer is full", () => {
    const t = new TailSampler({ keepShare: 1, maxBufferedSpans: 3, decisionWaitMs: 60_000 });
    const out = t.add([span(outShare(1)), span(outShare(1)), span(outShare(2)), span(outShare(3))], 0);
    expect(out.map((s) => s.traceId)).toEqual([outShare(1), outShare(1)]);
    expect(t.stats().buffered).toBe(2);
    expect(t.stats().decidedEarly).toBe(1);
  });

  it("the share is by trace id, so it is the same on every agent", () => {
    expect(inKeptShare("19999999" + "0".repeat(24), 0.1)).toBe(true);
    expect(inKeptShare("1a000000" + "0".repeat(24), 0.1)).toBe(false);
    expect(inKeptShare("ffffffff" + "0".repeat(24), 1)).toBe(true);
    expect(() => new TailSampler({ keepShare: 1.5 })).toThrow(/keepShare/);
  });
});
