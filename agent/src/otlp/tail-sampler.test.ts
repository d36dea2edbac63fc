// The keep rules on spans built here (no wire): errors and slow spans keep
// their whole trace, the kept share is by trace id, late spans follow their
// trace's decision, and the buffer's bound decides the oldest traces early.
// Across agents: error and slow traces are handed on at once, once each, and
// what other agents were told to keep is kept here, waiting or arriving
// within the remembered time, the memory bounded.
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
    expect(t.stats()).toEqual({ received: 7, kept: 5, dropped: 2, buffered: 0, decidedEarly: 0, reported: 0, told: 0, keptForOthers: 0 });
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

  it("hands each error or slow trace to onKeep once, as its first such span arrives, not for the share", () => {
    const reported: string[] = [];
    const t = new TailSampler({ slowMs: 200, keepShare: 0.1, decisionWaitMs: 1000, onKeep: (id) => reported.push(id) });
    t.add([span(outShare(1)), span(outShare(1), { error: true }), span(outShare(1), { durationMs: 300 }), span(inShare(2))], 0);
    expect(reported).toEqual([outShare(1)]); // at once, before the wait is over
    t.add([span(outShare(3), { durationMs: 250 }), span(outShare(1), { error: true })], 10);
    expect(reported).toEqual([outShare(1), outShare(3)]);
    t.flush(2000);
    // A late error span of a dropped trace: kept, reported, and the trace kept from then on.
    t.add([span(outShare(4))], 2000);
    t.flush(4000);
    const late = t.add([span(outShare(4), { error: true }), span(outShare(4))], 4001);
    expect(late).toHaveLength(2);
    expect(reported).toEqual([outShare(1), outShare(3), outShare(4)]);
    expect(t.stats().reported).toBe(3);
  });

  it("keeps what other agents were told to keep: waiting spans at once, later ones for toldKeepMs, without reporting them back", () => {
    const reported: string[] = [];
    const t = new TailSampler({ slowMs: 200, keepShare: 0, decisionWaitMs: 5000, toldKeepMs: 30_000, onKeep: (id) => reported.push(id) });
    // Waiting here: kept now, not after the wait; the rest of the trace follows.
    expect(t.add([span(outShare(1)), span(outShare(1))], 0)).toEqual([]);
    const now = t.keepTold([outShare(1)], 100);
    expect(now.map((s) => s.traceId)).toEqual([outShare(1), outShare(1)]);
    expect(t.stats().buffered).toBe(0);
    expect(t.add([span(outShare(1))], 200).map((s) => s.traceId)).toEqual([outShare(1)]);
    // Not seen yet: its spans are kept as they arrive, for 30 s; an error among them is not reported back.
    t.keepTold([outShare(2), outShare(3)], 1000);
    expect(t.add([span(outShare(2)), span(outShare(2), { error: true })], 1500)).toHaveLength(2);
    expect(t.add([span(outShare(3))], 30_999)).toHaveLength(1);
    expect(t.add([span(outShare(3))], 31_000)).toEqual([]); // the told keep ran out: waits like any span
    expect(t.flush(40_000)).toEqual([]); // and is dropped (keep share 0)
    // Dropped here already: what comes from now on is kept.
    t.add([span(outShare(4))], 40_000);
    t.flush(50_000);
    t.keepTold([outShare(4)], 50_000);
    expect(t.add([span(outShare(4))], 50_001)).toHaveLength(1);
    expect(reported).toEqual([]);
    expect(t.stats()).toMatchObject({ told: 4, keptForOthers: 6, reported: 0, kept: 7, dropped: 2 });
  });

  it("remembers at most rememberTold told keeps, forgetting the oldest", () => {
    const t = new TailSampler({ keepShare: 0, decisionWaitMs: 10, rememberTold: 2 });
    t.keepTold([outShare(1), outShare(2), outShare(3)], 0);
    t.keepTold([outShare(2)], 1); // told again: now the newest
    t.keepTold([outShare(4)], 2);
    const kept = t.add([1, 2, 3, 4].map((i) => span(outShare(i))), 3);
    expect(kept.map((s) => s.traceId)).toEqual([outShare(2), outShare(4)]);
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
