// What the Node session tests share: the apps of this folder started as real
// processes, an agent side run in a process of its own (to SIGKILL it), a
// TypeScript app compiled with source maps, and the check that a target was
// left clean.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { pollUntil } from "@coral/common/async";
import { loopbackListeners, openInspector, type InspectorOptions } from "../../../profile/inspector.ts";
import { waitFor } from "../../testing.ts";
import { enableAndCollect, type Cdp } from "../scripts.ts";

export const repo = fileURLToPath(new URL("../../../../../", import.meta.url));
export const testdata = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

const children: ChildProcess[] = [];

/** SIGKILLs every process these helpers started (afterAll). */
export function killAll(): void {
  for (const c of children.splice(0)) c.kill("SIGKILL");
}

export interface StartedApp {
  pid: number;
  port: number;
  child: ChildProcess;
  /** The app's first line: {"port": N, ...}. */
  said: Record<string, unknown>;
}

/**
 * Starts `node [flags] script 0` and resolves once it prints {"port":N}. By
 * default with --inspect-port=0: SIGUSR1 then opens the inspector on a free
 * port, not on 9229, which another Node under test may hold.
 */
export async function startApp(script: string, options: { flags?: string[]; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<StartedApp> {
  const child = spawn(process.execPath, [...(options.flags ?? ["--inspect-port=0"]), script, "0"], { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const said = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const m = /^\{"port":\d+.*\}$/m.exec(out);
      if (m) resolve(JSON.parse(m[0]) as Record<string, unknown>);
    });
    child.once("exit", (code) => reject(new Error(`${script} exited (${code}) before listening`)));
  });
  return { pid: child.pid!, port: said.port as number, child, said };
}

/** GET http://127.0.0.1:<port><path>, at most `timeoutMs`. */
export async function request(port: number, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

/** testdata/ts-app compiled with tsc --sourceMap in a fresh folder; its folder. */
export function compileTsApp(): string {
  const dir = mkdtempSync(join(tmpdir(), "coral-node-ts-"));
  cpSync(testdata("ts-app/src"), join(dir, "src"), { recursive: true });
  execFileSync(
    process.execPath,
    [join(repo, "node_modules/typescript/bin/tsc"), "--target", "ES2022", "--module", "commonjs", "--strict", "--sourceMap", "--outDir", "dist", "--rootDir", "src", "--types", "node", "--typeRoots", join(repo, "node_modules/@types"), "src/users.ts"],
    { cwd: dir },
  );
  return dir;
}

/** An agent side in a process of its own (testdata/<script> with `args`), and a wait for each line it prints. */
export function agentProcess(script: string, args: string[]): { child: ChildProcess; said: (what: string) => Promise<void> } {
  const child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", testdata(script), ...args], { cwd: repo, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const said = (what: string) =>
    pollUntil(
      () => {
        if (out.includes(what)) return true;
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the agent process ended (${child.exitCode ?? child.signalCode}) before saying ${what}: ${out}`);
        return undefined;
      },
      { what: `the agent process to say ${what}`, timeoutMs: 60_000, intervalMs: 20, onError: "throw" },
    ).then(() => undefined);
  return { child, said };
}

/**
 * The target has no recorder left (no __coral global), its rewritten
 * functions' sources are back, and the inspector we opened no longer listens
 * (it listened on none of `before`'s others). `inspector` opens it to look
 * (the SDK's way for an app that refuses SIGUSR1).
 */
export async function expectClean(pid: number, before: ReadonlySet<number>, options: InspectorOptions & { script?: string } = {}): Promise<void> {
  await waitFor(async () => [...(await loopbackListeners(pid))].every((p) => before.has(p)), 15_000, "the inspector to close");
  const s = await openInspector(pid, options);
  try {
    const keys = await s.send<{ result: { value: string[] } }>("Runtime.evaluate", { expression: "Object.getOwnPropertyNames(globalThis).filter((k) => k.startsWith('__coral'))", returnByValue: true });
    expect(keys.result.value).toEqual([]);
    if (options.script) {
      const scripts = (await enableAndCollect(s as typeof s & Cdp)).filter((x) => x.url.endsWith(options.script!));
      expect(scripts.length).toBeGreaterThan(0);
      for (const script of scripts) {
        const { scriptSource } = await s.send<{ scriptSource: string }>("Debugger.getScriptSource", { scriptId: script.scriptId });
        expect(scriptSource).not.toContain("__coral");
      }
      await s.send("Debugger.disable");
    }
  } finally {
    expect(await s.close()).toBe("");
  }
  await waitFor(async () => [...(await loopbackListeners(pid))].every((p) => before.has(p)), 15_000, "the inspector to close again");
}
