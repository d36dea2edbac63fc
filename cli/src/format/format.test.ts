import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  GetHistoryResponseSchema,
  GetStatusResponseSchema,
  GetTopologyResponseSchema,
  ListTokensResponseSchema,
  QueryEventsResponseSchema,
  QueryMetricsResponseSchema,
  ServiceInfoSchema,
  TokenScope,
  type ServiceInfo,
} from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { describe, expect, it } from "vitest";
import {
  componentState,
  formatDetails,
  formatDuration,
  formatEvents,
  formatHistory,
  formatMetrics,
  formatNumber,
  formatStatus,
  formatTokens,
  formatTopology,
  topologyToDot,
} from "./index.ts";
import { compareNames } from "./text.ts";

const at = timestampFromDate(new Date("2026-01-05T14:05:03Z"));
const off = { color: false, utc: true } as const;

const svc = (name: string, fields: MessageInitShape<typeof ServiceInfoSchema> = {}) =>
  create(ServiceInfoSchema, { name, status: "online", health: "healthy", address: "127.0.0.1", ...fields });

const services = [
  svc("frontend", { version: "1.9.2", uptimeSeconds: 12_240n, port: 3000, restartCount: 3, pid: 4242, processCount: 5, cpuPercent: 1.5, memoryBytes: 64n * 1024n * 1024n }),
  svc("api", { version: "2.1.0", uptimeSeconds: 18_900n, port: 8080, health: "degraded", pid: 977, processCount: 9, cpuPercent: 153.4, memoryBytes: 1_342_177_280n }),
  svc("database", { version: "14.2", uptimeSeconds: 201_600n, port: 5432, pid: 31, processCount: 1, cpuPercent: 0, memoryBytes: 812n * 1024n }),
  svc("worker", { status: "offline", port: 0, restartCount: 1 }),
];

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [45, "45s"],
    [60, "1m"],
    [90, "1m 30s"],
    [3600, "1h"],
    [12_240, "3h 24m"],
    [18_900n, "5h 15m"],
    [86_400, "1d"],
    [201_600, "2d 8h"],
    [90 * 86_400 + 59, "90d"],
    [-1, "-"],
  ])("%s s → %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe("formatNumber", () => {
  it.each([
    [0, "0"],
    [0.01234, "0.0123"],
    [0.5, "0.5"],
    [3.14159, "3.14"],
    [2, "2"],
    [42.57, "42.6"],
    [512.4, "512"],
    [12_345.6, "12346"],
    [1_234_567, "1.23M"],
    [2_500_000_000, "2.5G"],
    [-7.25, "-7.25"],
    [Number.NaN, "-"],
    [1200n, "1200"],
  ])("%s → %s", (value, text) => {
    expect(formatNumber(value)).toBe(text);
  });
});

describe("formatStatus", () => {
  const res = create(GetStatusResponseSchema, { colonyId: "my-shop-dev-a1b2c3", appName: "my-shop", environment: "dev", services });

  it("shows the application, colony and a component table", () => {
    const lines = formatStatus(res, { color: false, location: "running locally" }).split("\n");
    expect(lines[0]).toBe("APPLICATION: my-shop (dev)");
    expect(lines[1]).toMatch(/^━{40,}$/);
    expect(lines.slice(2)).toEqual([
      "Colony: my-shop-dev-a1b2c3 (running locally)",
      "Connected: 3 components (1 offline or expired)",
      "",
      "COMPONENT   STATUS       VERSION   UPTIME   PORT   PID    PROCS   CPU    MEMORY     RESTARTS",
      "api         ● degraded   2.1.0     5h 15m   8080   977    9       153%   1.25 GiB   0",
      "database    ● up         14.2      2d 8h    5432   31     1       0.0%   812 KiB    0",
      "frontend    ● up         1.9.2     3h 24m   3000   4242   5       1.5%   64.0 MiB   3",
      "worker      ● offline    -         -        -      -      -       -      -          1",
    ]);
  });

  it("colors the health dot only when asked", () => {
    expect(formatStatus(res, { color: false })).not.toContain("\u001b[");
    const colored = formatStatus(res, { color: true });
    expect(colored).toContain("\u001b[32m●\u001b[39m up");
    expect(colored).toContain("\u001b[33m●\u001b[39m degraded");
    expect(colored).toContain("\u001b[31m●\u001b[39m offline");
    // Colors do not break the alignment.
    // eslint-disable-next-line no-control-regex
    const strip = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");
    expect(strip(colored)).toBe(formatStatus(res, { color: false }));
  });

  it.each<[Partial<ServiceInfo>, string, string]>([
    [{ status: "online", health: "healthy" }, "up", "green"],
    [{ status: "online", health: "unknown" }, "up", "green"],
    [{ status: "online", health: "unhealthy" }, "unhealthy", "red"],
    [{ status: "online", health: "waiting", port: 8080 }, "waiting (no process on port 8080)", "yellow"],
    [{ status: "degraded", health: "healthy" }, "degraded", "yellow"],
    [{ status: "registering" }, "starting", "yellow"],
    [{ status: "offline" }, "offline", "red"],
    [{ status: "expired" }, "expired", "grey"],
    [{ status: "" }, "unknown", "grey"],
  ])("%j → %s (%s)", (fields, text, tone) => {
    expect(componentState({ status: "", health: "", ...fields })).toEqual({ text, tone });
  });

  it("says how to connect a component when there is none", () => {
    const text = formatStatus(create(GetStatusResponseSchema, { colonyId: "x-dev-000000", appName: "x", environment: "dev" }), { color: false });
    expect(text.split("\n")[1]).toBe("━".repeat(40));
    expect(text.split("\n").slice(2)).toEqual([
      "Colony: x-dev-000000",
      "Connected: 0 components",
      "",
      "No components connected yet. Connect one with: coral connect <name> --port <port>",
    ]);
  });

  it("says 1 component", () => {
    const text = formatStatus(create(GetStatusResponseSchema, { colonyId: "x", appName: "x", services: [services[0]!] }), { color: false });
    expect(text).toContain("\nConnected: 1 component\n");
  });
});

