// The Query and Terminal views in a real browser (Debian's Chromium through
// playwright-core) against a real colony and a real agent beside a sample
// component: a read session runs read-only SQL on the colony and on the
// agent's store (a write is refused with the colony's message); an exec
// session gets a terminal (xterm.js, under the colony's CSP) beside the
// component, recorded; a read session is told what it needs.
import { spawn, type ChildProcess } from "node:child_process";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { sampleComponentScript } from "@coral/cli/sample-app";
import type { RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { chromiumPath, haveChromium, signInLink } from "./helpers.ts";

let project: TestProject;
let colony: RunningColony;
let agent: RunningAgent;
let component: ChildProcess;
let browser: Browser;
let page: Page;
let execToken = "";
const problems: string[] = [];
const timeout = 30_000;

if (!haveChromium) console.warn(`SKIPPED the Query and Terminal views browser suite: no Chromium at ${chromiumPath} (apt-get install chromium; browsers are never downloaded)`);

describe.skipIf(!haveChromium)("Query and Terminal views in Chromium", () => {
  beforeAll(async () => {
    project = await createTestProject();
    colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    const port = await freePort();
    component = spawn(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" });
    agent = await testAgent(project, colony.url, "store", port);
    await waitFor("store observed", async () => (await api.getStatus({})).services.find((s) => s.name === "store" && s.pid === component.pid), { timeoutMs: 60_000 });
    await colony.store.ingest([
      create(TelemetryBatchSchema, {
        batchId: "dash-q",
        agentId: "a-q",
        serviceName: "store",
        events: [1, 2, 3].map((i) => ({ eventId: `e${i}`, eventType: "restart", timestamp: timestampFromDate(new Date(Date.now() - i * 60_000)) })),
      }),
    ]);
    const read = (await api.createToken({ name: "viewer", scope: TokenScope.READ, ttlSeconds: 3600n })).token;
    execToken = (await api.createToken({ name: "ops", scope: TokenScope.EXEC, ttlSeconds: 3600n })).token;
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
    page.on("console", (msg) => msg.type() === "error" && !/Failed to load resource/.test(msg.text()) && problems.push(msg.text()));
    page.on("pageerror", (err) => problems.push(err.message));
    await page.goto((await signInLink(project, { colonyUrl: colony.url, token: read })).url);
    await page.getByTestId("session").waitFor({ timeout });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.close().catch(() => undefined);
    component?.kill("SIGKILL");
    await project?.[Symbol.asyncDispose]();
  });

  it("runs the colony's example query and shows the rows", async () => {
    await page.getByRole("link", { name: "Query" }).click();
    await page.getByTestId("query-schema").getByText("metric_summaries").waitFor({ timeout });
    await expect(page.getByTestId("query-schema").getByText("api_tokens").count()).resolves.toBe(0);
    await page.getByTestId("query-run").click();
    await page.getByTestId("query-result").waitFor({ timeout });
    const header = await page.locator('[data-testid="query-result"] th').allTextContents();
    expect(header).toEqual(["service_id", "event_type", "n"]);
    const restart = page.locator('[data-testid="query-result"] tr', { hasText: "restart" });
    expect(await restart.locator("td").allTextContents()).toEqual(["store", "restart", "3"]);
    expect(await page.getByTestId("query-summary").textContent()).toMatch(/rows? from colony in \d+ ms/);
  });

  it("shows the colony's refusal of a write, and the data stays", async () => {
    await page.getByTestId("query-sql").fill("DELETE FROM events");
    await page.getByTestId("query-sql").press("Control+Enter");
    await page.getByTestId("query-error").waitFor({ timeout });
    expect(await page.getByTestId("query-error").textContent()).toContain("read-only");
    expect((await colony.store.read((c) => c.runAndReadAll("SELECT count(*) FROM events WHERE event_type = 'restart'"))).getRows()[0]?.[0]).toBe(3n);
  });

  it("queries the component's raw store on its agent", async () => {
    await page.getByTestId("query-source").selectOption("store");
    await page.getByTestId("query-schema").getByText("process_snapshots").waitFor({ timeout });
    await page.getByTestId("query-sql").fill("SELECT count(*) AS n FROM metrics WHERE metric_name = 'cpu_percent'");
    await page.getByTestId("query-run").click();
    await waitFor("the agent's answer", async () => (await page.getByTestId("query-summary").textContent())?.includes("from store"), { timeoutMs: timeout });
    const n = Number(await page.locator('[data-testid="query-result"] td').first().textContent());
    expect(n).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  it("a read session's terminal says it needs an exec session", async () => {
    await page.goto(`${colony.url}/components/store/terminal`);
    await page.getByTestId("terminal-needs-exec").waitFor({ timeout });
    expect(await page.getByTestId("terminal-needs-exec").textContent()).toContain("coral token create --name ops --scope exec");
  });

  it("an exec session types into a terminal beside the component; the colony records it", async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const ops = await context.newPage();
    const opsProblems: string[] = [];
    ops.on("console", (msg) => msg.type() === "error" && opsProblems.push(msg.text()));
    ops.on("pageerror", (err) => opsProblems.push(err.message));
    await ops.goto((await signInLink(project, { colonyUrl: colony.url, token: execToken })).url);
    await ops.getByTestId("session").waitFor({ timeout });
    await ops.goto(`${colony.url}/components/store/terminal`);
    await waitFor("the terminal to open", async () => (await ops.getByTestId("terminal-state").getAttribute("data-state")) === "open", { timeoutMs: timeout });
    const screen = () => ops.locator(".xterm-rows").innerText();
    await waitFor("the remote prompt", async () => /[#$]/.test(await screen()), { timeoutMs: timeout });
    await ops.locator(".xterm").click();
    await ops.keyboard.type("echo browser-$((20+22))");
    await ops.keyboard.press("Enter");
    await waitFor("the command's output", async () => (await screen()).includes("browser-42"), { timeoutMs: timeout });
    await ops.keyboard.type("exit 4");
    await ops.keyboard.press("Enter");
    await waitFor("the shell to end", async () => (await ops.getByTestId("terminal-state").getAttribute("data-state")) === "ended", { timeoutMs: timeout });
    expect(await ops.getByTestId("terminal-state").textContent()).toContain("exit code 4");
    // xterm.js's own <style> elements pass the CSP with the page's nonce: no violation was reported.
    expect(opsProblems).toEqual([]);
    const record = await colony.store.read((c) => c.runAndReadAll("SELECT actor, outcome, exit_code, recording FROM exec_sessions WHERE kind = 'shell' ORDER BY started_at DESC LIMIT 1"));
    const [actor, outcome, exitCode, recording] = record.getRows()[0]!;
    expect([actor, outcome, exitCode]).toEqual(["dashboard:ops", "exited", 4]);
    const { readFile } = await import("node:fs/promises");
    expect(await readFile(String(recording), "utf8")).toContain("browser-42");
    await context.close();
  });
});
