import { describe, expect, it } from "vitest";
import { BodyCapture } from "./body.ts";
import { bucketIndex, bucketValue, LatencyHistogram } from "./histogram.ts";
import { resolveRequestOptions } from "./options.ts";
import { BoundedQueue } from "./queue.ts";
import { RedAggregator } from "./red.ts";
import { headPairs, redactionSet, redactPairs, REDACTED } from "./redact.ts";
import { frameworkRoute } from "./recorder.ts";
import { Sampler, alwaysKept } from "./sampler.ts";

describe("redaction", () => {
  it("redacts authorization, cookie, set-cookie, proxy-authorization and configured names, whatever their case", () => {
    const set = redactionSet(["X-Api-Key"]);
    const raw = ["Host", "a", "Authorization", "Bearer s3cret", "COOKIE", "sid=1", "Proxy-Authorization", "Basic x", "x-api-key", "k", "Set-Cookie", "a=b", "Accept", "*/*"];
    expect(redactPairs(raw, set)).toEqual([
      { name: "Host", value: "a" },
      { name: "Authorization", value: REDACTED },
      { name: "COOKIE", value: REDACTED },
      { name: "Proxy-Authorization", value: REDACTED },
      { name: "x-api-key", value: REDACTED },
      { name: "Set-Cookie", value: REDACTED },
      { name: "Accept", value: "*/*" },
    ]);
  });
  it("reads a response head as written", () => {
    expect(headPairs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n")).toEqual([
      "Content-Type",
      "text/plain",
      "Set-Cookie",
      "a=1",
      "Set-Cookie",
      "b=2",
    ]);
  });
});

describe("body capture", () => {
  it("keeps the first bytes up to the limit and marks the body truncated, counting every byte", () => {
    const b = new BodyCapture(10);
    b.add(Buffer.from("hello "));
    b.add("wörld and more", "utf8");
    b.add(Buffer.from("ignored"));
    expect(b.bytes().toString("utf8", 0, 6)).toBe("hello ");
    expect(b.bytes().byteLength).toBe(10);
    expect(b.size).toBe(6 + Buffer.byteLength("wörld and more") + 7);
    expect(b.truncated).toBe(true);
    const small = new BodyCapture(10);
    small.add(Buffer.from("tiny"));
    expect(small.truncated).toBe(false);
    expect(small.bytes().toString()).toBe("tiny");
  });
  it("copies response chunks, so an app reusing its buffer does not change the sample", () => {
    const b = new BodyCapture(100);
    const buf = Buffer.from("first");
    b.add(buf, undefined, true);
    buf.write("XXXXX");
    expect(b.bytes().toString()).toBe("first");
  });
});

describe("sampling", () => {
  it("keeps exactly the share, deterministically", () => {
    for (const [rate, n, kept] of [
      [0.1, 1000, 100],
      [0.05, 1000, 50],
      [0.333, 3000, 999],
      [1, 17, 17],
      [0, 500, 0],
    ] as const) {
      const s = new Sampler(rate);
      let k = 0;
      for (let i = 0; i < n; i++) if (s.next()) k++;
      expect(k, `rate ${rate}`).toBe(kept);
    }
    const s = new Sampler(0.1);
    expect(Array.from({ length: 20 }, () => s.next()).map((b, i) => (b ? i : -1)).filter((i) => i >= 0)).toEqual([9, 19]);
  });
  it("always keeps 5xx and refuses rates outside 0..1", () => {
    expect([200, 404, 499, 500, 503, 599].map(alwaysKept)).toEqual([false, false, false, true, true, true]);
    for (const bad of [-0.1, 1.5, Number.NaN, Infinity]) expect(() => new Sampler(bad)).toThrow(/from 0 to 1/);
    expect(() => resolveRequestOptions({ sampleRate: 2 })).toThrow(/requests.sampleRate: must be a number from 0 to 1/);
    expect(() => resolveRequestOptions({ maxBodyBytes: -1 })).toThrow(/maxBodyBytes/);
  });
});

describe("bounded queue", () => {
  it("drops the oldest beyond the count and byte bounds and counts them", () => {
    const q = new BoundedQueue<number>({ maxSamples: 3, maxBytes: 100 });
    for (let i = 0; i < 5; i++) q.push(i, 10);
    expect(q.length).toBe(3);
    expect(q.dropped).toBe(2);
    q.push(5, 85);
    expect(q.bytes).toBeLessThanOrEqual(100);
    expect(q.take(10)).toEqual([4, 5]);
    expect(q.takeDropped()).toBe(4);
    expect(q.takeDropped()).toBe(0);
    expect(q.bytes).toBe(0);
  });
  it("keeps memory bounded when nobody drains", () => {
    const q = new BoundedQueue<string>({ maxSamples: 1000, maxBytes: 50_000 });
    for (let i = 0; i < 100_000; i++) q.push(`s${i}`, 100);
    expect(q.length).toBe(500);
    expect(q.bytes).toBe(50_000);
    expect(q.take(1)).toEqual(["s99500"]);
  });
});

describe("RED aggregates", () => {
  it("counts per method, status class and route; caps routes; buckets latency within 2 %", () => {
    const red = new RedAggregator(2);
    red.record("GET", "/a", 200, 10);
    red.record("GET", "/a", 201, 20);
    red.record("GET", "/a", 503, 5);
    red.record("POST", "/b", 404, 1);
    red.record("GET", "/c", 200, 1);
    red.record("BREW", "/a", 200, 1);
    const { series, overflow } = red.drain();
    const by = Object.fromEntries(series.map((s) => [`${s.method} ${s.statusClass} ${s.route}`, s.count]));
    expect(by).toEqual({ "GET 2xx /a": 2, "GET 5xx /a": 1, "POST 4xx /b": 1, "GET 2xx other": 1, "OTHER 2xx other": 1 });
    expect(overflow).toBe(2);
    expect(red.drain().series).toEqual([]);
    for (const ms of [0.05, 1, 12.3, 999, 60_000]) expect(Math.abs(bucketValue(bucketIndex(ms)) - ms) / ms).toBeLessThan(0.02);
    const h = new LatencyHistogram();
    for (let i = 0; i < 100; i++) h.add(5);
    expect(h.buckets()).toHaveLength(1);
    expect(h.buckets()[0]!.count).toBe(100);
  });
  it("writes framework patterns as the agent's placeholders", () => {
    expect(frameworkRoute("/users/:id")).toBe("/users/{id}");
    expect(frameworkRoute("/orgs/:orgId/items/:item_id(\\d+)")).toBe("/orgs/{orgid}/items/{itemid}");
    expect(frameworkRoute("/files/*path")).toBe("/files/{path}");
    expect(frameworkRoute("/static")).toBe("/static");
  });
});
