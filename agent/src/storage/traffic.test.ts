import { describe, expect, it } from "vitest";
import { sampleBytes } from "./traffic.ts";
import { at, tempStores } from "./testing.ts";
import type { TrafficSampleInput } from "./types.ts";

function sample(i: number, over: Partial<TrafficSampleInput> = {}): TrafficSampleInput {
  return {
    id: `shop.${i.toString(16).padStart(12, "0")}`,
    method: "GET",
    path: `/checkout/${i}?x=1`,
    route: "/checkout/{id}",
    status: 200,
    startTime: at(i),
    durationMs: 1.5,
    requestHeaders: [{ name: "authorization", value: "[redacted]" }],
    responseHeaders: [{ name: "content-type", value: "text/plain" }],
    requestBody: Buffer.from(""),
    requestBodyTruncated: false,
    requestBodySize: 0,
    responseBody: Buffer.from([0, 1, 2, 255]),
    responseBodyTruncated: true,
    responseBodySize: 9000,
    reason: "sampled",
    ...over,
  };
}

describe("traffic samples in the agent store", () => {
  it("stores samples once, filters by path prefix, method, status and time, newest first", async () => {
    await using stores = await tempStores();
    const store = await stores.open();
    const list = [
      sample(1),
      sample(2, { method: "POST", path: "/checkout", route: "/checkout", status: 201 }),
      sample(3, { status: 503, reason: "error" }),
      sample(4, { path: "/users/1", route: "/users/{id}", status: 404 }),
      sample(5, { status: 500, reason: "error" }),
    ];
    expect(await store.recordTrafficSamples(list, at(10))).toBe(5);
    expect(await store.recordTrafficSamples([sample(1)], at(11))).toBe(0);
    const ids = async (q: Parameters<typeof store.queryTraffic>[0]) => (await store.queryTraffic(q)).rows.map((r) => Number.parseInt(r.id.split(".")[1]!, 16));
    expect(await ids({ limit: 50 })).toEqual([5, 4, 3, 2, 1]);
    expect(await ids({ limit: 50, pathPrefix: "/checkout" })).toEqual([5, 3, 2, 1]);
    expect(await ids({ limit: 50, method: "POST" })).toEqual([2]);
    expect(await ids({ limit: 50, status: { kind: "class", value: 5 } })).toEqual([5, 3]);
    expect(await ids({ limit: 50, status: { kind: "exact", value: 404 } })).toEqual([4]);
    expect(await ids({ limit: 50, since: at(4) })).toEqual([5, 4]);
    const page = await store.queryTraffic({ limit: 2 });
    expect(page.truncated).toBe(true);
    expect(page.rows.map((r) => r.id)).toEqual([list[4]!.id, list[3]!.id]);

    const full = await store.getTrafficSample(list[0]!.id);
    expect(full).toMatchObject({ method: "GET", path: "/checkout/1?x=1", status: 200, responseBodyTruncated: true, responseBodySize: 9000, reason: "sampled" });
    expect([...full!.responseBody]).toEqual([0, 1, 2, 255]);
    expect(full!.requestHeaders).toEqual([{ name: "authorization", value: "[redacted]" }]);
    expect(full!.startTime.getTime()).toBe(at(1).getTime());
    expect(await store.getTrafficSample("shop.ffff")).toBeNull();
    await expect(store.recordTrafficSamples([sample(9, { status: 42 })], at(12))).rejects.toThrow(/status must be 100-599/);
  });

  it("prunes by age, then the oldest beyond the byte budget", async () => {
    await using stores = await tempStores();
    const store = await stores.open();
    const big = (i: number) => sample(i, { responseBody: Buffer.alloc(1000, 97) });
    await store.recordTrafficSamples(Array.from({ length: 20 }, (_, i) => big(i)), at(30));
    const newest10 = Array.from({ length: 10 }, (_, i) => sampleBytes(big(10 + i))).reduce((a, b) => a + b, 0);
    expect((await store.trafficStats()).samples).toBe(20);
    // Older than 1 h at at(3605): samples 0..4 go.
    const r = await store.pruneTraffic({ maxAgeMs: 3_600_000, maxBytes: newest10 + 5 }, at(3605));
    expect(r.byAge).toBe(5);
    expect(r.byBytes).toBe(5);
    const stats = await store.trafficStats();
    expect(stats.samples).toBe(10);
    expect(stats.bytes).toBe(newest10);
    expect((await store.queryTraffic({ limit: 50 })).rows.map((x) => x.id).at(-1)).toBe(big(10).id);
  });
});
