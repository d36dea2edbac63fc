// Live debugging third-party Node software as a distribution ships it:
// Debian's configurable-http-proxy (JupyterHub's proxy), run by the system's
// /usr/bin/node, with its code and each dependency installed as packages of
// their own side by side under /usr/share/nodejs (no node_modules folder).
// `debug functions` lists the proxy's own functions, its dependencies only
// with --all; a traced request handler counts every request exactly; a
// logpoint reads each request's URL; a snapshot captures a function's locals.
// Optional: runs when the package is installed
// (apt-get install -y --no-install-recommends node-configurable-http-proxy).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { startObservedTarget, type ObservedTarget } from "./helpers.ts";

const BIN = "/usr/bin/configurable-http-proxy";
const PKG = "/usr/share/nodejs/configurable-http-proxy";
const CONFIGPROXY = `${PKG}/lib/configproxy.js`;
const skip = existsSync(BIN) && existsSync(CONFIGPROXY) ? undefined : "Debian's configurable-http-proxy is not installed (apt-get install -y --no-install-recommends node-configurable-http-proxy)";
if (skip) console.log(`node-third-party.test: SKIPPING the third-party Node proxy test: ${skip}`);

/** The 1-based line of configproxy.js that is exactly `text` once trimmed (the test reads the installed version). */
function lineOf(text: string): number {
  const lines = readFileSync(CONFIGPROXY, "utf8").split("\n");
  const at = lines.findIndex((l) => l.trim() === text);
  if (at < 0) throw new Error(`no line ${JSON.stringify(text)} in ${CONFIGPROXY}`);
  return at + 1;
}

interface ListedFunction {
  name: string;
  file: string;
  line: number;
}

