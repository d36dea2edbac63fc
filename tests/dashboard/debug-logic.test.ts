// The Debug view's logic without a browser: the start form's checks (the
// limits of `coral debug attach`), percentiles, the log2 latency histogram,
// and calls paired from the streamed events.
import { parseDuration } from "@coral/common/duration";
import {
  CallLog,
  checkStartForm,
  defaultStartForm,
  formatNs,
  histogramOf,
  isSessionOver,
  latencyStats,
  laterSession,
  log2Bucket,
  log2Histogram,
  parseDurationText,
  percentile,
  sessionFilter,
  type StartForm,
  type UprobeEventLike,
} from "@coral/dashboard/logic";
import { describe, expect, it } from "vitest";

const form = (over: Partial<StartForm>): StartForm => ({ ...defaultStartForm, service: "payments", functionName: "validate_card", ...over });

describe("the start form", () => {
  it("turns the CLI's defaults into the same request `coral debug attach` sends", () => {
    expect(checkStartForm(form({}))).toEqual({
      request: { serviceName: "payments", functionName: "validate_card", durationMs: 60_000, captureArgs: 0, captureReturn: false, sampleRate: 1, maxEvents: 10_000, slowThresholdMs: 100 },
    });
    expect(checkStartForm(form({ service: " api ", functionName: " main.ValidateCard ", duration: "1m30s", captureArgs: "6", captureReturn: true, slow: "1s", sampleRate: "10", maxEvents: "1000000" }))).toEqual({
      request: { serviceName: "api", functionName: "main.ValidateCard", durationMs: 90_000, captureArgs: 6, captureReturn: true, sampleRate: 10, maxEvents: 1_000_000, slowThresholdMs: 1000 },
    });
  });

  it.each([
    ["duration", "1s", 1000],
    ["duration", "10m", 600_000],
    ["duration", "2.5s", 2500],
    ["duration", "1500ms", 1500],
  ] as const)("accepts %s %s", (field, value, ms) => {
    const checked = checkStartForm(form({ [field]: value }));
    expect("request" in checked && checked.request.durationMs).toBe(ms);
  });

  it.each([
    ["duration", "999ms", "must be from 1s to 10m (the agent's hard limit)"],
    ["duration", "10m1s", "must be from 1s to 10m (the agent's hard limit)"],
    ["duration", "1h", "must be from 1s to 10m (the agent's hard limit)"],
    ["duration", "30", '"30" has no unit (ms, s, m, h, d, w, y); use e.g. 30s, 5m'],
    ["duration", "", "empty duration; use e.g. 30s, 5m"],
    ["duration", "-5s", 'negative duration "-5s" is not allowed; use e.g. 30s, 5m'],
    ["duration", "5x", 'unknown unit "x" in "5x" (use ms, s, m, h, d, w, y); use e.g. 30s, 5m'],
    ["captureArgs", "7", "must be an integer from 0 to 6"],
    ["captureArgs", "-1", "must be an integer from 0 to 6"],
    ["captureArgs", "1.5", "must be an integer from 0 to 6"],
    ["captureArgs", "", "must be an integer from 0 to 6"],
    ["sampleRate", "0", "must be an integer from 1 to 1,000,000"],
    ["sampleRate", "1000001", "must be an integer from 1 to 1,000,000"],
    ["maxEvents", "0", "must be an integer from 1 to 1,000,000"],
    ["maxEvents", "lots", "must be an integer from 1 to 1,000,000"],
    ["slow", "0ms", "must be a duration like 100ms or 1s"],
    ["slow", "fast", "must be a duration like 100ms or 1s"],
    ["slow", "2h", "must be at most 1h"],
    ["service", "", "choose a component"],
    ["functionName", "", "name a function, e.g. validate_card or main.ValidateCard"],
    ["functionName", "validate card", "must be one symbol name without spaces"],
    ["functionName", "x".repeat(1025), "must be one symbol name without spaces"],
  ] as const)("refuses %s %j", (field, value, message) => {
    expect(checkStartForm(form({ [field]: value }))).toEqual({ errors: { [field]: message } });
  });

  it("names every wrong field at once", () => {
    const checked = checkStartForm({ ...defaultStartForm, duration: "11m", captureArgs: "9" });
    expect(Object.keys("errors" in checked ? checked.errors : {}).sort()).toEqual(["captureArgs", "duration", "functionName", "service"]);
  });

  it.each(["90s", "5m", "1h30m", "250ms", "1.5s", "0s", "2d", "", "  ", "-1s", "5", "5x", "1m-2s", "s", "1y1w", "99999999999999999999y"])(
    "reads the duration %j as @coral/common's parseDuration (the CLI's) does",
    (text) => {
      expect(parseDurationText(text)).toEqual(parseDuration(text));
    },
  );
});

