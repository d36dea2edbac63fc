// `coral ask` end to end: the tool loop runs the real tools against a real
// colony with data, talking to a STAND-IN for the Anthropic Messages API (a
// local server speaking its streaming wire format, reached through the SDK's
// baseURL: the real API is unreachable here).
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "vitest";
import { appendUsage, estimateCost, readUsage, registryAskTools, runAsk, type ToolCallNotice } from "@coral/cli/ask";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { AnthropicStandIn, apiKeyOf } from "./anthropic-stand-in.ts";
import { runAskCli } from "./cli.ts";
import { PEAK_MEMORY, investigation, publishIncident } from "./investigation.ts";

const KEY = "sk-ant-api03-standin-0123456789abcdefghij-KEYZ";
const noAnthropicEnv = { ANTHROPIC_API_KEY: undefined, ANTHROPIC_BASE_URL: undefined, ANTHROPIC_AUTH_TOKEN: undefined, ANTHROPIC_LOG: undefined };

describe("coral ask against a real colony (Anthropic API stand-in)", () => {
  it("runs the requested tools, feeds their results back and answers with their numbers, evidence and commands", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    await using _frontend = await publishIncident(colony.url, project.localToken, api);
    await using standIn = await AnthropicStandIn.start(investigation());

    const usageFile = join(project.home, "ask-usage.jsonl");
    const client = new Anthropic({ apiKey: KEY, baseURL: standIn.url, maxRetries: 0 });
    const streamed: string[] = [];
    const calls: ToolCallNotice[] = [];
    const result = await runAsk({
      question: "why did frontend restart?",
      tools: registryAskTools({ colony: api }),
      client,
      model: "claude-sonnet-5-5",
      onText: (t) => streamed.push(t),
      onToolCall: (c) => calls.push(c),
      onUsage: (u) => appendUsage(usageFile, u),
    });

    // The answer holds numbers that exist only in the colony's data.
    expect(result.answer).toContain("frontend restarted 3 times in the last 2 hours, each time with exit code 137");
    expect(result.answer).toContain("restarts=3 on version 1.9.2");
    expect(result.answer).toContain(`Memory peaked at ${PEAK_MEMORY} bytes`);
    expect(streamed.length).toBeGreaterThan(10); // it arrived in pieces
    expect(streamed.join("")).toBe(result.answer);
    expect(result.stopReason).toBe("end_turn");
    expect(result.toolRounds).toBe(2);
    expect(result.incomplete).toBeUndefined();

    expect(calls).toEqual([
      { name: "coral_query_events", args: { service: "frontend", event_type: "restart", since: "2h" }, round: 1 },
      { name: "coral_get_status", args: {}, round: 1 },
      { name: "coral_query_metrics", args: { service: "frontend", metric: "memory_bytes", since: "30m" }, round: 2 },
    ]);
    expect(result.evidence.map((e) => [e.tool, e.error])).toEqual([
      ["coral_query_events", undefined],
      ["coral_get_status", undefined],
      ["coral_query_metrics", undefined],
    ]);
    expect(result.evidence[0]!.digest).toMatch(/^Events \S+ → \S+ \(service=frontend, event_type=restart\): 3 found, newest first\.$/);
    expect(result.evidence[1]!.digest).toBe("1 component: 1 connected, 0 offline or gone.");
    expect(result.evidence[2]!.digest).toMatch(/^frontend · memory_bytes: 1 metric series at 1m resolution, /);
    expect(result.suggestedCommands).toEqual([
      "coral events --service frontend --type restart --since 2h",
      "coral status",
      "coral metrics frontend memory_bytes --since 30m",
    ]);
    expect(result.output.startsWith(result.answer)).toBe(true);
    expect(result.output).toMatch(/\nEvidence\n {2}1\. coral_query_events \{"service":"frontend","event_type":"restart","since":"2h"\} → Events \S+ → \S+ \(service=frontend, event_type=restart\): 3 found/);
    expect(result.output).toMatch(/\nSuggested commands\n {2}coral events --service frontend --type restart --since 2h\n {2}coral status\n {2}coral metrics frontend memory_bytes --since 30m\n$/);

    // What the stand-in received: the key, the thinking block sent back with
    // its signature, tool results in the next message (else it answers 400).
    expect(standIn.requests).toHaveLength(3);
    expect(standIn.requests.every((r) => apiKeyOf(r.headers) === KEY)).toBe(true);
    expect(standIn.requests[0]!.body.stream).toBe(true);
    expect(standIn.requests[0]!.body.tools!.map((t) => t.name)).toEqual([
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
    const second = standIn.requests[1]!.body.messages;
    expect(second[1]!.content[0]).toEqual({ type: "thinking", thinking: "Restarts: look at frontend's restart events and its status.", signature: "sig-standin-1" });
    const results = (second[2]!.content as Array<{ type: string; tool_use_id?: string; content?: unknown }>).map((b) => [b.type, b.tool_use_id]);
    expect(results).toEqual([
      ["tool_result", "toolu_standin_1"],
      ["tool_result", "toolu_standin_2"],
    ]);

    // Every request's usage is in the log, as the API reported it.
    const { records } = await readUsage(usageFile);
    expect(records.map((r) => [r.model, r.input_tokens, r.output_tokens])).toEqual(
      standIn.reported.map((u) => ["claude-sonnet-5-5", u.input_tokens, u.output_tokens]),
    );
    expect(records.map((r) => r.request_id)).toEqual(["req_standin_0", "req_standin_1", "req_standin_2"]);
    expect(result.usage).toMatchObject({ requests: 3, input_tokens: standIn.reported.reduce((n, u) => n + u.input_tokens, 0) });
  });

  it("as a command: config keeps the key private, ask streams tools and answer, cost adds the usage up", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    await using _frontend = await publishIncident(colony.url, project.localToken, api);
    await using standIn = await AnthropicStandIn.start(investigation());
    const env = { ...noAnthropicEnv, CORAL_HOME: project.home, CORAL_API_PORT: String(new URL(colony.url).port) };
    const outputs: string[] = [];
    const run = async (args: string[], input?: string) => {
      const r = await runAskCli(args, { cwd: project.dir, env, input });
      outputs.push(r.stdout, r.stderr);
      return r;
    };

    // A world-readable key file left from before is replaced with mode 0600.
    await writeFile(join(project.home, "ask.key"), "old-key-value-000000000", { mode: 0o644 });
    const config = await run(["ask", "config", "--api-key-stdin", "--base-url", standIn.url, "--daily-warn", "0.0001"], `${KEY}\n`);
    expect(config.stderr).toBe("");
    expect(config.code).toBe(0);
    expect(config.stdout).toContain(`✓ API key saved to ${join(project.home, "ask.key")} (mode 0600): sk-...KEYZ`);
    expect(config.stdout).toMatch(/API key:\s+sk-\.\.\.KEYZ/);
    expect(config.stdout).toContain(`Base URL:       ${standIn.url}`);
    expect((await stat(join(project.home, "ask.key"))).mode & 0o777).toBe(0o600);
    expect((await readFile(join(project.home, "ask.key"), "utf8")).trim()).toBe(KEY);
    expect(await readFile(join(project.home, "ask.yaml"), "utf8")).not.toContain(KEY);

    const asked = await run(["ask", "why did frontend restart?"]);
    expect(asked.code).toBe(0);
    expect(asked.stdout).toContain('Let me look at frontend\'s restarts.\n→ coral_query_events {"service":"frontend","event_type":"restart","since":"2h"}\n→ coral_get_status {}\n\nNow its memory.\n');
    expect(asked.stdout).toContain('→ coral_query_metrics {"service":"frontend","metric":"memory_bytes","since":"30m"}');
    expect(asked.stdout).toContain("frontend restarted 3 times in the last 2 hours, each time with exit code 137");
    expect(asked.stdout).toContain(`Memory peaked at ${PEAK_MEMORY} bytes`);
    expect(asked.stdout).toMatch(/\nEvidence\n {2}1\. coral_query_events .* → Events .*: 3 found, newest first\./);
    expect(asked.stdout).toMatch(/\nSuggested commands\n {2}coral events --service frontend --type restart --since 2h\n {2}coral status\n {2}coral metrics frontend memory_bytes --since 30m\n$/);
    expect(asked.stderr).toMatch(/warning: today's estimated coral ask cost is \$0\.\d+, past your daily warning of \$0\.0001/);

    const json = await run(["ask", "why did frontend restart?", "--json", "--model", "claude-haiku-5-5"]);
    expect(json.code).toBe(0);
    const answer = JSON.parse(json.stdout) as { model: string; answer: string; evidence: unknown[]; suggested_commands: string[]; usage: { requests: number } };
    expect(answer.model).toBe("claude-haiku-5-5");
    expect(answer.answer).toContain("exit code 137");
    expect(answer.evidence).toHaveLength(3);
    expect(answer.suggested_commands).toContain("coral status");
    expect(answer.usage.requests).toBe(3);
    expect(standIn.requests.slice(3).every((r) => r.body.model === "claude-haiku-5-5")).toBe(true);

    // Six requests were made; the log and `coral ask cost` agree with the stand-in.
    const { records } = await readUsage(join(project.home, "ask-usage.jsonl"));
    expect(records).toHaveLength(6);
    const cost = await run(["ask", "cost", "--json"]);
    expect(cost.code).toBe(0);
    const summary = JSON.parse(cost.stdout) as {
      today: { requests: number; input_tokens: number; output_tokens: number; estimated_cost_usd: number };
      month: { requests: number };
      by_model: Array<{ model: string; requests: number }>;
      daily_warn_exceeded: boolean;
      estimates: boolean;
    };
    expect(summary.today.requests).toBe(6);
    expect(summary.month.requests).toBe(6);
    expect(summary.today.input_tokens).toBe(standIn.reported.reduce((n, u) => n + u.input_tokens, 0));
    expect(summary.today.output_tokens).toBe(standIn.reported.reduce((n, u) => n + u.output_tokens, 0));
    const expected = standIn.reported.reduce(
      (n, u, i) => n + estimateCost({ model: i < 3 ? "claude-sonnet-5-5" : "claude-haiku-5-5", ...u }),
      0,
    );
    expect(summary.today.estimated_cost_usd).toBeCloseTo(expected, 10);
    expect(summary.by_model.map((m) => [m.model, m.requests]).sort()).toEqual([["claude-haiku-5-5", 3], ["claude-sonnet-5-5", 3]]);
    expect(summary.daily_warn_exceeded).toBe(true);
    expect(summary.estimates).toBe(true);

    const text = await run(["ask", "cost"]);
    expect(text.stdout).toMatch(/Today \(\d{4}-\d{2}-\d{2}\):\n {2}Requests: 6\n/);
    expect(text.stdout).toContain("Warning threshold: $0.0001/day (EXCEEDED today)");
    expect(text.stdout).toMatch(/estimates/);

    // The key went to the API, and never to any output.
    expect(standIn.requests.every((r) => apiKeyOf(r.headers) === KEY)).toBe(true);
    for (const out of outputs) expect(out).not.toContain(KEY);
    expect(outputs.join("")).not.toContain(KEY.slice(8, -4));
  }, 150_000); // several CLI processes; slow on a busy machine
});
