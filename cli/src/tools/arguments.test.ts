// The arguments of the requests, traffic, OpenTelemetry and Node line tools:
// each bad input is refused before the colony is asked (the context has no
// clients at all), with the argument and what it accepts; the filters the
// colony checks again are refused with the colony's own words.
import type { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { Client } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { isArgumentError, runTool, toolJsonSchema, findTool, ToolArgumentError, ToolError } from "./index.ts";
import type { ToolContext } from "./types.ts";

/** No client answers: a call that got past validation would fail with a TypeError, not a ToolArgumentError. */
const nothing: ToolContext = { colony: {} as Client<typeof ColonyService> };

const refused: [tool: string, args: unknown, message: string | RegExp][] = [
  ["coral_query_requests", {}, "service: Required: the component name, e.g. api (see coral_get_status)"],
  ["coral_query_requests", { service: "api", since: "soon" }, /^since: Must be an ISO time like/],
  ["coral_query_requests", { service: "api", route: "" }, /^route: Too small/],
  ["coral_query_requests", { service: "api", window: "1h" }, 'unknown argument "window" (accepted: service, since, until, route)'],

  ["coral_query_traffic", { status: "5xx" }, "service: Required: the component name, e.g. api (see coral_get_status)"],
  ["coral_query_traffic", { service: "api", status: "7xx" }, 'status: must be a status code from 100 to 599 ("404") or a class ("5xx"), got "7xx"'],
  ["coral_query_traffic", { service: "api", path: "checkout" }, 'path: must start with "/" and be at most 2048 characters, got "checkout"'],
  ["coral_query_traffic", { service: "api", path: `/${"x".repeat(2048)}` }, /^path: must start with "\/" and be at most 2048 characters/],
  ["coral_query_traffic", { service: "api", method: "GET /" }, 'method: must be an HTTP method such as GET or POST, got "GET /"'],
  ["coral_query_traffic", { service: "api", limit: 1001 }, "limit: Too big: expected number to be <=1000"],
  ["coral_query_traffic", { service: "api", limit: 2.5 }, /^limit: Invalid input: expected int/],
  ["coral_query_traffic", { service: "api", path_prefix: "/x" }, 'unknown argument "path_prefix" (accepted: service, path, method, status, since, limit)'],
  ["coral_get_traffic_sample", {}, 'id: Required: a sample id like "api.0a1b2c3d4e5f6a7b", from coral_query_traffic'],
  ["coral_get_traffic_sample", { id: "no-dot" }, 'id: Must be a sample id "<service>.<hex>", as coral_query_traffic lists it'],
  ["coral_get_traffic_sample", { id: "api.xyz" }, 'id: Must be a sample id "<service>.<hex>", as coral_query_traffic lists it'],

  ["coral_query_traces", { min_duration_ms: 86_400_001 }, "min_duration_ms: must be from 0 to 86400000 ms (a day), got 86400001"],
  ["coral_query_traces", { min_duration_ms: -1 }, /^min_duration_ms: Too small/],
  ["coral_query_traces", { operation: "x".repeat(300) }, "operation: at most 256 characters, got 300"],
  ["coral_query_traces", { service: "s".repeat(257) }, "service: at most 256 characters, got 257"],
  ["coral_query_traces", { limit: 10_001 }, "limit: Too big: expected number to be <=10000"],
  ["coral_query_traces", { errors: true }, 'unknown argument "errors" (accepted: service, operation, min_duration_ms, errors_only, since, until, limit)'],
  ["coral_query_traces", { since: "the dawn of time" }, /^since: Must be an ISO time like/],
  ["coral_query_traces", { since: "1h", until: "2h" }, "since: must be before until"],
  ["coral_query_logs", { until: "0001-01-01T00:00:00Z" }, "until: must be a time from 1970 to 9999"],
  ["coral_get_trace", {}, "trace_id: Required: a trace id: 32 hex digits, from coral_query_traces or coral_query_logs"],
  ["coral_get_trace", { trace_id: "abc" }, "trace_id: Must be a trace id: 32 hex digits, from coral_query_traces or coral_query_logs"],
  ["coral_get_trace", { trace_id: "g".repeat(32) }, /^trace_id: Must be a trace id/],
  ["coral_query_logs", { severity: "loud" }, "severity: Must be one of trace, debug, info, warn, error, fatal"],
  ["coral_query_logs", { trace_id: "abc" }, 'trace_id: must be 32 hex digits, got "abc"'],
  ["coral_query_logs", { grep: "x".repeat(257) }, "grep: at most 256 characters, got 257"],
  ["coral_query_logs", { min_severity: 17 }, 'unknown argument "min_severity" (accepted: service, severity, grep, trace_id, since, until, limit)'],

  ["coral_debug_logpoint", { service: "api", location: "app.mjs:11" }, "expression: Required: a JavaScript expression, e.g. 'user.id'"],
  ["coral_debug_logpoint", { service: "api", location: "app.mjs:11", expression: "   " }, "expression: Required: a JavaScript expression, e.g. 'user.id'"],
  ["coral_debug_logpoint", { service: "api", location: "app.mjs", expression: "x" }, /^location: Must be file:line, e\.g\. src\/server\.ts:42/],
  ["coral_debug_logpoint", { service: "api", location: "app.mjs:0", expression: "x" }, /^location: Must be file:line/],
  ["coral_debug_logpoint", { service: "api", location: "my app.mjs:3", expression: "x" }, /^location: Must be file:line/],
  ["coral_debug_logpoint", { service: "api", location: "app.mjs:11", expression: "x".repeat(2001) }, "expression: Must be at most 2000 characters"],
  ["coral_debug_logpoint", { service: "api", location: "app.mjs:11", expression: "x", duration: "11m" }, "duration: Must be a duration like 5m, 15m or 1h, at most 10m"],
  ["coral_debug_logpoint", { service: "api", location: "app.mjs:11", expression: "x", max_events: 0 }, /^max_events: Too small/],
  ["coral_debug_logpoint", { service: "api", location: "app.mjs:11", expression: "x", capture_args: 1 }, 'unknown argument "capture_args" (accepted: service, location, expression, condition, duration, max_events)'],
  ["coral_debug_snapshot", { service: "api", location: "app.mjs:11", count: 51 }, "count: Too big: expected number to be <=50"],
  ["coral_debug_snapshot", { service: "api", location: "app.mjs:11", condition: " " }, /^condition: Too small/],
  ["coral_debug_snapshot", { service: "api", location: "app.mjs:11", expression: "x" }, 'unknown argument "expression" (accepted: service, location, count, condition, duration)'],
  ["coral_debug_snapshot", { location: "app.mjs:11" }, /^service: /],
];

describe("arguments of the requests, traffic, OpenTelemetry and Node line tools", () => {
  it.each(refused)("%s #%# is refused: %s", async (tool, args, message) => {
    const err = await runTool(nothing, tool, args).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ToolArgumentError);
    expect(isArgumentError(err)).toBe(true);
    const problems = (err as ToolArgumentError).problems;
    expect(problems).toHaveLength(1);
    if (typeof message === "string") expect(problems[0]).toBe(message);
    else expect(problems[0]).toMatch(message);
  });

  it("passes valid arguments on to the client the tool needs, and says when the connection has none", async () => {
    await expect(runTool(nothing, "coral_query_traffic", { service: "api", status: "5XX", method: "post", path: "/checkout" })).rejects.toMatchObject({
      code: "unavailable",
      message: "traffic samples are not available through this connection",
    });
    await expect(runTool(nothing, "coral_get_traffic_sample", { id: "api.0a1b2c3d" })).rejects.toThrow(ToolError);
    await expect(runTool(nothing, "coral_debug_logpoint", { service: "api", location: "src/users.ts:12", expression: "user.id", condition: "id > 100", duration: "10m" })).rejects.toMatchObject({
      code: "unavailable",
      message: "live debugging is not available through this connection",
    });
    await expect(runTool(nothing, "coral_debug_snapshot", { service: "api", location: "app.mjs:12", count: 50 })).rejects.toMatchObject({ code: "unavailable" });
  });

  it("describes each argument in its JSON Schema, required ones listed", () => {
    const schema = (name: string) => toolJsonSchema(findTool(name)!) as { required?: string[]; properties: Record<string, { description?: string; enum?: string[] }> };
    expect(schema("coral_query_requests").required).toEqual(["service"]);
    expect(schema("coral_query_traffic").required).toEqual(["service"]);
    expect(schema("coral_get_traffic_sample").required).toEqual(["id"]);
    expect(schema("coral_query_traces").required ?? []).toEqual([]);
    expect(schema("coral_get_trace").required).toEqual(["trace_id"]);
    expect(schema("coral_query_logs").properties.severity!.enum).toEqual(["trace", "debug", "info", "warn", "error", "fatal"]);
    expect(schema("coral_debug_logpoint").required).toEqual(["service", "location", "expression"]);
    expect(schema("coral_debug_snapshot").required).toEqual(["service", "location"]);
    for (const name of ["coral_query_requests", "coral_query_traffic", "coral_get_traffic_sample", "coral_query_traces", "coral_get_trace", "coral_query_logs", "coral_debug_logpoint", "coral_debug_snapshot"])
      for (const [key, prop] of Object.entries(schema(name).properties)) expect(prop.description, `${name}.${key}`).toBeTruthy();
  });
});
