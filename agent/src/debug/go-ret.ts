// Go functions: entry and return without uretprobes. A uretprobe rewrites the
// return address on the goroutine stack and crashes Go when the runtime moves
// that stack, so returns are probed with plain uprobes on the function's RET
// instructions (found by disassembling it with objdump), and entries and
// returns are paired by goroutine (the g pointer, register r14 in Go's
// register ABI, Go >= 1.17), not by thread.
//
// Debian's bpftrace (0.17) refuses uprobes inside a function ("compiled
// without (k|u)probe offset support"), so these probes are kernel uprobe
// events made through tracefs, in a private mount namespace (unshare -m: the
// host's mounts are untouched) and a tracing instance of their own, limited to
// the observed process's tasks (set_event_pid + event-fork for new threads).
// Everything written to tracefs is integers chosen here, never caller text.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { readFile } from "node:fs/promises";
import { readdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { parseElf, type FunctionInfo } from "./elf.ts";
import { DebugError, type GeneratedProgram } from "./program.ts";
import { summarize, type SessionLimiter, type SessionSummary, type StopReason, type UprobeEvent } from "./session.ts";

const run = promisify(execFile);

export interface GoProbePoints {
  /** Where the entry probe goes: after the stack-check prologue (see bodyStart). */
  entry: bigint;
  rets: bigint[];
}

/** Entry and RET probe addresses of one function, from objdump's disassembly. */
export async function probePoints(binary: string, fn: FunctionInfo): Promise<GoProbePoints> {
  const start = fn.address;
  const stop = fn.address + BigInt(fn.size);
  let out: string;
  try {
    ({ stdout: out } = await run("objdump", ["-d", "--no-show-raw-insn", `--start-address=0x${start.toString(16)}`, `--stop-address=0x${stop.toString(16)}`, binary], {
      maxBuffer: 64 * 1024 * 1024,
    }));
  } catch (err) {
    throw new DebugError("unsupported", `cannot disassemble ${fn.name} (objdump from binutils is needed): ${(err as Error).message}`);
  }
  return { entry: bodyStart(out, fn.address), rets: parseRets(out) };
}

/**
 * A Go function starts with a stack check (cmp rsp, [r14+16]; jbe morestack)
 * and, when the stack is too small, grows it and jumps back to its first
 * instruction. A probe there would fire twice for one call, so the entry probe
 * goes on the instruction after that first conditional jump (the arguments are
 * still in their registers). Functions without the check (nosplit) keep their
 * first instruction.
 */
export function bodyStart(objdump: string, start: bigint): bigint {
  const insns = [...objdump.matchAll(/^\s*([0-9a-f]+):\s+(\S+)/gm)].map((m) => ({ addr: BigInt(`0x${m[1]}`), op: m[2]! }));
  const first = insns.slice(0, 6);
  const checks = first.findIndex((i) => i.op === "cmp" || i.op === "lea");
  const jump = first.findIndex((i, k) => k > checks && checks >= 0 && (i.op === "jbe" || i.op === "jna" || i.op === "jb"));
  return jump >= 0 && insns[jump + 1] ? insns[jump + 1]!.addr : start;
}

export function parseRets(objdump: string): bigint[] {
  const rets: bigint[] = [];
  for (const line of objdump.split("\n")) {
    const m = /^\s*([0-9a-f]+):\s+(?:rep\s+|bnd\s+)?retq?\b/.exec(line);
    if (m) rets.push(BigInt(`0x${m[1]}`));
  }
  return rets;
}

/** File offset of a virtual address (what kernel uprobe events take). */
export function fileOffset(elfBuf: Buffer, vaddr: bigint): bigint {
  const elf = parseElf(elfBuf);
  const s = elf.sections.find((x) => x.size > 0 && x.addr > 0n && vaddr >= x.addr && vaddr < x.addr + BigInt(x.size));
  if (!s) throw new DebugError("unsupported", `address 0x${vaddr.toString(16)} is in no section of the binary`);
  return vaddr - s.addr + BigInt(s.offset);
}

const ARG_REGS = ["ax", "bx", "cx", "di", "si", "r8"];
let nextGroup = 1;

/** The tracefs script: integers and fixed text only. */
export function traceScript(opts: { group: string; pid: number; entry: bigint; rets: bigint[]; argCount: number; captureReturn: boolean; tids: number[]; durationS: number }): string {
  const args = ARG_REGS.slice(0, opts.argCount).map((r, i) => ` a${i}=%${r}:s64`).join("");
  const ret = opts.captureReturn ? " r=%ax:s64" : "";
  const events = ["entry", ...opts.rets.map((_, i) => `ret${i}`)];
  const defs = [
    `p:${opts.group}/entry /proc/${opts.pid}/exe:0x${opts.entry.toString(16)} g=%r14:x64${args}`,
    ...opts.rets.map((r, i) => `p:${opts.group}/ret${i} /proc/${opts.pid}/exe:0x${r.toString(16)} g=%r14:x64${ret}`),
  ];
  return [
    "set -e",
    'T="$(mktemp -d)"',
    'mount -t tracefs nodev "$T"',
    `G=${opts.group}`,
    'I="$T/instances/$G"',
    "CAT=",
    "cleanup() {",
    '  [ -n "$CAT" ] && kill "$CAT" 2>/dev/null && wait "$CAT" 2>/dev/null',
    '  echo 0 > "$I/events/$G/enable" 2>/dev/null || true',
    '  rmdir "$I" 2>/dev/null || true',
    ...events.map((e) => `  echo "-:$G/${e}" >> "$T/uprobe_events" 2>/dev/null || true`),
    "}",
    "trap cleanup EXIT",
    "trap 'exit 0' INT TERM",
    ...defs.map((d) => `echo '${d}' >> "$T/uprobe_events"`),
    'mkdir "$I"',
    'echo mono > "$I/trace_clock"',
    'echo 1 > "$I/options/event-fork"',
    `echo '${opts.tids.join(" ")}' > "$I/set_event_pid"`,
    'echo 1 > "$I/events/$G/enable"',
    'echo "{\\"ev\\":\\"ready\\"}"',
    // The kernel-side hard stop, even if the agent dies: timeout ends the reader.
    `timeout ${opts.durationS} cat "$I/trace_pipe" &`,
    "CAT=$!",
    'wait "$CAT" || true',
  ].join("\n");
}

const lineRe = /-(\d+)\s+\[\d+\]\s+\S+\s+(\d+)\.(\d+): (entry|ret\d+): \(0x[0-9a-f]+\) g=0x([0-9a-f]+)((?: a\d=-?\d+)*)(?: r=(-?\d+))?/;

export interface GoRetOptions {
  pid: number;
  program: GeneratedProgram;
  binary: string;
  slowThresholdMs?: number;
  limiter?: SessionLimiter;
  attachTimeoutMs?: number;
}

/** Same surface as UprobeSession, for Go targets. */
export class GoRetSession extends EventEmitter {
  readonly id: string;
  readonly events: UprobeEvent[] = [];
  stopReason: StopReason | undefined;
  lostEvents = 0;
  stderr = "";
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private done = false;
  private exited!: Promise<void>;
  private readonly starts = new Map<string, bigint>();
  private seen = 0;
  private readonly monoToWallNs: bigint;

  private constructor(
    readonly program: GeneratedProgram,
    private readonly opts: GoRetOptions,
  ) {
    super();
    this.id = `uprobe-go-${process.pid}-${nextGroup}`;
    this.monoToWallNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  }

  static async start(opts: GoRetOptions): Promise<GoRetSession> {
    const fn = opts.program.function;
    const { entry, rets } = await probePoints(opts.binary, fn);
    if (rets.length === 0) throw new DebugError("unsupported", `${fn.name} has no RET instruction (it never returns?)`);
    const buf = await readFile(opts.binary);
    const s = new GoRetSession(opts.program, opts);
    opts.limiter?.acquire(s.id);
    try {
      const tids = readdirSync(`/proc/${opts.pid}/task`).map(Number).filter((n) => n > 0);
      const script = traceScript({
        group: `coral_${process.pid}_${nextGroup++}`,
        pid: opts.pid,
        entry: fileOffset(buf, entry),
        rets: rets.map((r) => fileOffset(buf, r)),
        argCount: opts.program.argCount,
        captureReturn: opts.program.captureReturn,
        tids,
        durationS: Math.ceil(opts.program.durationMs / 1000) + 1,
      });
      await s.launch(script);
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  private launch(script: string): Promise<void> {
    const child = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    let resolveExited!: () => void;
    this.exited = new Promise((r) => (resolveExited = r));
    return new Promise<void>((ready, fail) => {
      let isReady = false;
      const attachTimer = setTimeout(() => fail(new DebugError("bpftrace_failed", "the uprobe events were not ready in time")), this.opts.attachTimeoutMs ?? 30_000);
      child.stderr?.setEncoding("utf8").on("data", (d: string) => {
        if (this.stderr.length < 64 * 1024) this.stderr += d;
      });
      createInterface({ input: child.stdout! }).on("line", (line) => {
        if (!isReady && line.startsWith('{"ev":"ready"')) {
          isReady = true;
          clearTimeout(attachTimer);
          this.timer = setTimeout(() => void this.finish("duration"), this.program.durationMs);
          ready();
          return;
        }
        this.onLine(line);
      });
      child.on("error", (err) => fail(new DebugError("bpftrace_failed", `cannot run unshare: ${err.message}`)));
      child.on("exit", (code) => {
        clearTimeout(attachTimer);
        if (!isReady) {
          const msg = this.stderr.trim();
          fail(new DebugError(/permission|not permitted/i.test(msg) ? "no_permission" : "bpftrace_failed", `uprobe events failed (${code}): ${msg}`));
        }
        if (!this.stopReason) this.stopReason = isReady ? "bpftrace_exit" : "error";
        this.finishLocal();
        resolveExited();
      });
    });
  }

  private onLine(line: string): void {
    if (this.done) return;
    const m = lineRe.exec(line);
    if (!m) return;
    const tid = Number(m[1]);
    const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt(m[3]!.padEnd(9, "0").slice(0, 9));
    const g = BigInt(`0x${m[5]}`).toString();
    const base = { ns, timeMs: Number((ns + this.monoToWallNs) / 1_000_000n), pid: this.opts.pid, tid, goroutine: g };
    if (m[4] === "entry") {
      this.seen++;
      if (this.seen % this.program.sampleRate !== 0) return;
      this.starts.set(g, ns);
      const args = m[6] ? [...m[6].matchAll(/a\d=(-?\d+)/g)].map((x) => x[1]!) : [];
      this.push({ type: "entry", ...base, ...(args.length ? { args } : {}) });
    } else {
      const start = this.starts.get(g);
      if (start === undefined) return;
      this.starts.delete(g);
      this.push({ type: "return", ...base, durationNs: Number(ns - start), ...(m[7] !== undefined ? { ret: m[7] } : {}) });
    }
  }

  private push(ev: UprobeEvent): void {
    this.events.push(ev);
    this.emit("event", ev);
    if (this.events.length >= this.program.maxEvents) void this.finish("max_events");
  }

  get running(): boolean {
    return !this.done;
  }

  async stop(): Promise<SessionSummary> {
    await this.finish("stopped");
    return this.summary();
  }

  private async finish(reason: StopReason): Promise<void> {
    if (!this.stopReason) this.stopReason = reason;
    this.finishLocal();
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await this.exited;
      clearTimeout(killer);
    }
  }

  private finishLocal(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.opts.limiter?.release(this.id);
    this.emit("end", this.stopReason);
  }

  summary(): SessionSummary {
    return summarize(this.events, {
      function: this.program.function.name,
      slowThresholdNs: (this.opts.slowThresholdMs ?? 100) * 1e6,
      lostEvents: this.lostEvents,
      stopReason: this.stopReason,
    });
  }
}
