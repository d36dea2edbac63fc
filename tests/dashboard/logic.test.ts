// The dashboard's view logic without a browser: formatting, the topology
// graph and the chart data built from API answers.
import { describe, expect, it } from "vitest";
import { layoutGraph } from "@coral/dashboard/logic/layout";
import { buildCharts, buildGraph, chooseLayout, eventDetails, formatAgo, formatBytes, formatDuration, formatMetric, formatPercent, intervalSeconds, isRequestSeries, parseMinDuration, rangePreset, redCharts, toneOf } from "@coral/dashboard/logic";

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

describe("requests and traces", () => {
  const point = (seconds: number, count: number, p95: number) => ({ timestamp: ts(seconds), count: BigInt(count), p95 });
  const red = {
    series: [
      { metricName: "http_request_duration_ms:GET:2xx:/users/:id", interval: "1m", points: [point(60, 120, 10), point(120, 60, 30)] },
      { metricName: "http_request_duration_ms:GET:5xx:/boom", interval: "1m", points: [point(60, 6, 100)] },
      { metricName: "http_requests_source_sdk", interval: "1m", points: [point(60, 126, 0)] },
      { metricName: "cpu_percent", interval: "1m", points: [point(60, 60, 5)] },
    ],
  };

  it("sums the routes per interval into requests/s, 5xx/s and a count-weighted p95", () => {
    const charts = redCharts(red);
    expect(charts.map((c) => [c.metric, c.x, c.lines[0]!.values])).toEqual([
      ["requests_per_second", [60, 120], [2.1, 1]],
      ["errors_5xx_per_second", [60, 120], [0.1, 0]],
      ["latency_p95_ms", [60, 120], [(120 * 10 + 6 * 100) / 126, 30].map((v) => Math.round(v * 1000) / 1000)],
    ]);
    expect(redCharts({ series: [red.series[3]!] })).toEqual([]);
    expect(intervalSeconds("10s")).toBe(10);
    expect(intervalSeconds("1h")).toBe(3600);
    expect(intervalSeconds("weird")).toBe(60);
  });

  it("leaves request series out of the metric charts", () => {
    const charts = buildCharts({
      series: red.series.map((s) => ({ ...s, points: s.points.map((p) => ({ timestamp: p.timestamp, mean: 1, p95: p.p95, max: 2 })) })),
      rawPoints: [
        { timestamp: ts(1), metricName: "http_request_duration_ms:GET:2xx:/x", value: 1, agentId: "a" },
        { timestamp: ts(1), metricName: "http_unparsed_reads", value: 1, agentId: "a" },
      ],
    });
    expect(charts.map((c) => c.metric)).toEqual(["cpu_percent"]);
    expect(isRequestSeries("http_request_duration_ms:GET:2xx:/x")).toBe(true);
    expect(isRequestSeries("http_request_duration_ms")).toBe(false);
  });

  it("reads the traces' minimum duration as ms, s or a bare number, and refuses the rest", () => {
    expect(parseMinDuration("")).toBe(0);
    expect(parseMinDuration("200ms")).toBe(200);
    expect(parseMinDuration("1.5s")).toBe(1500);
    expect(parseMinDuration(" 250 ")).toBe(250);
    expect(parseMinDuration("fast")).toBeNaN();
    expect(parseMinDuration("-5ms")).toBeNaN();
  });
});