describe("formatTopology", () => {
  const res = create(GetTopologyResponseSchema, {
    services,
    edges: [
      { fromService: "frontend", toService: "api", connectionCount: 12n, protocol: "tcp" },
      { fromService: "frontend", toService: "cdn.example.com:443", external: true, connectionCount: 1n },
      { fromService: "api", toService: "database", connectionCount: 4n },
    ],
  });

  it("lists each component's dependencies, then the totals", () => {
    expect(formatTopology(res, { color: false }).split("\n")).toEqual([
      "SERVICE TOPOLOGY",
      "━".repeat(40),
      "",
      "api (127.0.0.1:8080)",
      "  → database (127.0.0.1:5432)  [4 connections]",
      "",
      "frontend (127.0.0.1:3000)",
      "  → api (127.0.0.1:8080)       [12 connections]",
      "  → cdn.example.com:443        [external, 1 connection]",
      "",
      "No outgoing connections: database, worker",
      "",
      "Detected Dependencies: 3",
      "External Services: 1 (cdn.example.com:443)",
    ]);
  });

  it("explains empty topologies", () => {
    expect(formatTopology(create(GetTopologyResponseSchema, {}), { color: false })).toContain(
      "No components connected yet. Connect one with: coral connect <name> --port <port>",
    );
    const quiet = formatTopology(create(GetTopologyResponseSchema, { services }), { color: false });
    expect(quiet).toContain("No connections observed yet.");
    expect(quiet).toContain("Detected Dependencies: 0\nExternal Services: 0");
  });

  it("exports Graphviz dot", () => {
    const dot = topologyToDot(res);
    expect(dot.startsWith("digraph coral {\n")).toBe(true);
    expect(dot.endsWith("}\n")).toBe(true);
    expect(dot).toContain('  "frontend" [label="frontend\\n127.0.0.1:3000"];\n');
    expect(dot).toContain('  "cdn.example.com:443" [shape=ellipse, style=dashed];\n');
    expect(dot).toContain('  "frontend" -> "api" [label="12"];\n');
    expect(dot).toContain('  "api" -> "database" [label="4"];\n');
  });

  it("escapes names in dot", () => {
    const dot = topologyToDot(create(GetTopologyResponseSchema, { services: [svc('we"ird\\', { port: 1 })] }));
    expect(dot).toContain('"we\\"ird\\\\" [label="we\\"ird\\\\\\n127.0.0.1:1"]');
  });
});

describe("formatEvents", () => {
  it("shows TIME SERVICE TYPE DETAILS", () => {
    const res = create(QueryEventsResponseSchema, {
      events: [
        { timestamp: at, service: "frontend", eventType: "crash", detailsJson: JSON.stringify({ exit_code: 137, signal: "SIGKILL", reason: "OOM killed" }) },
        { timestamp: at, service: "api", eventType: "deploy", detailsJson: '{"version":"2.1.0"}' },
      ],
    });
    expect(formatEvents(res, off).split("\n")).toEqual([
      "TIME (UTC)            SERVICE    TYPE     DETAILS",
      '2026-01-05 14:05:03   frontend   crash    exit_code=137 signal=SIGKILL reason="OOM killed"',
      "2026-01-05 14:05:03   api        deploy   version=2.1.0",
    ]);
  });

  it("says what to try when there are none", () => {
    expect(formatEvents(create(QueryEventsResponseSchema, {}), off)).toBe(
      "No events in this time range. Try a longer --since, or check the component name with: coral status",
    );
  });

  it.each([
    ["", ""],
    ["not json", "not json"],
    ["[1,2]", "[1,2]"],
    ['{"a":{"b":1},"c":null,"d":""}', 'a={"b":1} c=null d=""'],
    [JSON.stringify({ long: "x".repeat(200) }), `long=${"x".repeat(74)}…`],
  ])("details %j → %j", (json, text) => {
    expect(formatDetails(json)).toBe(text);
  });
});

