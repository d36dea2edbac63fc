// Live-debugging test helpers: compile real target programs, run them on a
// free port, drive calls over TCP, and say why the bpftrace tests cannot run.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import type { AgentOptions, RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { testAgent } from "../helpers/agents.ts";
import { createTestProject, serviceApi, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { onPath } from "@coral/agent/testing";

export { onPath };


/** Why real-bpftrace tests cannot run here, or undefined. */
export function bpfSkipReason(tools: string[] = ["gcc"]): string | undefined {
  if (process.getuid?.() !== 0) return "not root (eBPF uprobes need root or CAP_BPF+CAP_PERFMON)";
  if (!onPath("bpftrace")) return "bpftrace not installed (apt-get install -y --no-install-recommends bpftrace)";
  for (const t of tools) if (!onPath(t)) return `${t} not installed`;
  return undefined;
}

/** gcc -O0 -g -fno-inline of tests/debug/testdata/payments.c. */
export function compilePayments(): string {
  const dir = mkdtempSync(join(tmpdir(), "coral-debug-c-"));
  const out = join(dir, "payments");
  execFileSync("gcc", ["-O0", "-g", "-fno-inline", "-pthread", "-o", out, fileURLToPath(new URL("./testdata/payments.c", import.meta.url))]);
  return out;
}

/** gcc -O0 -g -fno-inline of tests/debug/testdata/workers.c (a forking / worker-pool server). */
export function compileWorkers(): string {
  const out = join(mkdtempSync(join(tmpdir(), "coral-workers-")), "workers");
  execFileSync("gcc", ["-O0", "-g", "-fno-inline", "-o", out, fileURLToPath(new URL("./testdata/workers.c", import.meta.url))]);
  return out;
}

export function startTarget(bin: string, port: number, args: string[], children: ChildProcess[]): ChildProcess {
  const c = spawn(bin, [String(port), ...args], { stdio: "ignore" });
  children.push(c);
  return c;
}

/** Sends one request line to a target and resolves with its answer. */
export function request(port: number, line: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let out = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from 127.0.0.1:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("connect", () => sock.write(line + "\n"));
    sock.on("data", (d) => (out += d.toString()));
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(out.trim());
    });
  });
}

export async function targetListening(port: number): Promise<void> {
  await waitFor(
    `target listening on ${port}`,
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect(port, "127.0.0.1");
        s.on("connect", () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      }),
    { timeoutMs: 15_000 },
  );
}

/** A DebugService client on a colony, with a bearer token. */
export function debugApi(url: string, token?: string) {
  return serviceApi(DebugService, url, token);
}

export interface ObservedTarget extends AsyncDisposable {
  port: number;
  target: ChildProcess;
  project: TestProject;
  colony: RunningColony;
  agent: RunningAgent;
  /** DebugService as the local (admin) CLI. */
  api: ReturnType<typeof debugApi>;
}

/**
 * The set-up every live-debugging suite shares: the compiled `bin` listening
 * on a free port, a colony, and an agent observing it as `service`, ready once
 * the colony lists the target's functions.
 */
export async function startObservedTarget(
  bin: string,
  service: string,
  options: { pattern: string; agent?: Partial<AgentOptions>; args?: string[] },
): Promise<ObservedTarget> {
  const children: ChildProcess[] = [];
  const port = await freePort();
  const target = startTarget(bin, port, options.args ?? [], children);
  const parts: Partial<ObservedTarget> = { port, target };
  const close = async () => {
    await parts.agent?.close();
    await parts.project?.[Symbol.asyncDispose]();
    for (const c of children) c.kill("SIGKILL");
  };
  try {
    await targetListening(port);
    const project = (parts.project = await createTestProject());
    const colony = (parts.colony = await project.start());
    parts.agent = await testAgent(project, colony.url, service, port, { healthUrl: undefined, ...options.agent });
    const api = (parts.api = debugApi(colony.url, project.localToken));
    await waitFor(`the agent to observe ${service}`, async () => (await api.listFunctions({ serviceName: service, pattern: options.pattern })).pid === target.pid);
  } catch (err) {
    await close();
    throw err;
  }
  return { ...(parts as Required<Omit<ObservedTarget, typeof Symbol.asyncDispose>>), [Symbol.asyncDispose]: close };
}

const nodeAppJs = fileURLToPath(new URL("../../agent/src/debug/node/testdata/app.mjs", import.meta.url));

/** How the agent shows the Node test app's file: relative to its working directory (the target inherits the test's). */
export function nodeAppShown(): string {
  return relative(process.cwd(), nodeAppJs);
}

/** An executable that runs the Node test app (agent/src/debug/node/testdata/app.mjs) with the port the fixture passes (exec: the pid is node's). */
export function nodeAppBin(): string {
  const bin = join(mkdtempSync(join(tmpdir(), "coral-node-app-")), "node-app");
  // --inspect-port=0: a free port when SIGUSR1 opens the inspector, not 9229, which another Node under test may hold.
  writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" --inspect-port=0 "${nodeAppJs}" "$@"\n`);
  chmodSync(bin, 0o755);
  return bin;
}

/** go build of tests/debug/testdata/go (Go register ABI, Go >= 1.17). */
export function compileGoPayments(): string {
  const dir = mkdtempSync(join(tmpdir(), "coral-debug-go-"));
  const out = join(dir, "payments-go");
  execFileSync("go", ["build", "-o", out, "."], {
    cwd: fileURLToPath(new URL("./testdata/go/", import.meta.url)),
    env: { ...process.env, GOFLAGS: "-mod=mod", GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "coral-go-cache"), GOPATH: process.env.GOPATH ?? join(tmpdir(), "coral-gopath") },
  });
  return out;
}
