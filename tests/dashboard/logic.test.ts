// The dashboard's view logic without a browser: formatting, the topology
// graph and the chart data built from API answers.
import { describe, expect, it } from "vitest";
import { buildCharts, buildGraph, chooseLayout, eventDetails, formatAgo, formatBytes, formatDuration, formatMetric, formatPercent, rangePreset, toneOf } from "@coral/dashboard/logic";

const ts = (seconds: number) => ({ seconds: BigInt(seconds), nanos: 0 });

describe("formatting", () => {
  it("writes bytes, percentages, durations and metric values in their units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(64n * 1024n * 1024n)).toBe("64.0 MB");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(300 * 1024 * 1024)).toBe("300 MB");
    expect(formatPercent(12.5)).toBe("13%");
    expect(formatPercent(3.14159)).toBe("3.1%");
    expect(formatPercent(Number.NaN)).toBe("–");
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(42)).toBe("42s");
    expect(formatDuration(303)).toBe("5m 3s");
    expect(formatDuration(3600n)).toBe("1h 0m");
    expect(formatDuration(3 * 86_400 + 4 * 3600 + 5)).toBe("3d 4h");
    expect(formatMetric("memory_bytes", 2048)).toBe("2.0 KB");
    expect(formatMetric("cpu_percent", 55.2)).toBe("55%");
    expect(formatMetric("http_request_duration_seconds", 0.0123)).toBe("12.3 ms");
    expect(formatMetric("requests_total", 1234.56)).toBe("1235");
    expect(formatMetric("queue_depth", 2.5)).toBe("2.50");
  });

  it("says how long ago, colours states, and reads event details", () => {
    const now = new Date("2026-12-05T08:00:00Z");
    expect(formatAgo(new Date("2026-12-05T07:59:48Z"), now)).toBe("12s ago");
    expect(formatAgo(new Date("2026-12-05T07:55:00Z"), now)).toBe("5m 0s ago");
    expect(formatAgo(new Date("2026-12-05T08:00:05Z"), now)).toBe("just now");
    expect(["online", "degraded", "offline", "something"].map(toneOf)).toEqual(["good", "warn", "bad", "idle"]);
    expect(eventDetails('{"pid":42,"reason":"exit 1","codes":[1,2]}')).toBe("pid=42 reason=exit 1 codes=[1,2]");
    expect(eventDetails("not json")).toBe("not json");
    expect(eventDetails("")).toBe("");
    expect(rangePreset("15m")).toMatchObject({ seconds: 900, raw: true });
    expect(rangePreset("bogus")).toMatchObject({ id: "1h", raw: false });
  });
});

describe("topology graph", () => {
  it("makes a node per component and external dependency, and sums edges between the same pair", () => {
    const graph = buildGraph({
      services: [
        { name: "frontend", status: "online", health: "healthy" },
        { name: "api", status: "online", health: "healthy" },
        { name: "api", status: "offline", health: "unknown" }, // a second agent of api: the worse state shows
      ],
      edges: [
        { fromService: "frontend", toService: "api", protocol: "tcp", external: false, connectionCount: 3n },
        { fromService: "frontend", toService: "api", protocol: "http", external: false, connectionCount: 2n },
        { fromService: "api", toService: "10.0.0.5:5432", protocol: "tcp", external: true, connectionCount: 7n },
        { fromService: "worker", toService: "api", protocol: "tcp", external: false, connectionCount: 1 },
      ],
    });
    expect(graph.nodes.map((n) => [n.data.id, n.data.kind, n.data.status])).toEqual([
      ["c:api", "component", "offline"],
      ["c:frontend", "component", "online"],
      ["c:worker", "component", "unknown"],
      ["x:10.0.0.5:5432", "external", ""],
    ]);
    expect(graph.edges.map((e) => [e.data.source, e.data.target, e.data.count, e.data.label, e.data.protocol])).toEqual([
      ["c:api", "x:10.0.0.5:5432", 7, "7", "tcp"],
      ["c:frontend", "c:api", 5, "5", "tcp,http"],
      ["c:worker", "c:api", 1, "1", "tcp"],
    ]);
  });

  it("lays small graphs out in layers and large ones by force, unless the link asks for one", () => {
    expect(chooseLayout(null, 12, 20)).toBe("layered");
    expect(chooseLayout(null, 30, 60)).toBe("layered");
    expect(chooseLayout(null, 50, 200)).toBe("force");
    expect(chooseLayout(null, 10, 61)).toBe("force");
    expect(chooseLayout("layered", 50, 200)).toBe("layered");
    expect(chooseLayout("force", 3, 2)).toBe("force");
    expect(chooseLayout("spiral", 3, 2)).toBe("layered");
  });
});

describe("chart data", () => {
  it("draws rollups as mean, p95 and max on time, oldest first", () => {
    const charts = buildCharts({
      series: [
        { metricName: "cpu_percent", interval: "1m", points: [{ timestamp: ts(120), mean: 2, p95: 3, max: 4 }, { timestamp: ts(60), mean: 1, p95: 2, max: 3 }] },
        { metricName: "memory_bytes", interval: "1m", points: [{ timestamp: ts(60), mean: 10, p95: 10, max: 10 }] },
      ],
      rawPoints: [],
    });
    expect(charts.map((c) => c.metric)).toEqual(["cpu_percent", "memory_bytes"]);
    expect(charts[0]).toEqual({
      metric: "cpu_percent",
      x: [60, 120],
      lines: [
        { label: "mean", values: [1, 2] },
        { label: "p95", values: [2, 3] },
        { label: "max", values: [3, 4] },
      ],
      resolution: "1m",
    });
  });

  it("draws raw points one line per agent on the union of their times, with gaps", () => {
    const charts = buildCharts({
      series: [],
      rawPoints: [
        { timestamp: ts(1), metricName: "cpu_percent", value: 5, agentId: "a" },
        { timestamp: ts(2), metricName: "cpu_percent", value: 6, agentId: "a" },
        { timestamp: ts(2), metricName: "cpu_percent", value: 9, agentId: "b" },
        { timestamp: ts(3), metricName: "cpu_percent", value: 8, agentId: "b" },
      ],
    });
    expect(charts).toEqual([
      {
        metric: "cpu_percent",
        x: [1, 2, 3],
        lines: [
          { label: "a", values: [5, 6, null] },
          { label: "b", values: [null, 9, 8] },
        ],
        resolution: "raw",
      },
    ]);
  });

  it("draws one agent's raw points in time order even when they arrive out of order", () => {
    const charts = buildCharts({
      series: [],
      rawPoints: [3, 1, 2, 2].map((t, i) => ({ timestamp: ts(t), metricName: "memory_bytes", value: 10 * t + i, agentId: "a" })),
    });
    // The later value of a repeated second wins, as with several agents.
    expect(charts).toEqual([{ metric: "memory_bytes", x: [1, 2, 3], lines: [{ label: "memory_bytes", values: [11, 23, 30] }], resolution: "raw" }]);
  });
});
