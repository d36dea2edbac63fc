// Real processes for the SDK's security tests: the SDK app (sdk-app.ts) run
// from the TypeScript sources, as this machine's root or as another user,
// and scripts run as another local user (the attacker).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { waitFor } from "../helpers/wait.ts";

const appScript = fileURLToPath(new URL("./sdk-app.ts", import.meta.url));
const testsDir = fileURLToPath(new URL("..", import.meta.url));

/** nobody: the other local user of these tests. */
export const otherUser = { uid: 65534, gid: 65534 };

export interface SdkApp {
  child: ChildProcess;
  pid: number;
  ready: { sdkPort: number; announcement: string | null; announceError: string | null };
  output(): string;
  stop(): Promise<void>;
}

/** A folder like /tmp that every user can write to (1777), to stand in for /tmp. */
export async function sharedTmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "coral-shared-tmp-"));
  await chmod(dir, 0o1777);
  return dir;
}

/** The environment of an app that was given no Coral settings, with `tmp` as its /tmp. */
export function plainEnv(tmp: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(CORAL_|XDG_RUNTIME_DIR$)/.test(k)) env[k] = v;
  return { ...env, TMPDIR: tmp, HOME: tmp, ...extra };
}

/**
 * Starts sdk-app.ts. The process waits on its stdin before it runs node, so
 * `beforeStart(pid)` sees its pid first (an attacker guessing the next pid).
 */
export async function startSdkApp(options: {
  env: Record<string, string>;
  user?: { uid: number; gid: number };
  beforeStart?: (pid: number) => Promise<void>;
  mode?: "switch" | "throw";
}): Promise<SdkApp> {
  const args = ["-c", 'read _go; exec "$0" "$@"', process.execPath, "--conditions=coral-source", "--import", "tsx", appScript, "0", "2.0.0", options.mode ?? "switch"];
  const child = spawn("/bin/sh", args, { cwd: testsDir, env: options.env, stdio: ["pipe", "pipe", "pipe"], ...options.user });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const pid = child.pid!;
  await options.beforeStart?.(pid);
  child.stdin!.end("go\n");
  const ready = await waitFor(
    "the SDK app to start",
    () => {
      if (child.exitCode !== null) throw new Error(`the SDK app exited with ${child.exitCode}:\n${out}`);
      const line = out.split("\n").find((l) => l.includes('"event":"ready"'));
      return line ? (JSON.parse(line) as SdkApp["ready"]) : undefined;
    },
    { timeoutMs: 60_000 },
  );
  return {
    child,
    pid,
    ready,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

const run = promisify(execFile);

/** Runs a Node script (CommonJS, `args` in process.argv[1..]) as `user`; returns what it printed as JSON. */
export async function runAs<T>(user: { uid: number; gid: number }, script: string, args: string[] = []): Promise<T> {
  const { stdout } = await run(process.execPath, ["-e", script, "--", ...args], { ...user, cwd: "/", timeout: 30_000 });
  return JSON.parse(stdout) as T;
}

/** A Connect JSON call to the SDK on 127.0.0.1:`port`. */
export async function sdkCall(port: number, path: string, body: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { "x-coral-sdk-token": token } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
