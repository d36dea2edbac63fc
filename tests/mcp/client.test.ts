// Coral as an MCP client: real external MCP servers (tests/mcp/fixtures/
// deploys-server.ts, the SDK's McpServer over stdio, started as processes)
// offered to `coral ask` beside Coral's own tools; a server that fails to
// start, one that crashes mid-investigation, the stale cache, and an ask run
// (against the Anthropic API STAND-IN: the real API is unreachable here) that
// calls the external tool.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { mcpServerSchema, type McpServerSettings } from "@coral/colony";
import { ExternalMcpServers } from "@coral/cli/mcp";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { AnthropicStandIn, toolResults, type Script } from "../ask/anthropic-stand-in.ts";
import { runAskCli } from "../ask/cli.ts";
import { publishIncident } from "../ask/investigation.ts";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/deploys-server.ts", import.meta.url));
const KEY = "sk-ant-api03-standin-mcpclient-0123456789-WXYZ";

/** A server entry as written in .coral/config.yaml. */
function entry(env: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  return { command: process.execPath, args: ["--import", "tsx", fixture], cwd: repoRoot, env, timeout: "20s", retry: { max_attempts: 2, initial_delay: "100ms" }, ...extra };
}

const settings = (raw: unknown): McpServerSettings => mcpServerSchema.parse(raw);

