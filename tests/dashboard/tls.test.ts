// The dashboard of a colony that serves its API over TLS: the same port and
// certificate, a sign-in link on https, a Secure session cookie, and an
// origin check that takes the scheme into account; then Chromium signs in
// through the link (the test's self-signed certificate trusted for that
// browser context only).
import { execFileSync } from "node:child_process";
import { request } from "node:https";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningColony } from "@coral/colony";
import { createTestProject, type TestProject } from "../helpers/colony.ts";
import { runCoral } from "../helpers/cli.ts";
import { chromiumPath, haveChromium } from "./helpers.ts";

if (!haveChromium) console.log(`tls.test: SKIPPING the browser half: no Chromium at ${chromiumPath} (apt-get install chromium)`);

let project: TestProject;
let colony: RunningColony;
let cert: string;

beforeAll(async () => {
  project = await createTestProject();
  cert = join(project.dir, "colony.crt");
  const key = join(project.dir, "colony.key");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert], { stdio: "ignore" });
  await project.setConfig(["colony", "api", "tls"], { cert, key });
  colony = await project.start();
}, 120_000);
afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

async function link(): Promise<{ url: string; code: string }> {
  const res = await runCoral(["dashboard", "--no-open", "--json"], {
    cwd: project.dir,
    env: { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port, NODE_EXTRA_CA_CERTS: cert, DISPLAY: "", WAYLAND_DISPLAY: "", CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined },
  });
  if (res.code !== 0) throw new Error(`coral dashboard failed (${res.code}): ${res.stderr}`);
  const { url } = JSON.parse(res.stdout) as { url: string };
  return { url, code: /#code=([A-Za-z0-9_-]+)$/.exec(url)![1]! };
}

/** A POST over https trusting only the test's certificate. */
function post(path: string, body: object, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const { hostname, port } = new URL(colony.url);
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: "POST", ca: readFileSync(cert), headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(text);
  });
}

describe("dashboard over TLS", () => {
  it("gives an https sign-in link and a Secure cookie, and refuses an http origin for the https colony", async () => {
    expect(colony.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const first = await link();
    expect(first.url).toBe(`${colony.url}/login#code=${first.code}`);
    // A page served over plain http (the same host and port) is another origin.
    const mixed = await post("/dashboard/api/sign-in", { code: first.code }, { origin: colony.url.replace("https://", "http://") });
    expect(mixed.status).toBe(403);
    expect(mixed.headers["set-cookie"]).toBeUndefined();

    const second = await link();
    const ok = await post("/dashboard/api/sign-in", { code: second.code }, { origin: colony.url });
    expect(ok.status).toBe(200);
    const cookie = String(ok.headers["set-cookie"]);
    expect(cookie).toMatch(/^coral_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
    const status = await post("/coral.colony.v1.ColonyService/GetStatus", {}, { cookie: cookie.split(";", 1)[0]!, "x-coral-csrf": "1", origin: colony.url });
    expect(status.status).toBe(200);
    expect((JSON.parse(status.body) as { colonyId: string }).colonyId).toBe(project.colonyId);
  });

  it.skipIf(!haveChromium)("signs Chromium in through the https link, with a Secure cookie, and goes live", async () => {
    const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
    try {
      // The self-signed test certificate is accepted by this context only.
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto((await link()).url);
      await page.getByTestId("session").waitFor({ timeout: 60_000 });
      expect(await page.getByTestId("session").textContent()).toContain("local · admin");
      expect(new URL(page.url()).protocol).toBe("https:");
      const [session] = await context.cookies();
      expect(session).toMatchObject({ name: "coral_session", secure: true, httpOnly: true, sameSite: "Strict" });
      await page.locator('[data-testid="live-state"][data-state="live"]').waitFor({ timeout: 60_000 });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