describe.skipIf(skip !== undefined)("live debugging Debian's configurable-http-proxy (Node, /usr/share/nodejs layout)", () => {
  let fixture: ObservedTarget | undefined;
  let backend: Server | undefined;
  let remote: string[];
  let env: Record<string, string>;
  /** Paths the backend saw, in order. */
  const seen: string[] = [];

  /** GET through the proxy; the backend answers with the path it saw. */
  const viaProxy = async (path: string): Promise<void> => {
    const res = await fetch(`http://127.0.0.1:${fixture!.port}${path}`, { signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(`backend saw ${path}`);
  };

  type Api = ObservedTarget["api"];
  /**
   * Attaches, makes `calls` requests, waits until every call has returned
   * (its response is here, so the events say so before the stop), detaches.
   */
  const attachedWhile = async (api: Api, request: Parameters<Api["attachUprobe"]>[0], calls: number, call: (i: number) => Promise<void>) => {
    const attached = await api.attachUprobe(request);
    const session = attached.session!.sessionId;
    let detached: Awaited<ReturnType<Api["detachUprobe"]>>;
    try {
      for (let i = 0; i < calls; i++) await call(i);
      await waitFor("every call recorded", async () => (await api.queryUprobeEvents({ sessionId: session, limit: 1000 })).events.filter((e) => e.type === "return").length >= calls, {
        timeoutMs: 60_000,
        intervalMs: 250,
      });
    } finally {
      detached = await api.detachUprobe({ sessionId: session });
    }
    return { session, detached };
  };

  /** The session's events once it has ended (reading them is what tells the colony the collector has stopped). */
  const endedWith = (session: string) =>
    waitFor(
      `session ${session} to end`,
      async () => {
        const res = await fixture!.api.queryUprobeEvents({ sessionId: session, limit: 1000 });
        return ["completed", "expired", "failed"].includes(res.session?.state ?? "") ? res : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );

  beforeAll(async () => {
    backend = createServer((req, res) => {
      seen.push(req.url ?? "");
      res.end(`backend saw ${req.url}`);
    });
    const backendPort = await freePort();
    await new Promise<void>((resolve) => backend!.listen(backendPort, "127.0.0.1", resolve));
    const apiPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "coral-chp-"));
    // The fixture passes the port as the first argument; the proxy takes flags. exec keeps the pid
    // (the package's #!/usr/bin/env node execs node too). --inspect-port=0: SIGUSR1 opens the
    // inspector on a free port, not 9229, which another Node under test may hold. NODE_PATH: Debian's
    // own nodejs looks in these folders by itself; other builds (NodeSource's) need to be told.
    const launcher = join(dir, "proxy.sh");
    writeFileSync(
      launcher,
      `#!/bin/sh\nexport NODE_OPTIONS=--inspect-port=0 NODE_PATH=/usr/share/nodejs:/usr/lib/nodejs\nexec ${BIN} --ip 127.0.0.1 --port "$1" --api-ip 127.0.0.1 --api-port ${apiPort} --default-target http://127.0.0.1:${backendPort} --log-level error\n`,
      { mode: 0o755 },
    );
    fixture = await startObservedTarget(launcher, "proxy", { pattern: "handleProxyWeb" });
    remote = ["--colony-url", fixture.colony.url, "--token", fixture.project.localToken];
    env = { CORAL_HOME: fixture.project.home };
    await viaProxy("/warm-up");
  }, 180_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
    await new Promise((resolve) => backend?.close(resolve));
  });

  it("functions lists the proxy's own functions, not its dependencies; --all lists those too", async () => {
    const own = await runCoral(["debug", "functions", "proxy", "--limit", "10000", "--json", ...remote], { env });
    expect(own.code).toBe(0);
    const listed = JSON.parse(own.stdout) as { runtime: string; total: number; functions: ListedFunction[] };
    expect(listed.runtime).toBe("node");
    const files = [...new Set(listed.functions.map((f) => f.file))].sort();
    console.log(`node-third-party.test: ${listed.total} functions of the proxy's own in ${files.length} files: ${files.join(", ")}`);
    // Every one in the proxy's package (shown by absolute path: it is outside the process's working directory).
    for (const f of files) expect(f.startsWith(`${PKG}/`)).toBe(true);
    expect(files).toEqual(expect.arrayContaining([`${PKG}/bin/configurable-http-proxy`, CONFIGPROXY, `${PKG}/lib/store.js`, `${PKG}/lib/trie.js`]));
    expect(listed.functions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "ConfigurableProxy.handleProxyWeb", file: CONFIGPROXY, line: lineOf("handleProxyWeb(req, res) {") }),
        expect.objectContaining({ name: "ConfigurableProxy.targetForReq", file: CONFIGPROXY, line: lineOf("async targetForReq(req) {") }),
      ]),
    );
    expect(listed.total).toBe(listed.functions.length);

    const all = await runCoral(["debug", "functions", "proxy", "--all", "--limit", "10000", "--json", ...remote], { env });
    expect(all.code).toBe(0);
    const everything = JSON.parse(all.stdout) as { total: number; functions: ListedFunction[] };
    const packages = [...new Set(everything.functions.map((f) => /^\/usr\/share\/nodejs\/([^/]+)\//.exec(f.file)?.[1] ?? f.file))].sort();
    console.log(`node-third-party.test: with --all, ${everything.total} functions in ${packages.length} packages: ${packages.join(", ")}`);
    expect(packages).toEqual(expect.arrayContaining(["configurable-http-proxy", "http-proxy", "winston", "commander"]));
    expect(everything.total).toBeGreaterThan(listed.total);
    // The same own functions, and the dependencies' on top.
    expect(everything.functions.filter((f) => f.file.startsWith(`${PKG}/`)).length).toBe(listed.total);

    const text = await runCoral(["debug", "functions", "proxy", "--pattern", "handleProxy", ...remote], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`proxy: pid ${fixture!.target.pid} (Node)`);
    expect(text.stdout).toMatch(new RegExp(`ConfigurableProxy\\.handleProxyWeb\\s+\\S*lib/configproxy\\.js:${lineOf("handleProxyWeb(req, res) {")}`));
  });

  it("attach counts every request through the proxy's request handler, exactly", async () => {
    const { api, target } = fixture!;
    const N = 12;
    const { session, detached } = await attachedWhile(
      api,
      { serviceName: "proxy", functionName: "ConfigurableProxy.handleProxyWeb", durationMs: 120_000, captureArgs: 0 },
      N,
      (i) => viaProxy(`/attach/${i}?q=${i}`),
    );
    expect(Number(detached.session?.summary?.calls)).toBe(N);
    expect(Number(detached.session?.summary?.entries)).toBe(N);
    const { events } = await api.queryUprobeEvents({ sessionId: session, limit: 1000 });
    expect(events.filter((e) => e.type === "entry")).toHaveLength(N);
    expect(events.filter((e) => e.type === "return")).toHaveLength(N);
    expect(target.exitCode).toBeNull();
    await viaProxy("/after-attach");
  }, 180_000);

  it("attach times an async function of the proxy (route lookup) until its promise settles, every call", async () => {
    const { api } = fixture!;
    const N = 7;
    const { session, detached } = await attachedWhile(api, { serviceName: "proxy", functionName: "targetForReq", durationMs: 120_000, captureReturn: true }, N, (i) =>
      viaProxy(`/async/${i}`),
    );
    expect(Number(detached.session?.summary?.calls)).toBe(N);
    const { events } = await api.queryUprobeEvents({ sessionId: session, limit: 1000 });
    const returns = events.filter((e) => e.type === "return");
    expect(returns).toHaveLength(N);
    // The settled value: the route the proxy found for each request.
    for (const r of returns) expect(r.returnValue).toMatch(/^\{prefix: "\/", target: "http:\/\/127\.0\.0\.1:\d+"\}$/);
  }, 180_000);

  it("a logpoint in configproxy.js reads each request's URL, exactly", async () => {
    const { api } = fixture!;
    const line = lineOf("this.handleHealthCheck(req, res);");
    const urls = ["/log/a?x=1", "/log/b", "/log/c/d?y=2&z=3"];
    const started = await api.attachUprobe({ serviceName: "proxy", functionName: `lib/configproxy.js:${line}`, kind: "logpoint", expression: "req.url", maxEvents: urls.length, durationMs: 120_000 });
    const session = started.session!.sessionId;
    for (const u of urls) await viaProxy(u);
    const { session: ended, events } = await endedWith(session);
    expect(ended?.state).toBe("completed");
    expect(ended?.summary?.stopReason).toBe("max_events");
    expect(events.map((e) => [e.type, e.value])).toEqual(urls.map((u) => ["log", JSON.stringify(u)]));
  }, 180_000);

  it("a snapshot in an async function captures its arguments and locals", async () => {
    const { api } = fixture!;
    const line = lineOf("metricsTimerEnd();");
    const started = await api.attachUprobe({ serviceName: "proxy", functionName: `configproxy.js:${line}`, kind: "snapshot", snapshotCount: 2, durationMs: 120_000 });
    const session = started.session!.sessionId;
    await viaProxy("/snap/one?k=v");
    await viaProxy("/snap/two");
    const { session: ended, events } = await endedWith(session);
    expect(ended?.summary?.stopReason).toBe("max_events");
    const snaps = events.map((e) => JSON.parse(e.value) as Record<string, string>);
    console.log(`node-third-party.test: snapshot names: ${Object.keys(snaps[0] ?? {}).join(", ")}`);
    expect(snaps).toHaveLength(2);
    // targetForReq(req): the path it looks up (the query stripped), the route it found.
    expect(snaps.map((s) => [s.basePath, s.path])).toEqual([
      ['""', '"/snap/one"'],
      ['""', '"/snap/two"'],
    ]);
    for (const s of snaps) {
      expect(s.route).toMatch(/^\{prefix: "\/", .*data: \{target: "http:\/\/127\.0\.0\.1:\d+"/);
      expect(s.req).toMatch(/^\{/);
    }
    expect(seen).toEqual(expect.arrayContaining(["/snap/one?k=v", "/snap/two"]));
  }, 180_000);
});
