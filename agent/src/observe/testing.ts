/**
 * Test helpers for the observers: real child Node processes and deadline
 * polling. Used by the *.test.ts files beside this one; not part of index.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { pollUntil } from "@coral/common/async";

export interface NodeChild {
  proc: ChildProcess;
  pid: number;
  /** The port the child printed as "PORT <n>". */
  port: number;
  /** Extra words printed after the port on the same line. */
  extra: string[];
  /** Everything the child printed on stdout so far, by line. */
  lines: string[];
}

/**
 * A small HTTP server script, configured by environment variables:
 * PORT (default 0), HOST (default: all addresses, dual stack), STATUS
 * (default 200), BODY, CTYPE. It prints "PORT <n>" once listening, closes its
 * listener (staying alive) when it reads "close" on stdin, and keeps idle
 * keep-alive connections open for two minutes.
 */
export const HTTP_SERVER_SCRIPT = `
const http = require("node:http");
const status = Number(process.env.STATUS || 200);
const body = process.env.BODY ?? "ok";
const srv = http.createServer((req, res) => {
  res.writeHead(status, { "content-type": process.env.CTYPE || "text/plain" });
  res.end(body);
});
srv.keepAliveTimeout = 120000;
const onListen = () => console.log("PORT " + srv.address().port);
if (process.env.HOST) srv.listen(Number(process.env.PORT || 0), process.env.HOST, onListen);
else srv.listen(Number(process.env.PORT || 0), onListen);
process.stdin.on("data", (d) => { if (String(d).includes("close")) srv.close(() => console.log("CLOSED")); });
setInterval(() => {}, 1 << 30);
`;

const live = new Set<ChildProcess>();

/** Spawns `node -e script` and resolves once it prints "PORT <n>". */
export function spawnNode(script: string, env: Record<string, string> = {}, timeoutMs = 20_000): Promise<NodeChild> {
  const proc = spawn(process.execPath, ["-e", script], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`child did not print its port within ${timeoutMs} ms`)), timeoutMs);
    proc.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`child exited early (code ${code}, signal ${signal}); output: ${lines.join(" | ")}`));
    });
    proc.stdout?.setEncoding("utf8");
    proc.stdout?.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        lines.push(line);
        const m = /^PORT (\d+)(.*)$/.exec(line);
        if (m && proc.pid !== undefined) {
          clearTimeout(timer);
          resolve({ proc, pid: proc.pid, port: Number(m[1]), extra: (m[2] ?? "").trim().split(/\s+/).filter(Boolean), lines });
        }
      }
    });
  });
}

/** SIGKILLs the child and waits until it has exited (and been reaped). */
export async function killChild(child: NodeChild | ChildProcess): Promise<void> {
  const proc = "proc" in child ? child.proc : child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGKILL");
  await exited;
}

/** Kills every child spawned by spawnNode that is still running. For afterEach. */
export async function killAllChildren(): Promise<void> {
  await Promise.all([...live].map((p) => killChild(p)));
}

/** A TCP port that was free a moment ago (bind to 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Polls `probe` until it returns something other than undefined/null/false,
 * or throws after `timeoutMs` with `what` and the last error in the message.
 */
export function waitFor<T>(
  what: string,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 25,
): Promise<T> {
  return pollUntil(
    async () => {
      const v = await probe();
      return v === null || v === false ? undefined : v;
    },
    { what, timeoutMs, intervalMs },
  );
}

/** Starts `cmd args` (a test server that prints "listening <port>"); resolves once it listens. `onStart` gets the child at once (to kill it later). */
export async function startListeningServer(cmd: string, args: string[], onStart: (child: ChildProcess) => void): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  onStart(child);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const port = await pollUntil(() => {
    const m = /listening (\d+)/.exec(out);
    return m ? Number(m[1]) : undefined;
  }, { timeoutMs: 30_000, what: `${cmd} listening` });
  return { child, port };
}