describe("topology layout", () => {
  const graphOf = (services: string[], pairs: [string, string, number][]) =>
    buildGraph({
      services: services.map((name) => ({ name, status: "online", health: "healthy" })),
      edges: pairs.map(([fromService, toService, n]) => ({ fromService, toService, protocol: "tcp", external: !services.includes(toService), connectionCount: n })),
    });

  it("places callers left of their callees in layers, arrows from border to border, the opposite direction curved apart", () => {
    const { nodes, edges } = graphOf(["frontend", "api", "worker"], [
      ["frontend", "api", 3],
      ["api", "10.0.0.5:5432", 7],
      ["worker", "api", 1],
      ["api", "worker", 2],
    ]);
    const placed = layoutGraph(nodes, edges, "layered");
    const x = (id: string) => placed.nodes.get(id)!.x;
    expect(x("c:frontend")).toBeLessThan(x("c:api"));
    expect(x("c:api")).toBeLessThan(x("x:10.0.0.5:5432"));
    expect(placed.edges.map((e) => e.id).sort()).toEqual(edges.map((e) => e.data.id).sort());
    const path = (id: string) => placed.edges.find((e) => e.id === id)!.path;
    expect(path("c:frontend->c:api")).toMatch(/^M[\d.-]+,[\d.-]+ L[\d.-]+,[\d.-]+$/);
    expect(path("c:api->c:worker")).toContain(" Q");
    expect(path("c:worker->c:api")).toContain(" Q");
    // The straight edge starts on frontend's border, on the side facing api, and ends on api's.
    const f = placed.nodes.get("c:frontend")!;
    const a = placed.nodes.get("c:api")!;
    const [x1, y1, x2, y2] = /^M([\d.-]+),([\d.-]+) L([\d.-]+),([\d.-]+)$/.exec(path("c:frontend->c:api"))!.slice(1).map(Number) as [number, number, number, number];
    const onBorder = (n: typeof f, px: number, py: number) =>
      (Math.abs(Math.abs(px - n.x) - n.width / 2) < 0.2 && Math.abs(py - n.y) <= n.height / 2 + 0.2) || (Math.abs(Math.abs(py - n.y) - n.height / 2) < 0.2 && Math.abs(px - n.x) <= n.width / 2 + 0.2);
    expect(onBorder(f, x1, y1)).toBe(true);
    expect(onBorder(a, x2, y2)).toBe(true);
    expect(x1).toBeGreaterThan(f.x);
    expect(x2).toBeLessThan(a.x);
    expect(placed.width).toBeGreaterThan(0);
    expect(placed.minX).toBeLessThanOrEqual(f.x - f.width / 2);
  });

  it("spreads 50 components and 200 edges by force, the same way every time, with no two boxes on top of each other", () => {
    const names = Array.from({ length: 50 }, (_, n) => `svc-${String(n).padStart(2, "0")}`);
    const pairs = names.flatMap((from, n) => [1, 2, 3, 4].map((k) => [from, names[(n + k) % 50]!, k] as [string, string, number]));
    const { nodes, edges } = graphOf(names, pairs);
    const placed = layoutGraph(nodes, edges, "force");
    expect(placed.nodes.size).toBe(50);
    expect(placed.edges).toHaveLength(200);
    const list = [...placed.nodes.values()];
    for (const n of list) expect(Number.isFinite(n.x) && Number.isFinite(n.y)).toBe(true);
    let overlaps = 0;
    for (let i = 0; i < list.length; i++)
      for (let j = i + 1; j < list.length; j++) {
        const [a, b] = [list[i]!, list[j]!];
        if (Math.abs(a.x - b.x) < (a.width + b.width) / 2 && Math.abs(a.y - b.y) < (a.height + b.height) / 2) overlaps++;
      }
    expect(overlaps).toBe(0);
    expect(layoutGraph(nodes, edges, "force")).toEqual(placed);
  });

  it("draws a component calling itself as a loop over its box", () => {
    const { nodes, edges } = graphOf(["api"], [["api", "api", 2]]);
    const placed = layoutGraph(nodes, edges, "layered");
    expect(placed.edges).toHaveLength(1);
    expect(placed.edges[0]!.path).toContain(" C");
    expect(placed.edges[0]!.labelY).toBeLessThan(placed.nodes.get("c:api")!.y);
  });
});

describe("what the dashboard imports from @coral/common", () => {
  it("uses nothing the browser lacks (no Buffer, no node: modules, no process)", async () => {
    const { readFileSync } = await import("node:fs");
    const { fileURLToPath } = await import("node:url");
    for (const module of ["request-rows", "otel-rows", "http-metric-name"]) {
      const code = readFileSync(fileURLToPath(new URL(`../../common/src/${module}.ts`, import.meta.url)), "utf8")
        .split("\n")
        .filter((line) => !line.trim().startsWith("//") && !line.trim().startsWith("*"))
        .join("\n");
      expect(code, module).not.toMatch(/\bBuffer\b|from "node:|\bprocess\./);
    }
  });
});
