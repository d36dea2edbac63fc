// The dashboard on the colony's API port, over plain HTTP: static files
// (types, caching, CSP, no way out of the bundle), the one-time sign-in
// exchange, and what the session cookie may do (CSRF, origin, scope).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import type { RunningColony } from "@coral/colony";
import { all } from "@coral/common/duckdb";
import { runCoral } from "../helpers/cli.ts";
import { rawHttp, signInLink } from "./helpers.ts";

let project: TestProject;
let colony: RunningColony;

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
});
afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

async function signIn(code: string, headers: Record<string, string> = {}) {
  return fetch(`${colony.url}/dashboard/api/sign-in`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ code }) });
}

function sessionCookie(res: Response): string {
  const set = res.headers.get("set-cookie") ?? "";
  return set.split(";", 1)[0]!;
}

/** A Connect JSON call as the page makes it. */
function call(method: string, body: object, headers: Record<string, string>) {
  return fetch(`${colony.url}/coral.colony.v1.ColonyService/${method}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

describe("dashboard static files", () => {
  it("serves the app with content types, cache headers and a strict CSP; every view path gets the app", async () => {
    const index = await fetch(`${colony.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const csp = index.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    // A fresh style nonce per response, in the CSP and in the page (for its own <style> elements only).
    const nonce = /style-src 'self' 'nonce-([A-Za-z0-9_-]{22})'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(index.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await index.text();
    expect(html).toContain(`<meta name="coral-style-nonce" content="${nonce}" />`);
    const withoutNonce = (page: string) => page.replace(/content="[A-Za-z0-9_-]{22}"/, 'content=""');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const js = await fetch(`${colony.url}${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(js.headers.get("content-encoding")).toBe("gzip");
    expect((await js.text()).length).toBeGreaterThan(1000);

    for (const view of ["/topology", "/components/api", "/events?service=api", "/insights"]) {
      const res = await fetch(`${colony.url}${view}`);
      expect(res.status).toBe(200);
      const page = await res.text();
      expect(withoutNonce(page)).toBe(withoutNonce(html));
      expect(page).not.toBe(html);
    }
    expect((await fetch(`${colony.url}/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${colony.url}/`, { method: "DELETE" })).status).toBe(405);
  });

  it("never serves a file outside the bundle, however the path is written", async () => {
    const secrets = [
      JSON.parse(await readFile(join(import.meta.dirname, "../../package.json"), "utf8")).description as string,
      project.localToken,
      "root:x:0:0",
      "dashboardAssetsDir",
    ];
    const attacks = [
      "/../../../../etc/passwd",
      "/assets/../../package.json",
      "/assets/../../../package.json",
      "/%2e%2e/%2e%2e/package.json",
      "/assets/%2e%2e%2f%2e%2e%2fpackage.json",
      "/assets/..%2f..%2f..%2fpackage.json",
      "/assets/..%5c..%5c..%5cpackage.json",
      "/..%252f..%252fpackage.json",
      "//etc/passwd",
      "/assets/%00../../package.json",
      "/assets/../../assets.js",
      `/${"../".repeat(12)}${project.dir.slice(1)}/.coral/local.token`,
      "/%c0%ae%c0%ae/package.json",
      "/.built",
    ];
    for (const path of attacks) {
      const res = await rawHttp(colony.url, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect([200, 400, 404], path).toContain(res.status);
      for (const secret of secrets) expect(res.body, `${path} leaked a file`).not.toContain(secret);
      // A 200 is the app's own page (a view path), nothing else.
      if (res.status === 200) expect(res.body, path).toContain('<div id="app">');
    }
  });
});

describe("dashboard sign-in", () => {
  it("exchanges a one-time code from `coral dashboard` for an HttpOnly, SameSite=Strict cookie; a code used twice is refused", async () => {
    const link = await signInLink(project);
    expect(link.url).toBe(`${colony.url}/login#code=${link.code}`);
    expect(link.scope).toBe("admin");
    const first = await signIn(link.code);
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ name: "local", scope: "admin" });
    const set = first.headers.get("set-cookie")!;
    expect(set).toMatch(/^coral_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    const again = await signIn(link.code);
    expect(again.status).toBe(401);
    expect(((await again.json()) as { message: string }).message).toContain("already used");
    expect(again.headers.get("set-cookie")).toBeNull();

    const cookie = sessionCookie(first);
    const status = await call("GetStatus", {}, { cookie, "x-coral-csrf": "1" });
    expect(status.status).toBe(200);
    expect(((await status.json()) as { colonyId: string }).colonyId).toBe(project.colonyId);
    const session = await fetch(`${colony.url}/dashboard/api/session`, { headers: { cookie } });
    expect(await session.json()).toMatchObject({ signedIn: true, name: "local", scope: "admin" });
    expect(await (await fetch(`${colony.url}/dashboard/api/session`)).json()).toMatchObject({ signedIn: false });
    // Audited like the CLI's actions, under the token's name; the code and the cookie are in no row.
    const audit = await colony.store.read((c) => all(c, "SELECT actor, action, target, CAST(details AS TEXT) AS details FROM audit_log WHERE action LIKE 'dashboard.%' ORDER BY \"at\""));
    expect(audit.map((r) => [r.actor, r.action, r.target])).toEqual([
      ["local", "dashboard.sign_in_code", "local"],
      ["dashboard:local", "dashboard.sign_in", "local"],
    ]);
    const cookieValue = cookie.split("=")[1]!;
    for (const row of audit) {
      expect(JSON.stringify(row)).not.toContain(link.code);
      expect(JSON.stringify(row)).not.toContain(cookieValue);
    }
  });

  it("prints the link for a person: the dashboard's address, the one-time link, and no browser without a desktop", async () => {
    const res = await runCoral(["dashboard"], { cwd: project.dir, env: { CORAL_HOME: project.home, DISPLAY: "", WAYLAND_DISPLAY: "", CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined } });
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split("\n");
    expect(lines[0]).toBe(`Dashboard: ${colony.url}/`);
    expect(lines[1]).toMatch(new RegExp(`^  Sign in: ${colony.url.replace(/[.]/g, "\\.")}/login#code=[A-Za-z0-9_-]{32}$`));
    expect(lines[2]).toMatch(/^ {2}One-time link \(admin session\): it works once, within \d+s; run coral dashboard again for a new one\.$/);
    expect(res.stdout).not.toContain("Opening");
    expect(res.stdout).not.toContain(project.localToken);
    const noColony = await runCoral(["dashboard", "--no-open", "--colony-url", "http://127.0.0.1:9", "--token", "coral_x"], { cwd: project.dir, env: { CORAL_HOME: project.home } });
    expect(noColony.code).toBe(1);
    expect(noColony.stderr).toContain("colony not reachable at http://127.0.0.1:9");
  });

  it("gives no data without a cookie, to a made-up cookie, or to a cookie call without the CSRF header or from another origin", async () => {
    const none = await call("GetStatus", {}, { "x-coral-csrf": "1" });
    expect(none.status).toBe(401);
    const madeUp = await call("GetStatus", {}, { cookie: "coral_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x-coral-csrf": "1" });
    expect(madeUp.status).toBe(401);
    const { code } = await signInLink(project);
    const cookie = sessionCookie(await signIn(code));
    const noCsrf = await call("GetStatus", {}, { cookie });
    expect(noCsrf.status).toBe(403);
    expect(((await noCsrf.json()) as { code: string }).code).toBe("permission_denied");
    const otherSite = await call("GetStatus", {}, { cookie, "x-coral-csrf": "1", origin: "http://evil.example" });
    expect(otherSite.status).toBe(403);
    expect((await signIn("x".repeat(32), { origin: "http://evil.example" })).status).toBe(403);
    expect((await fetch(`${colony.url}/dashboard/api/live`, { headers: { cookie: "coral_session=nope" } })).status).toBe(401);
    expect((await fetch(`${colony.url}/dashboard/api/sign-in-code`, { method: "POST" })).status).toBe(401);
  });

  it("keeps a read token's session read-only, and ends it when the token is revoked", async () => {
    const admin = colonyApi(colony.url, project.localToken);
    const { token } = await admin.createToken({ name: "viewer", scope: TokenScope.READ });
    const link = await signInLink(project, { colonyUrl: colony.url, token });
    expect(link.scope).toBe("read");
    const cookie = sessionCookie(await signIn(link.code));
    const headers = { cookie, "x-coral-csrf": "1" };
    expect((await call("ListInsights", {}, headers)).status).toBe(200);
    const refused = await call("DismissInsight", { id: "1" }, headers);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { message: string }).message).toContain("needs an admin token");
    // A session cannot mint codes (only a bearer token can).
    expect((await fetch(`${colony.url}/dashboard/api/sign-in-code`, { method: "POST", headers })).status).toBe(401);
    await admin.revokeToken({ name: "viewer" });
    expect((await call("ListInsights", {}, headers)).status).toBe(401);
  });
});