describe("latency figures", () => {
  it("takes percentiles by nearest rank, as the CLI's summary does", () => {
    const sorted = Array.from({ length: 100 }, (_, n) => n + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 95)).toBe(95);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBe(0);
    expect(percentile([10, 20, 30], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 50)).toBe(20);
  });

  it("counts calls, the mean, max and the slow ones of unsorted durations", () => {
    expect(latencyStats([3_000_000, 1_000_000, 200_000_000, 2_000_000], 100)).toEqual({
      calls: 4,
      avgNs: 51_500_000,
      p50Ns: 2_000_000,
      p95Ns: 200_000_000,
      p99Ns: 200_000_000,
      maxNs: 200_000_000,
      slowCalls: 1,
    });
    expect(latencyStats([], 100)).toEqual({ calls: 0, avgNs: 0, p50Ns: 0, p95Ns: 0, p99Ns: 0, maxNs: 0, slowCalls: 0 });
  });

  it("writes nanoseconds as the CLI does", () => {
    expect(formatNs(4200)).toBe("4.2µs");
    expect(formatNs(22_000_000n)).toBe("22.0ms");
    expect(formatNs(1_500_000_000)).toBe("1.50s");
  });
});

describe("the log2 histogram", () => {
  it.each([
    [0, 0],
    [1, 0],
    [2, 1],
    [3, 1],
    [4, 2],
    [1023, 9],
    [1024, 10],
    [1025, 10],
    [2 ** 30 - 1, 29],
    [2 ** 30, 30],
    [2 ** 40 + 5, 40],
  ])("puts %d ns in bucket %d", (ns, k) => {
    expect(log2Bucket(ns)).toBe(k);
  });

  it("counts every bucket from the fastest to the slowest call, empty ones as zero", () => {
    // 1 µs ≈ 2^10 ns, 3 ms ≈ 2^21..2^22 ns.
    const h = log2Histogram([1024, 1500, 2047, 3_000_000, 2048]);
    expect(h.lowerNs).toEqual(Array.from({ length: 12 }, (_, n) => 2 ** (10 + n)));
    expect(h.counts).toEqual([3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(5);
    expect(h.labels[0]).toBe("1.0µs–2.0µs");
    expect(h.labels[11]).toBe("2.1ms–4.2ms");
    expect(log2Histogram([])).toEqual({ lowerNs: [], counts: [], labels: [] });
    expect(histogramOf(new Map([[5, 2]]))).toEqual({ lowerNs: [32], counts: [2], labels: ["0.0µs–0.1µs"] });
  });
});

describe("calls from the stream", () => {
  let seq = 0n;
  const ts = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
  const entry = (tid: number, at: number, args: string[] = []): UprobeEventLike => ({ seq: ++seq, timestamp: ts(at), type: "entry", pid: 7, tid, durationNs: 0n, args, returnValue: "", goroutine: "" });
  const ret = (tid: number, at: number, ns: number, value = ""): UprobeEventLike => ({ seq: ++seq, timestamp: ts(at), type: "return", pid: 7, tid, durationNs: BigInt(ns), args: [], returnValue: value, goroutine: "" });

  it("pairs each return with its thread's entry (calls nest), keeps the newest first, and ignores events seen before", () => {
    const log = new CallLog(3);
    const a = entry(1, 1000, ["10"]);
    const b = entry(2, 1001, ["20"]);
    const nested = entry(1, 1002, ["11"]);
    const events = [a, b, nested, ret(1, 1003, 1_000_000, "22"), ret(2, 1004, 3_000_000, "40"), ret(1, 1005, 5_000_000, "20")];
    log.add(events.slice(0, 4));
    log.add(events.slice(2)); // a resumed stream repeating two events
    expect(log.entries).toBe(3);
    expect(log.calls).toBe(3);
    expect(log.lastSeq).toBe(events[5]!.seq);
    expect(log.recent.map((c) => [c.tid, c.args, c.returnValue, c.durationNs, c.atMs])).toEqual([
      [1, ["10"], "20", 5_000_000, 1000],
      [2, ["20"], "40", 3_000_000, 1001],
      [1, ["11"], "22", 1_000_000, 1002],
    ]);
    expect(log.stats(2)).toMatchObject({ calls: 3, p50Ns: 3_000_000, maxNs: 5_000_000, slowCalls: 2 });
    expect(log.histogram().counts.reduce((x, y) => x + y, 0)).toBe(3);

    // Only the newest `keep` calls stay; a return whose entry was not seen keeps its own time.
    log.add([ret(3, 2000, 10), ret(3, 2001, 20)]);
    expect(log.recent.map((c) => c.durationNs)).toEqual([20, 10, 5_000_000]);
    expect(log.recent[0]!.args).toEqual([]);
    expect(log.recent[0]!.atMs).toBe(2001);
    expect(log.calls).toBe(5);
  });
});

describe("logpoint values and snapshots from the stream", () => {
  let seq = 100n;
  const ts = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
  const rec = (type: "log" | "snapshot", at: number, value: string): UprobeEventLike => ({ seq: ++seq, timestamp: ts(at), type, pid: 7, tid: 7, durationNs: 0n, args: [], returnValue: "", goroutine: "", value });

  it("counts the records, keeps the newest first, splits a snapshot into names and values, and counts no call", () => {
    const log = new CallLog(2);
    const events = [rec("log", 1000, "1"), rec("log", 1001, "!TypeError: x"), rec("snapshot", 1002, '{"a":"1","b":"<uninitialized>"}'), rec("snapshot", 1003, "not json")];
    log.add(events.slice(0, 3));
    log.add(events.slice(1)); // a resumed stream repeating two events
    expect([log.records, log.entries, log.calls]).toEqual([4, 0, 0]);
    expect(log.recentRecords.map((r) => [r.atMs, r.value, r.values])).toEqual([
      [1003, "not json", [["value", "not json"]]],
      [1002, '{"a":"1","b":"<uninitialized>"}', [["a", "1"], ["b", "<uninitialized>"]]],
    ]);
  });
});

describe("session states", () => {
  it("never takes an ended session back to running when a late answer arrives", () => {
    const active = { state: "active", n: 1 };
    const completed = { state: "completed", n: 2 };
    expect(laterSession(undefined, active)).toBe(active);
    expect(laterSession(active, completed)).toBe(completed);
    expect(laterSession(completed, active)).toBe(completed);
    const withSummary = { state: "completed", n: 3 };
    expect(laterSession(completed, withSummary)).toBe(withSummary);
    expect(["completed", "expired", "failed"].every(isSessionOver)).toBe(true);
    expect(["requested", "attaching", "active", "detaching"].some(isSessionOver)).toBe(false);
  });

  it("reads the list's state filter from the URL", () => {
    expect(sessionFilter("active").id).toBe("active");
    expect(sessionFilter("finished").label).toBe("finished");
    expect(sessionFilter("nonsense").id).toBe("");
    expect(sessionFilter(null).id).toBe("");
  });
});
