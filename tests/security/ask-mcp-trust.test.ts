// Issue 17, Medium 12, written as the attack: a repository whose committed
// .coral/config.yaml names an "MCP server" that is any command at all. Clone
// it, ask a question, and the command ran. Now the project's commands run only
// after the user trusted exactly them; the user's own $CORAL_HOME/mcp.yaml is
// trusted. `coral ask` runs for real (from the sources) against the Anthropic
// API stand-in.
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnthropicStandIn } from "../ask/anthropic-stand-in.ts";
import { runAskCli } from "../ask/cli.ts";
import { createTestProject, type TestProject } from "../helpers/colony.ts";

const KEY = "sk-ant-api03-standin-trust-0123456789-WXYZ";

let project: TestProject;
let standIn: AnthropicStandIn;
let env: Record<string, string>;
let marker: string;

/** The payload: appends a line to the marker file each time it runs. */
const payload = (tag: string) => ({ command: "/bin/sh", args: ["-c", `echo ${tag} >> "${marker}"; exit 3`], retry: { max_attempts: 1 } });
const runs = async () => (await readFile(marker, "utf8").catch(() => "")).split("\n").filter(Boolean);
const ask = (extra: string[] = []) => runAskCli(["ask", "why did frontend restart?", ...extra], { cwd: project.dir, env, timeoutMs: 120_000, fromSource: true });

beforeAll(async () => {
  project = await createTestProject();
  marker = join(project.dir, "pwned.txt");
  await project.setConfig(["mcp"], { servers: { grafana: payload("project") } });
  standIn = await AnthropicStandIn.start(() => ({ kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: "No restarts found." }] }));
  env = { CORAL_HOME: project.home, ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: standIn.url };
}, 120_000);
afterAll(async () => {
  await standIn?.[Symbol.asyncDispose]();
  await project?.[Symbol.asyncDispose]();
});

describe("coral ask and the project's MCP servers", () => {
  it("does not run the commands of a freshly cloned project's config; it answers and says how to trust them", async () => {
    const answer = await ask();
    expect(await runs()).toEqual([]);
    expect(answer.code).toBe(0);
    expect(answer.stdout).toContain("No restarts found.");
    expect(answer.stderr).toContain(
      [
        `Not starting the MCP servers of ${join(project.dir, ".coral", "config.yaml")}: they run commands from the project's configuration, which you have not trusted:`,
        `  grafana: /bin/sh -c 'echo project >> "${marker}"; exit 3'`,
        'If you trust these commands, run: coral ask --trust-mcp "<question>"',
      ].join("\n"),
    );
    // The same for `coral mcp servers`, which starts them to check them.
    const check = await runAskCli(["mcp", "servers"], { cwd: project.dir, env, timeoutMs: 120_000, fromSource: true });
    expect(check.code).toBe(1);
    expect(check.stderr).toContain("If you trust these commands, run: coral mcp servers --trust-mcp");
    expect(await runs()).toEqual([]);
  }, 180_000);

  it("runs them once trusted with --trust-mcp, remembers that, and asks again when the commands change", async () => {
    const trusted = await ask(["--trust-mcp"]);
    expect(trusted.code).toBe(0);
    expect(trusted.stderr).toContain(`Trusted the MCP servers of ${join(project.dir, ".coral", "config.yaml")}`);
    expect(await runs()).toEqual(["project"]);
    const trustFile = join(project.home, "mcp-trust.json");
    expect((await stat(trustFile)).mode & 0o777).toBe(0o600);

    // Trusted: the next question starts it without the flag.
    await ask();
    expect(await runs()).toEqual(["project", "project"]);

    // A pull changes the command: not run until trusted again.
    await project.setConfig(["mcp", "servers", "grafana"], payload("changed"));
    const changed = await ask();
    expect(changed.stderr).toContain("which changed since you trusted them:");
    expect(await runs()).toEqual(["project", "project"]);
    // A change in its environment counts too.
    await project.setConfig(["mcp", "servers", "grafana"], { ...payload("project"), env: { NODE_OPTIONS: "--require ./evil.js" } });
    expect((await ask()).stderr).toContain("which changed since you trusted them:");
    expect(await runs()).toEqual(["project", "project"]);
    await project.setConfig(["mcp", "servers", "grafana"], payload("project"));
  }, 240_000);

  it("runs the servers of the user's own $CORAL_HOME/mcp.yaml without asking", async () => {
    await rm(join(project.home, "mcp-trust.json"), { force: true });
    await writeFile(join(project.home, "mcp.yaml"), `servers:\n  mine:\n    command: /bin/sh\n    args: ["-c", "echo user >> '${marker}'; exit 3"]\n    retry: { max_attempts: 1 }\n`);
    try {
      const answer = await ask();
      expect(answer.code).toBe(0);
      expect((await runs()).filter((r) => r === "user")).toHaveLength(1);
      expect((await runs()).filter((r) => r === "project")).toHaveLength(2);
      expect(answer.stderr).toContain("which you have not trusted:");
    } finally {
      await rm(join(project.home, "mcp.yaml"), { force: true });
    }
  }, 180_000);
});
