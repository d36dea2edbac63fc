/**
 * RED metrics without code changes: every HTTP/1.x request the service's
 * processes serve in plaintext, from syscall tracepoints (bpftrace, as root).
 *
 * One bpftrace process (bpf/http-requests.bt.tmpl) prints the first bytes of
 * every read and write on a socket of the process set (seeded with the set's
 * pids, extended in the kernel when a member forks); RequestPairer pairs per
 * connection each request line read with the next status line written.
 * Lines from different CPUs may come out of order: they are held
 * `reorderMs` and handled in kernel time order.
 *
 * When the set gains a process the program was not seeded with (the service
 * restarted, a new worker not forked by a member), the program is started
 * again with the new set. After an unexpected exit it is restarted with
 * backoff; where eBPF cannot run (not root, no bpftrace) the status says why
 * and nothing else happens. Tracefs is mounted in a private mount namespace
 * where it is not mounted. Modelled on ../kernel-connections.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { closeSync, existsSync } from "node:fs";
import { backoffMs } from "@coral/common/async";
import { gatherReads } from "../gather-reads.ts";
import { findBpftraceBinary, kernelConnectionsUnavailable } from "../kernel-connections.ts";
import { RequestPairer, type PairingCounts, type ServedRequest } from "./pairing.ts";
import { BpftraceJsonLines, parseTraceLine, type TraceLine, type TraceOutput } from "./parse.ts";
import { DEFAULT_CAPTURE_BYTES, httpRequestsProgram } from "./program.ts";
import { DEFAULT_ROUTE_CAP } from "./routes.ts";

export interface HttpTracerOptions {
  /** The service's processes now. */
  pids: () => Iterable<number>;
  bpftracePath?: string;
  /** Distinct method+route pairs kept (default 100); the rest are `other`. Null: not capped here (the shared tracer caps per service). */
  routeCap?: number | null;
  /** A process of the set forked `pid` (the program follows it from then on). */
  onFork?: (pid: number, parent: number) => void;
  captureBytes?: number;
  /** How long bpftrace's output gathers after each read (default 5 ms; 0 reads it as it comes): see ../gather-reads.ts. */
  readPauseMs?: number;
  /** How long lines are held to be put in kernel time order (default 200 ms). */
  reorderMs?: number;
  /** How often the process set is compared with the program's (default 1 s). */
  pidCheckMs?: number;
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  maxFailedRestarts?: number;
  attachTimeoutMs?: number;
}

export interface HttpTracerStatus {
  state: "stopped" | "waiting" | "starting" | "running" | "restarting" | "unavailable";
  reason?: string;
  /** Lines read from bpftrace (reads, writes, closes). */
  lines: number;
  /** Lines that did not parse. */
  malformed: number;
  /** Events bpftrace could not hand over (its perf buffer was full: "Lost N events"). */
  lost: number;
  routes: number;
  restarts: number;
  /** Processes added to the running program (a restarted service, a new worker) without starting it again. */
  followed: number;
  bpftracePid?: number;
  counts: PairingCounts;
}

export interface HttpTracerEvents {
  /** Requests answered (in kernel time order, a batch per reorder tick). */
  requests: [requests: ServedRequest[]];
  status: [status: HttpTracerStatus];
}

function tracefsMounted(): boolean {
  return existsSync("/sys/kernel/tracing/events/syscalls") || existsSync("/sys/kernel/debug/tracing/events/syscalls");
}

/** See bpf/http-requests.bt.tmpl: fds from here on, closed by the agent, name a pid to follow. */
const followFdBase = 0x3000_0000;
/** pid_max is at most 2^22. */
const maxPid = 0x40_0000;

interface Held {
  e: Extract<TraceLine, { ns: bigint }>;
  at: number;
}

export class HttpTracer extends EventEmitter<HttpTracerEvents> {
  readonly pairer: RequestPairer;
  #state: HttpTracerStatus["state"] = "stopped";
  #reason: string | undefined;
  #lines = 0;
  #malformed = 0;
  #lost = 0;
  #restarts = 0;
  #followed = 0;
  #child: ChildProcess | undefined;
  #stopped = false;
  #failedRestarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #pidTimer: NodeJS.Timeout | undefined;
  #tick: NodeJS.Timeout | undefined;
  /** Pids the running program follows (seeded and forked). */
  #known = new Set<number>();
  #held: Held[] = [];
  #respawning = false;

  constructor(private readonly options: HttpTracerOptions) {
    super();
    this.pairer = new RequestPairer(options.routeCap === null ? null : (options.routeCap ?? DEFAULT_ROUTE_CAP), options.captureBytes ?? DEFAULT_CAPTURE_BYTES);
  }