describe("formatMetrics", () => {
  it("prints each series with rounded numbers", () => {
    const res = create(QueryMetricsResponseSchema, {
      series: [
        {
          service: "api",
          metricName: "http_latency_ms",
          interval: "1m",
          points: [
            { timestamp: at, p50: 12.345, p95: 45.678, p99: 120.4, mean: 15.5, max: 1234.56, count: 1200n },
            { timestamp: at, p50: 0.01234, p95: 3.14159, p99: 2_500_000, mean: 0, max: 12_345.6, count: 7n },
          ],
        },
        { service: "api", metricName: "cpu_percent", interval: "5m" },
      ],
    });
    expect(formatMetrics(res, off).split("\n")).toEqual([
      "api · http_latency_ms (1m intervals)",
      "TIME (UTC)            P50      P95    P99    MEAN   MAX     COUNT",
      "2026-01-05 14:05:03   12.3     45.7   120    15.5   1235    1200",
      "2026-01-05 14:05:03   0.0123   3.14   2.5M   0      12346   7",
      "",
      "api · cpu_percent (5m intervals)",
      "  no points in this time range",
    ]);
  });

  it("explains an empty answer", () => {
    expect(formatMetrics(create(QueryMetricsResponseSchema, {}), off)).toMatch(/^No metrics for this component in this time range\./);
  });
});

describe("formatHistory", () => {
  it("shows the state at the moment and the transitions", () => {
    const res = create(GetHistoryResponseSchema, {
      service: "api",
      agentId: "api-1",
      stateAt: "online",
      at,
      transitions: [
        { at, fromState: "offline", toState: "online", event: "HEARTBEAT", reason: "heartbeat after 2m" },
        { at, fromState: "", toState: "registering", event: "REGISTER", reason: "" },
      ],
    });
    expect(formatHistory(res, off).split("\n")).toEqual([
      "api (agent api-1)",
      "State at 2026-01-05 14:05:03 UTC: online",
      "",
      "TIME (UTC)            FROM      TO            EVENT       REASON",
      "2026-01-05 14:05:03   offline   online        HEARTBEAT   heartbeat after 2m",
      "2026-01-05 14:05:03   -         registering   REGISTER",
    ]);
  });

  it("says when the colony knew no agent", () => {
    const text = formatHistory(create(GetHistoryResponseSchema, { service: "api", at }), off);
    expect(text.split("\n")).toEqual([
      "api",
      "The colony knew no agent for api at 2026-01-05 14:05:03.",
      "",
      "No recorded transitions for api up to 2026-01-05 14:05:03.",
    ]);
  });
});

describe("formatTokens", () => {
  it("lists tokens", () => {
    const res = create(ListTokensResponseSchema, {
      tokens: [
        { name: "laptop", scope: TokenScope.READ, createdAt: at, expiresAt: at },
        { name: "ci", scope: TokenScope.ADMIN, createdAt: at, lastUsedAt: at, revoked: true, neverExpires: true },
        { name: "old", scope: TokenScope.READ, createdAt: at, expiresAt: at, expired: true },
      ],
    });
    expect(formatTokens(res, off).split("\n")).toEqual([
      "NAME     SCOPE   CREATED (UTC)         LAST USED             EXPIRES               STATUS",
      "laptop   read    2026-01-05 14:05:03   never                 2026-01-05 14:05:03   active",
      "ci       admin   2026-01-05 14:05:03   2026-01-05 14:05:03   never                 revoked",
      "old      read    2026-01-05 14:05:03   never                 2026-01-05 14:05:03   expired",
    ]);
  });

  it("says how to create one", () => {
    expect(formatTokens(create(ListTokensResponseSchema, {}), off)).toBe("No tokens yet. Create one with: coral token create --name <name> --scope read");
  });

  it("uses local time unless utc", () => {
    const local = formatTokens(create(ListTokensResponseSchema, { tokens: [{ name: "a", scope: TokenScope.READ, createdAt: at }] }), { color: false });
    const d = new Date("2026-01-05T14:05:03Z");
    expect(local).toContain(`${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}:03`);
    expect(local).toContain("CREATED ");
  });
});

describe("compareNames", () => {
  it("orders component names as localeCompare does (en), and anything else with localeCompare", () => {
    const chars = "abcdefghijklmnopqrstuvwxyz0123456789-";
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const name = () => Array.from({ length: 1 + Math.floor(random() * 8) }, () => chars[Math.floor(random() * chars.length)]).join("");
    const en = (a: string, b: string) => Math.sign(a.localeCompare(b, "en"));
    for (let i = 0; i < 20_000; i++) {
      const [a, b] = [name(), name()];
      expect([a, b, Math.sign(compareNames(a, b))]).toEqual([a, b, en(a, b)]);
    }
    for (const [a, b] of [["10.0.0.5:5432", "10.0.0.50:80"], ["Api", "api"], ["db_1", "db-1"]] as const) expect(compareNames(a, b)).toBe(a.localeCompare(b));
  });
});
