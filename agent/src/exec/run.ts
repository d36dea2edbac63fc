// Runs one `coral exec` command: beside the service, inside the namespaces of
// its process (nsenter: mount with its root and working directory, uts, ipc,
// net, pid, cgroup), or on the agent's host. Its own process group, so a
// timeout, the output cap or a caller that goes away ends all of it; stdin is
// closed; the environment is a clean one (the agent's own, with its join
// token and secrets, never reaches the command).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { killSession } from "./kill-session.ts";

const osSignals = constants.signals as Record<string, number>;

export type ExecEvent =
  | { kind: "started"; pid: number; mode: "namespaces" | "host"; targetPid: number }
  | { kind: "stdout" | "stderr"; data: Uint8Array }
  | { kind: "exit"; exitCode: number; signal: string; timedOut: boolean; outputTruncated: boolean; durationMs: number; outputBytes: number };

export interface ExecCommand {
  argv: readonly string[];
  /** Enter this process's namespaces; undefined runs on the host. */
  targetPid?: number;
  timeoutMs: number;
  maxOutputBytes: number;
  /** The caller went away: stop the command. */
  signal?: AbortSignal;
  /** Grace between SIGTERM and SIGKILL at the timeout (default 2 s). */
  killGraceMs?: number;
}

/** What a command run by coral exec sees as its environment. */
export const execEnvironment: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
  HOME: "/root",
  TERM: "dumb",
};

const CAP_SYS_ADMIN = 21n;

/**
 * Whether this agent may enter another process's namespaces: nsenter needs
 * CAP_SYS_ADMIN (root has it). Read from /proc/self/status (CapEff), so an
 * agent given the capability without being root counts too.
 */
export function canEnterNamespaces(status = readFileSync("/proc/self/status", "utf8")): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> CAP_SYS_ADMIN) & 1n) === 1n;
}

/** Why a command cannot run in the service's namespaces here, for the person who asked. */
export const needsRootMessage =
  "entering the service's namespaces needs the agent to run as root (CAP_SYS_ADMIN); run it on the agent's host with --host, or run the agent as root";

/** nsenter's arguments for entering every namespace of `pid` (and its root and working directory). */
export function nsenterArgs(pid: number, argv: readonly string[]): string[] {
  return ["--target", String(pid), "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd", "--", ...argv];
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  // SIGKILL: all of its session, background jobs in other process groups too.
  if (signal === "SIGKILL") return killSession(child.pid);
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Runs the command and yields its start, its output as it comes, and how it ended (always last). */
export async function* runExec(cmd: ExecCommand): AsyncGenerator<ExecEvent> {
  const started = Date.now();
  const inNamespaces = cmd.targetPid !== undefined;
  const [file, ...args] = inNamespaces ? ["nsenter", ...nsenterArgs(cmd.targetPid!, cmd.argv)] : cmd.argv;
  const child = spawn(file!, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...execEnvironment } });

  // Events are queued by the child's callbacks and taken by the generator.
  const queue: ExecEvent[] = [];
  let wake: (() => void) | undefined;
  const push = (e: ExecEvent) => {
    queue.push(e);
    wake?.();
  };
  let outputBytes = 0;
  let truncated = false;
  let timedOut = false;
  let spawnError: NodeJS.ErrnoException | undefined;
  let ended = false;
  let killTimer: NodeJS.Timeout | undefined;

  const onOutput = (kind: "stdout" | "stderr") => (chunk: Buffer) => {
    if (truncated) return;
    const room = cmd.maxOutputBytes - outputBytes;
    if (chunk.length > room) {
      if (room > 0) push({ kind, data: new Uint8Array(chunk.subarray(0, room)) });
      outputBytes += Math.max(room, 0);
      truncated = true;
      killGroup(child, "SIGKILL");
      return;
    }
    outputBytes += chunk.length;
    push({ kind, data: new Uint8Array(chunk) });
  };
  child.stdout!.on("data", onOutput("stdout"));
  child.stderr!.on("data", onOutput("stderr"));

  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child, "SIGTERM");
    killTimer = setTimeout(() => killGroup(child, "SIGKILL"), cmd.killGraceMs ?? 2000);
  }, cmd.timeoutMs);
  const onAbort = () => killGroup(child, "SIGKILL");
  cmd.signal?.addEventListener("abort", onAbort, { once: true });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("error", (err: NodeJS.ErrnoException) => {
      spawnError = err;
      resolve({ code: null, signal: null });
    });
    // "close": the process exited and its output streams are drained. Once the
    // command itself exits, what it left running in its session is ended too
    // (it would hold the output open, and nothing outlives a coral exec).
    child.once("exit", () => killGroup(child, "SIGKILL"));
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  void exited.then(() => {
    ended = true;
    wake?.();
  });

  try {
    if (child.pid !== undefined) yield { kind: "started", pid: child.pid, mode: inNamespaces ? "namespaces" : "host", targetPid: cmd.targetPid ?? 0 };
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    const { code, signal } = await exited;
    if (spawnError) {
      const what = spawnError.code === "ENOENT" ? `${file}: command not found on the ${inNamespaces ? "agent's host (nsenter is in util-linux)" : "agent's host"}` : `${file}: ${spawnError.message}`;
      const data = new TextEncoder().encode(`coral exec: ${what}\n`);
      yield { kind: "stderr", data };
      yield { kind: "exit", exitCode: spawnError.code === "ENOENT" ? 127 : 126, signal: "", timedOut: false, outputTruncated: false, durationMs: Date.now() - started, outputBytes: data.length };
      return;
    }
    // As shells and timeout(1) report them: 124 for a timeout, 128+n for a signal.
    const signalNumber = signal ? (osSignals[signal] ?? 0) : 0;
    const exitCode = timedOut ? 124 : code ?? 128 + signalNumber;
    yield { kind: "exit", exitCode, signal: signal ?? "", timedOut, outputTruncated: truncated, durationMs: Date.now() - started, outputBytes };
  } finally {
    clearTimeout(timer);
    clearTimeout(killTimer);
    cmd.signal?.removeEventListener("abort", onAbort);
    // The consumer stopped early (the caller went away): nothing of the command stays behind.
    if (!ended) killGroup(child, "SIGKILL");
  }
}