  status(): HttpTracerStatus {
    return {
      state: this.#state,
      reason: this.#reason,
      lines: this.#lines,
      malformed: this.#malformed,
      lost: this.#lost,
      routes: this.pairer.routes(),
      restarts: this.#restarts,
      followed: this.#followed,
      bpftracePid: this.#child?.pid,
      counts: { ...this.pairer.counts },
    };
  }

  /** Resolves once the probes are attached, or it is known they cannot be, or no process is there yet ("waiting"). Never throws. */
  async start(): Promise<HttpTracerStatus> {
    this.#stopped = false;
    const why = kernelConnectionsUnavailable(this.options.bpftracePath);
    if (why) {
      this.#set("unavailable", why);
      return this.status();
    }
    this.#pidTimer = setInterval(() => void this.#checkPids(), this.options.pidCheckMs ?? 1000);
    await this.#checkPids();
    return this.status();
  }

  /** Looks at the process set now rather than at the next check (a service joined the shared program). */
  async refresh(): Promise<void> {
    await this.#checkPids();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#pidTimer);
    clearTimeout(this.#tick);
    this.#tick = undefined;
    await this.#kill();
    this.#drain(true);
    if (this.#state !== "unavailable") this.#set("stopped", undefined);
  }

  #set(state: HttpTracerStatus["state"], reason: string | undefined): void {
    const changed = state !== this.#state || reason !== this.#reason;
    this.#state = state;
    this.#reason = reason;
    if (changed) this.emit("status", this.status());
  }

  #current(): number[] {
    return [...new Set(this.options.pids())].filter((p) => Number.isSafeInteger(p) && p > 0 && p < maxPid && p !== process.pid);
  }

