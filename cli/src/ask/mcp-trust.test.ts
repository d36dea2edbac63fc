// Trust in the project's MCP server commands, on a real $CORAL_HOME folder.
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mcpServerSchema } from "@coral/colony";
import { McpTrustError, mcpLaunchHash, planMcpServers, projectTrust, type McpServers } from "./mcp-trust.ts";

let root: string;
let home: string;
let dir: string;
const server = (raw: Record<string, unknown>) => mcpServerSchema.parse(raw);
const servers = (): McpServers => ({ grafana: server({ command: "npx", args: ["-y", "@grafana/mcp"], env: { A: "1", B: "2" }, cwd: "tools" }) });
const plan = (extra: Partial<Parameters<typeof planMcpServers>[0]> = {}) =>
  planMcpServers({ project: { dir, configPath: join(dir, ".coral/config.yaml"), servers: servers() }, home, trustFlag: false, trustHint: "coral ask --trust-mcp", ...extra });

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "coral-trust-"));
  home = join(root, "home");
  dir = join(root, "project");
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("trust in a project's MCP servers", () => {
  it("starts none until trusted, and says what they would run", async () => {
    const p = await plan();
    expect(p.servers).toEqual({});
    expect(p.untrusted).toBe(true);
    expect(p.notices[0]).toContain(`  grafana: npx -y @grafana/mcp (in ${join(dir, "tools")}; env A=1 B=2)`);
  });

  it("records a yes at the prompt, then starts them without asking, with cwd anchored to the project", async () => {
    const asked: string[][] = [];
    const yes = await plan({ prompt: async (_path, lines) => (asked.push(lines), true) });
    expect(asked).toHaveLength(1);
    expect(yes.servers.grafana!.cwd).toBe(join(dir, "tools"));
    expect((await stat(join(home, "mcp-trust.json"))).mode & 0o777).toBe(0o600);
    const again = await plan({ prompt: async () => expect.fail("asked again") });
    expect(Object.keys(again.servers)).toEqual(["grafana"]);
  });

  it("keeps a no, and counts env order as no change but a disabled server's removal as one", async () => {
    expect((await plan({ prompt: async () => false })).untrusted).toBe(true);
    expect(await projectTrust(dir, servers(), home)).toBe("unknown");
    const reordered: McpServers = { grafana: { ...servers().grafana!, env: { B: "2", A: "1" } } };
    expect(mcpLaunchHash(reordered)).toBe(mcpLaunchHash(servers()));
    const withDisabled: McpServers = { ...servers(), off: server({ command: "rm", args: ["-rf", "/"], enabled: false }) };
    expect(mcpLaunchHash(withDisabled)).toBe(mcpLaunchHash(servers()));
    const enabled: McpServers = { ...servers(), off: server({ command: "rm", args: ["-rf", "/"] }) };
    expect(mcpLaunchHash(enabled)).not.toBe(mcpLaunchHash(servers()));
  });

  it("refuses a trust file other users can write", async () => {
    await plan({ trustFlag: true });
    await chmod(join(home, "mcp-trust.json"), 0o666);
    await expect(plan()).rejects.toThrow(McpTrustError);
    await expect(plan()).rejects.toThrow(/other users can write it; fix it with: chmod 600/);
  });

  it("reads the user's own servers from $CORAL_HOME/mcp.yaml, trusted, and refuses a bad one clearly", async () => {
    await plan({ trustFlag: true });
    expect(JSON.parse(await readFile(join(home, "mcp-trust.json"), "utf8")).version).toBe(1);
    await writeFile(join(home, "mcp.yaml"), "servers:\n  grafana:\n    command: mine\n  sentry:\n    command: npx\n");
    const p = await plan();
    expect(p.servers.grafana!.command).toBe("mine");
    expect(Object.keys(p.servers).sort()).toEqual(["grafana", "sentry"]);
    expect(p.notices).toEqual([expect.stringContaining('MCP server "grafana" of')]);
    await writeFile(join(home, "mcp.yaml"), "servers:\n  x:\n    args: [1]\n");
    await expect(plan()).rejects.toThrow(/mcp\.yaml: servers\.x\.command: is required/);
  });
});
