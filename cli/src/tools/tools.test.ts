// The registry against a stand-in colony client: validation, error
// translation, and the text budget on large answers.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  ColonyService,
  GetStatusResponseSchema,
  QueryEventsResponseSchema,
  QueryMetricsResponseSchema,
  ServiceInfoSchema,
  type QueryEventsRequest,
} from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { describe, expect, it } from "vitest";
import { parseTime } from "./common.ts";
import { coralTools, estimateTokens, findTool, isArgumentError, runTool, textBudgetChars, toolJsonSchema, ToolArgumentError, ToolError } from "./index.ts";

type Colony = Client<typeof ColonyService>;
const now = Date.parse("2026-05-01T14:05:00Z");

function fakeColony(methods: Partial<Record<keyof Colony, (req: never) => Promise<unknown>>>): Colony {
  return methods as unknown as Colony;
}

describe("the tool registry", () => {
  it("lists the tools with object schemas and descriptions; only debug attach and detach and profiling act on the app", () => {
    expect(coralTools.map((t) => t.name)).toEqual([
      "coral_get_status",
      "coral_get_topology",
      "coral_query_events",
      "coral_query_metrics",
      "coral_analyze_correlation",
      "coral_get_insights",
      "coral_query_requests",
      "coral_query_traffic",
      "coral_get_traffic_sample",
      "coral_query_traces",
      "coral_get_trace",
      "coral_query_logs",
      "coral_debug_list_functions",
      "coral_debug_attach",
      "coral_debug_events",
      "coral_debug_detach",
      "coral_debug_logpoint",
      "coral_debug_snapshot",
      "coral_profile_cpu",
      "coral_get_sql_schema",
      "coral_query_sql",
    ]);
    for (const tool of coralTools) {
      expect(tool.name).toMatch(/^coral_[a-z_]+$/);
      expect(tool.readOnly).toBe(!["coral_debug_attach", "coral_debug_detach", "coral_debug_logpoint", "coral_debug_snapshot", "coral_profile_cpu"].includes(tool.name));
      expect(tool.description.length).toBeGreaterThan(80);
      const schema = toolJsonSchema(tool);
      expect(schema).toMatchObject({ type: "object", additionalProperties: false });
    }
    expect(findTool("coral_query_metrics")).toBe(coralTools[3]);
    expect(toolJsonSchema(findTool("coral_analyze_correlation")!).required).toEqual(["incident_time"]);
  });

  it("refuses bad arguments with the field and what would do", async () => {
    const ctx = { colony: fakeColony({}) };
    const missing = await runTool(ctx, "coral_query_metrics", {}).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ToolArgumentError);
    expect((missing as Error).message).toBe("invalid arguments for coral_query_metrics: service: Required: the component name, e.g. api (see coral_get_status)");
    expect(isArgumentError(missing)).toBe(true);
    await expect(runTool(ctx, "coral_query_events", { limit: 0, since: "soon" })).rejects.toThrow(
      /since: Must be an ISO time like .*; limit: Too small: expected number to be >=1/,
    );
    await expect(runTool(ctx, "coral_query_events", { sevice: "api" })).rejects.toThrow(/unknown argument "sevice" \(accepted: service, event_type, since, until, limit\)/);
    await expect(runTool(ctx, "coral_analyze_correlation", { incident_time: "now", window: "2d" })).rejects.toThrow(/window: Must be a duration like .* at most 6h/);
    await expect(runTool(ctx, "coral_nope", {})).rejects.toThrow(/no such tool; available: coral_get_status, /);
    await expect(runTool(ctx, "coral_get_status", "api")).rejects.toThrow(/the arguments must be an object/);
  });

  it("explains the colony's refusals", async () => {
    const refusing = fakeColony({
      getStatus: () => Promise.reject(new ConnectError('token "ci" was revoked; ask for a new one', Code.Unauthenticated)),
      getTopology: () => Promise.reject(new ConnectError("connect ECONNREFUSED 127.0.0.1:9000", Code.Unavailable)),
      queryEvents: () => Promise.reject(new ConnectError("since: must be before until", Code.InvalidArgument)),
    });
    const revoked = await runTool({ colony: refusing }, "coral_get_status", {}).catch((e: unknown) => e);
    expect(revoked).toBeInstanceOf(ToolError);
    expect(revoked).toMatchObject({ code: "unauthenticated", message: 'not authenticated by the colony: token "ci" was revoked; ask for a new one' });
    await expect(runTool({ colony: refusing }, "coral_get_topology", {})).rejects.toThrow(/colony not reachable .*coral colony start/);
    await expect(runTool({ colony: refusing }, "coral_query_events", {})).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(runTool({ colony: refusing, now: () => now }, "coral_query_events", { since: "1h", until: "2h" })).rejects.toThrow(
      "since (2026-05-01T13:05:00Z) must be before until (2026-05-01T12:05:00Z)",
    );
  });

  it("keeps large answers under the budget and says how to get the rest", async () => {
    let asked: QueryEventsRequest | undefined;
    const colony = fakeColony({
      queryEvents: async (req: QueryEventsRequest) => {
        asked = req;
        return create(QueryEventsResponseSchema, {
          events: Array.from({ length: req.limit }, (_, i) => ({
            eventId: `e${i}`,
            timestamp: timestampFromDate(new Date(now - i * 1000)),
            service: "api",
            eventType: "health_changed",
            detailsJson: JSON.stringify({ healthy: false, error: "x".repeat(300) }),
          })),
        });
      },
      getStatus: async () =>
        create(GetStatusResponseSchema, {
          appName: "shop",
          services: Array.from({ length: 300 }, (_, i) => create(ServiceInfoSchema, { name: `svc-${i}`, agentId: `svc-${i}`, status: "online", health: "healthy", version: "1.0.0" })),
        }),
      queryMetrics: async () =>
        create(QueryMetricsResponseSchema, {
          series: Array.from({ length: 200 }, (_, i) => ({
            service: "api",
            metricName: `metric_${i}`,
            interval: "1m",
            points: [{ timestamp: timestampFromDate(new Date(now)), p50: 1, p95: 2, p99: 3, mean: 1.5, max: 4, min: 0, count: 10n }],
          })),
        }),
    });
    const ctx = { colony, now: () => now };
    const events = await runTool(ctx, "coral_query_events", { limit: 500 });
    expect(asked?.limit).toBe(501);
    expect(events.text.length).toBeLessThanOrEqual(textBudgetChars);
    expect(estimateTokens(events.text)).toBeLessThan(2000);
    expect(events.text).toMatch(/\d+ of this answer not shown to keep it short\): call again with until=2026-05-01T14:0\d:\d\dZ/);
    expect((events.data as { events: unknown[] }).events).toHaveLength(500);

    const status = await runTool(ctx, "coral_get_status", {});
    expect(status.text.length).toBeLessThanOrEqual(textBudgetChars);
    expect(status.text).toMatch(/… \d+ more components not shown: call again with service=<name>/);

    const metrics = await runTool(ctx, "coral_query_metrics", { service: "api" });
    expect(metrics.text.length).toBeLessThanOrEqual(textBudgetChars);
    expect(metrics.text).toMatch(/… \d+ more metrics not shown: ask for one with metric=<name>/);
  });
});

describe("parseTime", () => {
  it("reads now, durations ago and ISO times", () => {
    expect(parseTime("now", now)?.toISOString()).toBe("2026-05-01T14:05:00.000Z");
    expect(parseTime("15m", now)?.toISOString()).toBe("2026-05-01T13:50:00.000Z");
    expect(parseTime("1h30m ago", now)?.toISOString()).toBe("2026-05-01T12:35:00.000Z");
    expect(parseTime("2026-05-01T10:00:00Z", now)?.toISOString()).toBe("2026-05-01T10:00:00.000Z");
    expect(parseTime("2026-05-01T12:00:00+02:00", now)?.toISOString()).toBe("2026-05-01T10:00:00.000Z");
    expect(parseTime("yesterday", now)).toBeUndefined();
    expect(parseTime("2026-13-45", now)).toBeUndefined();
    expect(parseTime("10", now)).toBeUndefined();
  });
});