describe("external MCP servers (real servers over stdio)", () => {
  it("starts the good ones, reports and skips the failing ones, namespaces and runs their tools", async () => {
    const warnings: string[] = [];
    await using servers = await ExternalMcpServers.start(
      {
        deploys: settings(entry({ DEPLOY_NOTE: "Rollback: ${TEST_ROLLBACK_HINT}" })),
        broken: settings(entry({ FIXTURE_FAIL_AT_START: "1" })),
        missing: settings({ command: "/nonexistent/coral-test-mcp-server", retry: { max_attempts: 1 } }),
        unset: settings(entry({ TOKEN: "${CORAL_TEST_UNSET_VARIABLE_1234}" }, { retry: { max_attempts: 1 } })),
        off: settings(entry({}, { enabled: false })),
      },
      { env: { ...process.env, TEST_ROLLBACK_HINT: "coral deploy rollback frontend" }, onWarning: (m) => warnings.push(m) },
    );
    const status = Object.fromEntries(servers.status().map((s) => [s.name, s]));
    expect(status.deploys).toMatchObject({ state: "ready", tools: ["mcp__deploys__lookup_deploy", "mcp__deploys__broken_tool"], attempts: 1 });
    expect(status.broken).toMatchObject({ state: "failed", attempts: 2, tools: [] });
    expect(status.broken!.error).toBe("the server exited during start-up; its last words on stderr: deploys-server: fatal: cannot reach the deploy database at db.internal:5432");
    expect(status.missing!.error).toBe("command not found: /nonexistent/coral-test-mcp-server (check mcp.servers.missing.command and PATH)");
    expect(status.unset!.error).toBe("env TOKEN: ${CORAL_TEST_UNSET_VARIABLE_1234} is not set in coral's environment");
    expect(status.off).toMatchObject({ state: "disabled", tools: [] });
    expect(warnings.sort()).toEqual([
      'MCP server "broken" skipped: the server exited during start-up; its last words on stderr: deploys-server: fatal: cannot reach the deploy database at db.internal:5432 (after 2 attempts)',
      'MCP server "missing" skipped: command not found: /nonexistent/coral-test-mcp-server (check mcp.servers.missing.command and PATH) (after 1 attempt)',
      'MCP server "unset" skipped: env TOKEN: ${CORAL_TEST_UNSET_VARIABLE_1234} is not set in coral\'s environment (after 1 attempt)',
    ]);

    const tools = servers.tools();
    expect(tools.map((t) => t.name)).toEqual(["mcp__deploys__lookup_deploy", "mcp__deploys__broken_tool"]);
    const lookup = tools[0]!;
    expect(lookup.description).toBe('[external MCP server "deploys", tool lookup_deploy] Who deployed which version of a service, and when.');
    expect(lookup.inputSchema).toMatchObject({ type: "object", properties: { service: { type: "string" } }, required: ["service"] });
    // ${NAME} in env came from coral's environment.
    expect((await lookup.run({ service: "frontend" })).text).toBe(
      "frontend 1.9.2 was deployed by alice at 2026-11-23T14:50:00Z (ticket SHOP-42). Rollback: coral deploy rollback frontend",
    );
    await expect(tools[1]!.run({})).rejects.toThrow("deploy database query failed: relation missing");
    await expect(lookup.run({ service: 42 })).rejects.toThrow(/service/);
    // A tool error is an answer, not a server failure: the server still works.
    expect((await lookup.run({ service: "api" })).text).toMatch(/^api 1\.9\.2 was deployed by alice/);
  }, 90_000);

  it("a server that crashes mid-investigation: retried, then its last good answer is served stale while fresh, then an error", async () => {
    const scratch = await mkdtemp(join(tmpdir(), "coral-mcp-crash-"));
    try {
      let now = Date.parse("2026-11-23T15:00:00Z");
      const warnings: string[] = [];
      await using servers = await ExternalMcpServers.start(
        { deploys: settings(entry({ FIXTURE_CRASH_ON_CALL: "2", FIXTURE_CRASH_MARKER: join(scratch, "crashed") }, { cache_ttl: "60s" })) },
        { now: () => now, onWarning: (m) => warnings.push(m) },
      );
      const lookup = servers.tools().find((t) => t.name === "mcp__deploys__lookup_deploy")!;
      const good = (await lookup.run({ service: "frontend" })).text;
      expect(good).toMatch(/^frontend 1\.9\.2 was deployed by alice/);

      // The second call kills the server; restarting it fails (the marker), twice.
      now += 20_000;
      const stale = (await lookup.run({ service: "frontend" })).text;
      expect(stale.startsWith(`${good}\n[coral: STALE — MCP server "deploys" failed after 2 attempts: `)).toBe(true);
      expect(stale).toContain("its last words on stderr: deploys-server: fatal: cannot reach the deploy database");
      expect(stale).toMatch(/this is its last good answer to the same call, 20 s old\]$/);
      expect(warnings[0]).toMatch(/^MCP server "deploys" failed after 2 attempts: /);

      // Nothing cached for other arguments: a clear error.
      await expect(lookup.run({ service: "api" })).rejects.toThrow(/^MCP server "deploys" failed after 2 attempts: the server exited during start-up; its last words on stderr: deploys-server: fatal/);
      // Past cache_ttl the stale answer is no longer served.
      now += 60_000;
      await expect(lookup.run({ service: "frontend" })).rejects.toThrow(/^MCP server "deploys" failed after 2 attempts/);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }, 90_000);

  it("coral ask offers the configured servers' tools beside Coral's, runs them, and reports the failing one; coral mcp servers checks them", async () => {
    await using project = await createTestProject();
    await project.setConfig(["mcp"], {
      servers: {
        deploys: entry({ DEPLOY_NOTE: "Changelog: leak fix in 1.9.3." }),
        pagerduty: entry({ FIXTURE_FAIL_AT_START: "1" }, { retry: { max_attempts: 1 } }),
      },
    });
    const colony = await project.start(); // the colony accepts a config with an mcp section
    const api = colonyApi(colony.url, project.localToken);
    await using _frontend = await publishIncident(colony.url, project.localToken, api);

    const script: Script = ({ body }) => {
      const turn = body.messages.filter((m) => m.role === "assistant").length;
      if (turn === 0)
        return {
          kind: "message",
          stop_reason: "tool_use",
          content: [
            { type: "text", text: "Checking restarts and the last deploy." },
            { type: "tool_use", id: "toolu_mcp_1", name: "coral_query_events", input: { service: "frontend", event_type: "restart", since: "2h" } },
            { type: "tool_use", id: "toolu_mcp_2", name: "mcp__deploys__lookup_deploy", input: { service: "frontend" } },
          ],
        };
      const results = toolResults(body);
      const restarts = /: (\d+)\+? found/.exec(results.find((r) => r.name === "coral_query_events")?.text ?? "")?.[1] ?? "?";
      const deploy = results.find((r) => r.name === "mcp__deploys__lookup_deploy")?.text ?? "?";
      return { kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: `frontend restarted ${restarts} times. Deploy record: ${deploy}` }] };
    };
    await using standIn = await AnthropicStandIn.start(script);
    const env = { CORAL_HOME: project.home, ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: standIn.url, CORAL_API_PORT: String(new URL(colony.url).port) };

    // The project's server commands run only once trusted (tests/security/ask-mcp-trust.test.ts).
    const asked = await runAskCli(["ask", "why did frontend restart?", "--trust-mcp"], { cwd: project.dir, env, timeoutMs: 90_000 });
    expect(asked.code).toBe(0);
    expect(asked.stderr).toContain("Trusted the MCP servers of");
    expect(asked.stderr).toContain(
      'warning: MCP server "pagerduty" skipped: the server exited during start-up; its last words on stderr: deploys-server: fatal: cannot reach the deploy database at db.internal:5432 (after 1 attempt)',
    );
    expect(asked.stdout).toContain('→ mcp__deploys__lookup_deploy {"service":"frontend"}');
    expect(asked.stdout).toContain(
      "frontend restarted 3 times. Deploy record: frontend 1.9.2 was deployed by alice at 2026-11-23T14:50:00Z (ticket SHOP-42). Changelog: leak fix in 1.9.3.",
    );
    expect(asked.stdout).toMatch(/\n {2}2\. mcp__deploys__lookup_deploy \{"service":"frontend"\} → frontend 1\.9\.2 was deployed by alice/);
    const offered = standIn.requests[0]!.body.tools!.map((t) => t.name);
    expect(offered.filter((n) => n.startsWith("coral_"))).toHaveLength(offered.length - 2);
    expect(offered.slice(-2)).toEqual(["mcp__deploys__lookup_deploy", "mcp__deploys__broken_tool"]);

    // --json reports each server's state; --no-mcp starts none.
    const json = await runAskCli(["ask", "why did frontend restart?", "--json"], { cwd: project.dir, env, timeoutMs: 90_000 });
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { mcp_servers: Array<{ name: string; state: string; tools: string[] }>; answer: string };
    expect(parsed.mcp_servers.map((s) => [s.name, s.state, s.tools.length])).toEqual([
      ["deploys", "ready", 2],
      ["pagerduty", "failed", 0],
    ]);
    expect(parsed.answer).toContain("ticket SHOP-42");
    const before = standIn.requests.length;
    const none = await runAskCli(["ask", "why did frontend restart?", "--no-mcp"], { cwd: project.dir, env, timeoutMs: 90_000 });
    expect(none.code).toBe(0);
    expect(none.stderr).not.toContain("pagerduty");
    expect(standIn.requests[before]!.body.tools!.every((t) => t.name.startsWith("coral_"))).toBe(true);
    expect(none.stdout).toContain(`Deploy record: there is no tool named "mcp__deploys__lookup_deploy"`);

    // coral mcp servers: each server's state and tools, exit 1 when one fails.
    const check = await runAskCli(["mcp", "servers"], { cwd: project.dir, env, timeoutMs: 90_000 });
    expect(check.code).toBe(1);
    expect(check.stdout).toContain("  ✓ deploys: ready, 2 tools\n      mcp__deploys__lookup_deploy\n      mcp__deploys__broken_tool\n");
    expect(check.stdout).toContain("  ✗ pagerduty: failed: the server exited during start-up; its last words on stderr: deploys-server: fatal: cannot reach the deploy database");
    const checkJson = await runAskCli(["mcp", "servers", "--json"], { cwd: project.dir, env, timeoutMs: 90_000 });
    expect((JSON.parse(checkJson.stdout) as { servers: Array<{ name: string; state: string }> }).servers.map((s) => [s.name, s.state])).toEqual([
      ["deploys", "ready"],
      ["pagerduty", "failed"],
    ]);

    // A bad entry is refused with the file, the key and what to write.
    await project.setConfig(["mcp", "servers", "deploys", "retry", "max_attempts"], 0);
    const bad = await runAskCli(["ask", "why did frontend restart?"], { cwd: project.dir, env, timeoutMs: 90_000 });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/config\.yaml: mcp\.servers\.deploys\.retry\.max_attempts: must be at least 1 \(got 0\)/);
  }, 240_000);
});