  /** Starts the program when the set has a process it does not follow. */
  async #checkPids(): Promise<void> {
    if (this.#stopped || this.#respawning || this.#state === "unavailable" || this.#state === "restarting") return;
    const pids = this.#current();
    if (pids.length === 0) {
      if (!this.#child) this.#set("waiting", "no process of the service yet");
      return;
    }
    if (this.#child && pids.every((p) => this.#known.has(p))) return;
    if (this.#child && this.#state === "running") {
      // The running program takes the new processes in (no restart: nothing is missed meanwhile).
      for (const p of pids) if (!this.#known.has(p)) this.#follow(p);
      return;
    }
    this.#respawning = true;
    try {
      await this.#kill();
      this.#drain(true);
      if (this.#stopped) return;
      this.#set("starting", undefined);
      const err = await this.#spawn(pids);
      if (err && !this.#stopped) this.#set("unavailable", err);
    } finally {
      this.#respawning = false;
    }
  }

  /** Adds `pid` to the program's set: closing the invalid fd 0x30000000 + pid runs the probe that does it, before close returns. */
  #follow(pid: number): void {
    try {
      closeSync(followFdBase + pid);
    } catch {
      // EBADF, as meant
    }
    this.#known.add(pid);
    this.#followed++;
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("close", () => r()));
      child.kill("SIGINT");
      const force = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(force);
    }
  }

  #spawn(pids: number[]): Promise<string | null> {
    const bpftrace = findBpftraceBinary(this.options.bpftracePath)!;
    const cap = this.options.captureBytes ?? DEFAULT_CAPTURE_BYTES;
    const program = httpRequestsProgram({ pids, markPid: process.pid, captureBytes: cap });
    // A larger perf buffer than the default 64 pages per CPU: bursts of thousands of requests a second are not lost.
    const env = { ...process.env, BPFTRACE_STRLEN: String(cap + 1), BPFTRACE_PERF_RB_PAGES: process.env.BPFTRACE_PERF_RB_PAGES ?? "1024" };
    const child = tracefsMounted()
      ? spawn(bpftrace, ["-B", "line", "-f", "json", "-e", program], { stdio: ["ignore", "pipe", "pipe"], env })
      : spawn(
          "unshare",
          ["-m", "--propagation", "private", "sh", "-c", 'mount -t tracefs nodev /sys/kernel/tracing && exec "$0" -B line -f json -e "$1"', bpftrace, program],
          { stdio: ["ignore", "pipe", "pipe"], env },
        );
    this.#child = child;
    this.#known = new Set(pids);
    let stderr = "";
    let attached = false;
    let marker: NodeJS.Timeout | undefined;
    return new Promise((resolve) => {
      let settled = false;
      const settle = (err: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(marker);
        resolve(err);
      };
      const timer = setTimeout(() => {
        settle(`bpftrace did not attach within ${Math.round((this.options.attachTimeoutMs ?? 60_000) / 1000)} s`);
        child.kill("SIGKILL");
      }, this.options.attachTimeoutMs ?? 60_000);
      child.on("error", (err) => settle(`cannot run bpftrace: ${err.message}`));
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (d: string) => {
        if (stderr.length < 4096) stderr += d;
      });
      // JSON, an event a line: bpftrace escapes the captured bytes (latin1: a byte it leaves raw stays one char).
      child.stdout!.setEncoding("latin1");
      const output = new BpftraceJsonLines(16 * cap + 1024);
      const handle = (out: TraceOutput) => {
        if (out.kind === "lost") {
          this.#lost += out.events;
          return;
        }
        if (out.kind === "other") {
          this.#malformed++;
          return;
        }
        if (!attached) {
          if (!marker && out.kind === "attached") {
            // close() of an fd that is not open: the last probe prints P once it sees one.
            const poke = () => {
              try {
                closeSync(0x3fff_fff0);
              } catch {
                // EBADF, as meant
              }
            };
            poke();
            marker = setInterval(poke, 100);
            return;
          }
          if (out.kind === "printf" && out.text === "P") {
            attached = true;
            this.#failedRestarts = 0;
            this.#set("running", undefined);
            settle(null);
            return;
          }
        }
        if (out.kind === "printf") this.#line(out.text);
      };
      child.stdout!.on("data", (chunk: string) => {
        for (const out of output.feed(chunk)) handle(out);
      });
      gatherReads(child.stdout!, this.options.readPauseMs);
      child.on("exit", (code, signal) => {
        const why = bpftraceError(stderr) || `bpftrace exited (${signal ?? `code ${code}`})`;
        if (!attached) {
          settle(why);
          return;
        }
        if (this.#child !== child || this.#stopped) return;
        this.#child = undefined;
        this.#restartLater(why);
      });
    });
  }

  #restartLater(why: string): void {
    const attempt = this.#failedRestarts;
    if (attempt >= (this.options.maxFailedRestarts ?? 5)) {
      this.#set("unavailable", `bpftrace keeps failing (${why})`);
      return;
    }
    this.#set("restarting", why);
    const delay = backoffMs(attempt, this.options.restartDelayMs ?? 1000, this.options.maxRestartDelayMs ?? 60_000, { jitter: "none" });
    this.#restartTimer = setTimeout(() => {
      if (this.#stopped) return;
      this.#restarts++;
      const pids = this.#current();
      if (pids.length === 0) {
        this.#set("waiting", "no process of the service yet");
        return;
      }
      this.#respawning = true;
      void this.#spawn(pids)
        .then((err) => {
          if (err === null || this.#stopped) return;
          this.#failedRestarts++;
          this.#restartLater(err);
        })
        .finally(() => (this.#respawning = false));
    }, delay);
  }

  /** What one printf of the program printed. */
  #line(line: string): void {
    if (line === "T" || line === "P") return;
    const e = parseTraceLine(line);
    if (!e) {
      this.#malformed++;
      return;
    }
    if (e.kind === "F") {
      this.#known.add(e.pid);
      this.options.onFork?.(e.pid, e.parent);
      return;
    }
    if (e.kind !== "R" && e.kind !== "W" && e.kind !== "X") return;
    this.#lines++;
    this.#held.push({ e, at: Date.now() });
    this.#armDrain();
  }

  /** A drain every 50 ms while lines are held, none while idle (an idle agent is not woken 20 times a second). */
  #armDrain(): void {
    if (this.#tick || this.#stopped) return;
    this.#tick = setTimeout(() => {
      this.#tick = undefined;
      this.#drain(false);
      if (this.#held.length > 0) this.#armDrain();
    }, 50);
  }

  /** Handles the held lines older than the reorder window (all of them when `all`), in kernel time order. */
  #drain(all: boolean): void {
    if (this.#held.length === 0) return;
    const cutoff = Date.now() - (this.options.reorderMs ?? 200);
    // Stable sort: a close stays after the lines it followed at the same time.
    this.#held.sort((a, b) => (a.e.ns < b.e.ns ? -1 : a.e.ns > b.e.ns ? 1 : 0));
    let n = 0;
    if (all) n = this.#held.length;
    else while (n < this.#held.length && this.#held[n]!.at <= cutoff) n++;
    if (n === 0) return;
    const batch = this.#held.splice(0, n);
    const done: ServedRequest[] = [];
    for (const h of batch) for (const r of this.pairer.add(h.e)) done.push(r);
    if (done.length > 0) this.emit("requests", done);
  }
}

/** bpftrace's first real error line, without the harmless memlock warning. */
function bpftraceError(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.includes("RLIMIT_MEMLOCK"));
  return (lines.find((l) => l.startsWith("ERROR")) ?? lines[0] ?? "").slice(0, 300);
}
