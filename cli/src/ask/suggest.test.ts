import { describe, expect, it } from "vitest";
import { digestOf, fitToolResult, pagingHint } from "./budget.ts";
import { shellWord, suggestCommand, suggestedCommands } from "./suggest.ts";
import type { AskTool, EvidenceItem } from "./types.ts";

const schema = { type: "object", properties: { service: {}, since: {}, limit: {} } };

describe("tool output budget", () => {
  it("keeps short results, cuts long ones at a line with a paging note within the budget", () => {
    const tool = { name: "query_events", inputSchema: schema };
    expect(fitToolResult("short", 100, tool)).toEqual({ text: "short", truncated: false });
    const long = Array.from({ length: 500 }, (_, i) => `line ${i} ${"x".repeat(40)}`).join("\n");
    const cut = fitToolResult(long, 2000, tool);
    expect(cut.truncated).toBe(true);
    expect(cut.text.length).toBeLessThanOrEqual(2000);
    expect(cut.text.startsWith("line 0 ")).toBe(true);
    expect(cut.text).toMatch(/\n\[coral ask cut this result to fit the per-result budget: showing \d+ of 500 lines \(\d+ of 24889 characters\)\. To see the rest, call query_events again with a shorter since \(e\.g\. 15m\), one service, a smaller limit\.\]$/);
    const oneLine = fitToolResult("y".repeat(5000), 1000, { name: "t", inputSchema: {} });
    expect(oneLine.text.length).toBeLessThanOrEqual(1000);
    expect(oneLine.text).toMatch(/^y+\n\[coral ask cut .* with narrower arguments\.\]$/);
    expect(pagingHint({})).toBe("narrower arguments");
    expect(digestOf("\n  3 events for api  \nmore")).toBe("3 events for api");
    expect(digestOf("z".repeat(300)).length).toBe(160);
  });
});

describe("suggested commands", () => {
  const now = new Date("2026-11-23T15:00:00Z");
  it("maps the default and MCP tool names to coral commands", () => {
    expect(suggestCommand("get_status", {})).toBe("coral status");
    expect(suggestCommand("coral_get_status", {})).toBe("coral status");
    expect(suggestCommand("query_events", { service: "frontend", event_type: "restart", since: "2h", limit: 20 })).toBe(
      "coral events --service frontend --type restart --since 2h --limit 20",
    );
    expect(suggestCommand("query_events", { since: "2026-11-23T14:00:00Z" }, now)).toBe("coral events --since 60m");
    expect(suggestCommand("coral_query_metrics", { service: "api", metric: "http latency", interval: "5m" })).toBe("coral metrics api 'http latency' --interval 5m");
    expect(suggestCommand("query_metrics", { service: "api", raw: true, limit: 50 })).toBe("coral metrics api --raw --limit 50");
    expect(suggestCommand("query_metrics", {})).toBeUndefined();
    expect(suggestCommand("someone_elses_tool", {})).toBeUndefined();
    expect(shellWord("it's")).toBe("'it'\\''s'");
  });

  it.each([
    ["coral_query_requests", { service: "shop-api", since: "2026-11-23T14:30:00Z", route: "/users" }, "coral requests shop-api --since 30m"],
    ["coral_query_requests", {}, undefined],
    ["coral_query_traffic", { service: "shop-api", path: "/checkout", method: "POST", status: "5xx", since: "1h", limit: 20 }, "coral traffic shop-api --path /checkout --method POST --status 5xx --since 1h --limit 20"],
    ["coral_get_traffic_sample", { id: "shop-api.c6a4ce2cd3aa0000000a" }, "coral traffic show shop-api.c6a4ce2cd3aa0000000a"],
    ["coral_query_traces", { service: "api", operation: "charge card", min_duration_ms: 200, errors_only: true, since: "15m" }, "coral traces --service api --operation 'charge card' --min-duration 200ms --errors --since 15m"],
    ["coral_get_trace", { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736" }, "coral traces show 4bf92f3577b34da6a3ce929d0e0e4736"],
    ["coral_get_trace", {}, undefined],
    ["coral_query_logs", { service: "api", severity: "error", grep: "card declined", trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", limit: 20 }, "coral logs --service api --severity error --grep 'card declined' --trace 4bf92f3577b34da6a3ce929d0e0e4736 --limit 20"],
  ])("maps %s %j to the command that shows the same", (tool, args, command) => {
    expect(suggestCommand(tool, args, now)).toBe(command);
  });

  it("lists each command once, preferring the tool's own cliCommand", () => {
    const custom: AskTool = { name: "x", description: "", inputSchema: { type: "object" }, run: async () => ({ text: "" }), cliCommand: () => "coral insights --all" };
    const e = (tool: string, args: unknown): EvidenceItem => ({ tool, args, digest: "", chars: 0, truncated: false, durationMs: 0, round: 1 });
    expect(suggestedCommands([e("get_status", {}), e("x", {}), e("get_status", {}), e("unknown", {})], [custom])).toEqual(["coral status", "coral insights --all"]);
  });
});
