// The terminals of `coral shell` on this agent: each a PTY (node-pty) running
// a shell beside the service, in the namespaces of its process (nsenter, as
// for coral exec) or on the host, with a clean environment. A session ends
// when the shell exits, when it is idle or too old, or when it is closed (the
// caller of OpenShell went away): then every process of its session is killed.
import { constants } from "node:os";
import type { IPty } from "@lydell/node-pty";
import { killSession } from "./kill-session.ts";
import { execEnvironment, nsenterArgs } from "./run.ts";

const signalNames = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

export type ShellEvent =
  | { kind: "started"; pid: number; mode: "namespaces" | "host"; targetPid: number }
  | { kind: "data"; data: Uint8Array }
  | { kind: "exit"; exitCode: number; signal: string; reason: "exited" | "idle" | "max_duration" | "closed"; durationMs: number };

export interface ShellOptions {
  sessionId: string;
  /** Enter this process's namespaces; undefined: on the host. */
  targetPid?: number;
  cols: number;
  rows: number;
  idleMs: number;
  maxDurationMs: number;
  signal?: AbortSignal;
}

/** bash when the target has it, else sh. */
const shellCommand = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"];

interface Session {
  pty: IPty;
  touch(): void;
}

export class ShellSessions {
  readonly #sessions = new Map<string, Session>();

  get size(): number {
    return this.#sessions.size;
  }

  /** Input for a session; false when there is no such session (ended, or never here). */
  write(sessionId: string, data: Uint8Array): boolean {
    const s = this.#sessions.get(sessionId);
    if (!s) return false;
    s.touch();
    // Bytes as typed (node-pty passes a Buffer to its socket as it is; typed as a string).
    s.pty.write(Buffer.from(data) as unknown as string);
    return true;
  }

  resize(sessionId: string, cols: number, rows: number): boolean {
    const s = this.#sessions.get(sessionId);
    if (!s) return false;
    s.pty.resize(cols, rows);
    return true;
  }

  /** Starts a shell and yields its start, its output as it comes, and how it ended (always last). */
  async *open(o: ShellOptions): AsyncGenerator<ShellEvent> {
    if (this.#sessions.has(o.sessionId)) throw new Error(`shell session ${o.sessionId} is already open`);
    const { spawn } = await import("@lydell/node-pty");
    const started = Date.now();
    const inNamespaces = o.targetPid !== undefined;
    const [file, ...args] = inNamespaces ? ["nsenter", ...nsenterArgs(o.targetPid!, shellCommand)] : shellCommand;
    // "binary" encoding: bytes pass as they are (UTF-8 split across chunks stays intact for the terminal).
    const pty = spawn(file!, args, { name: "xterm-256color", cols: o.cols, rows: o.rows, cwd: "/", env: { ...execEnvironment, TERM: "xterm-256color" }, encoding: null as unknown as string });

    const queue: ShellEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (e: ShellEvent) => {
      queue.push(e);
      wake?.();
    };
    let reason: "exited" | "idle" | "max_duration" | "closed" = "exited";
    let exit: { exitCode: number; signal?: number } | undefined;
    const end = (why: typeof reason) => {
      if (exit) return;
      reason = why;
      killSession(pty.pid);
    };
    let idle: NodeJS.Timeout;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => end("idle"), o.idleMs);
    };
    touch();
    const maxTimer = setTimeout(() => end("max_duration"), o.maxDurationMs);
    const onAbort = () => end("closed");
    o.signal?.addEventListener("abort", onAbort, { once: true });
    const dataSub = pty.onData((d: string | Buffer) => push({ kind: "data", data: typeof d === "string" ? Buffer.from(d, "binary") : new Uint8Array(d) }));
    const exitSub = pty.onExit((e) => {
      exit = e;
      wake?.();
    });
    this.#sessions.set(o.sessionId, { pty, touch });
    try {
      yield { kind: "started", pid: pty.pid, mode: inNamespaces ? "namespaces" : "host", targetPid: o.targetPid ?? 0 };
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (exit) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      const signal = exit.signal ? (signalNames.get(exit.signal) ?? String(exit.signal)) : "";
      yield { kind: "exit", exitCode: exit.signal ? 128 + exit.signal : exit.exitCode, signal, reason, durationMs: Date.now() - started };
    } finally {
      clearTimeout(idle!);
      clearTimeout(maxTimer);
      o.signal?.removeEventListener("abort", onAbort);
      this.#sessions.delete(o.sessionId);
      // Also after the shell exited: its background jobs end with it.
      killSession(pty.pid);
      dataSub.dispose();
      exitSub.dispose();
    }
  }

  /** Ends every session (the agent stops). */
  closeAll(): void {
    for (const s of this.#sessions.values()) killSession(s.pty.pid);
  }
}
