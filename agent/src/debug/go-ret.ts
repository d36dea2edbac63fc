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
//
// Stopping drains: SIGTERM makes the script disable the probes and write an
// end mark into the instance's buffer; every call recorded before it is read
// ahead of the mark, and the session ends the script (SIGINT) once the mark
// arrives. SIGINT alone ends it at once.
import { execFile } from "node:child_process";
import { randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { promisify } from "node:util";
import { parseElf, type FunctionInfo } from "./elf.ts";
import { DebugError, type GeneratedProgram } from "./program.ts";
import { ProbeSession, type ProbeSessionOptions } from "./probe-session.ts";
import { noCallsNote } from "./quiet-note.ts";

const run = promisify(execFile);

export interface GoProbePoints {
  /** Where the entry probe goes: after the stack-check prologue (see bodyStart). */
  entry: bigint;
  rets: bigint[];
}

/**
 * Entry and RET probe addresses of one function, from objdump's disassembly
 * of [address, address + size). Works without a symbol table: in a stripped
 * binary the bounds come from the pclntab (up to the next function, so the
 * range may end in int3 padding, which holds no RET).
 */
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
  // An entry probe between instructions would corrupt the program: the first one must be at the entry.
  const first = /^\s+([0-9a-f]+):\t/m.exec(out);
  if (!first || BigInt(`0x${first[1]}`) !== start)
    throw new DebugError("unsupported", `objdump did not disassemble ${fn.name} from its entry 0x${start.toString(16)}`);
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
// Digits only (the stale-group cleanup parses coral_<pid>_<digits>); unique per module
// instance, since a process may load this module more than once (test workers reuse forks).
const groupTag = String(randomInt(100_000, 1_000_000));

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
    // Under set -e a failing `wait` (the reader killed: 143) would end the
    // trap before the probes are removed, leaving them in the kernel.
    "cleanup() {",
    "  set +e",
    '  if [ -n "$CAT" ]; then kill "$CAT" 2>/dev/null; wait "$CAT" 2>/dev/null; fi',
    '  echo 0 > "$I/events/$G/enable" 2>/dev/null',
    '  rmdir "$I" 2>/dev/null',
    ...events.map((e) => `  echo "-:$G/${e}" >> "$T/uprobe_events" 2>/dev/null`),
    '  umount "$T" 2>/dev/null; rmdir "$T" 2>/dev/null',
    "}",
    "trap cleanup EXIT",
    "trap 'exit 0' INT",
    `trap 'echo 0 > "$I/events/$G/enable"; echo ${endMark} > "$I/trace_marker"' TERM`,
    // Probes left by an agent that died without cleaning up (its pid is in the group name).
    'for d in "$T"/instances/coral_*; do [ -d "$d" ] || continue; p=${d##*/coral_}; p=${p%%_*}; [ -d "/proc/$p" ] && continue; echo 0 > "$d/events/enable" 2>/dev/null || true; rmdir "$d" 2>/dev/null || true; done',
    'for g in $(sed -n "s/^p:\\(coral_[0-9]*_[0-9]*\\/[a-z0-9]*\\) .*/\\1/p" "$T/uprobe_events"); do p=${g#coral_}; p=${p%%_*}; [ -d "/proc/$p" ] || echo "-:$g" >> "$T/uprobe_events" 2>/dev/null || true; done',
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
    // A trapped signal interrupts wait; keep reading until the reader ends.
    'while kill -0 "$CAT" 2>/dev/null; do wait "$CAT" || true; done',
  ].join("\n");
}

/** Deepest recursion one goroutine may hold open in a session. */
const maxOpenCalls = 10_000;

/** Written to trace_marker after the probes are disabled: nothing of the session follows it. */
const endMark = "coral_session_end";

const lineRe = /-(\d+)\s+\[\d+\]\s+\S+\s+(\d+)\.(\d+): (entry|ret\d+): \(0x[0-9a-f]+\) g=0x([0-9a-f]+)((?: a\d=-?\d+)*)(?: r=(-?\d+))?/;

export interface GoRetOptions extends ProbeSessionOptions {
  pid: number;
  /** The service's process set (default [pid]); event-fork follows children forked later. */
  pids?: readonly number[];
  program: GeneratedProgram;
  binary: string;
}

/** Same surface as UprobeSession, for Go targets. */
export class GoRetSession extends ProbeSession {
  /** Open calls per goroutine, innermost last: a start time when sampled, null when not. */
  private readonly open = new Map<string, (bigint | null)[]>();
  private seen = 0;

  private constructor(
    program: GeneratedProgram,
    private readonly opts: GoRetOptions,
  ) {
    super(program, opts, "uprobe-go");
  }

  static async start(opts: GoRetOptions): Promise<GoRetSession> {
    const fn = opts.program.function;
    const { entry, rets } = await probePoints(opts.binary, fn);
    if (rets.length === 0) throw new DebugError("unsupported", `${fn.name} has no RET instruction (it never returns?)`);
    const buf = await readFile(opts.binary);
    // set_event_pid takes tasks: every thread of every process of the set.
    const tids = (opts.pids ?? [opts.pid]).flatMap((p) => {
      try {
        return readdirSync(`/proc/${p}/task`).map(Number).filter((n) => n > 0);
      } catch {
        return p === opts.pid ? [opts.pid] : []; // a worker gone since the set was read
      }
    });
    const script = traceScript({
      group: `coral_${process.pid}_${groupTag}${nextGroup++}`,
      pid: opts.pid,
      entry: fileOffset(buf, entry),
      rets: rets.map((r) => fileOffset(buf, r)),
      argCount: opts.program.argCount,
      captureReturn: opts.program.captureReturn,
      tids,
      durationS: Math.ceil(opts.program.durationMs / 1000) + 1,
    });
    const s = new GoRetSession(opts.program, opts);
    await s.begin({ command: "unshare", args: ["-m", "--propagation", "private", "sh", "-c", script], drainSignal: "SIGTERM", stopSignal: "SIGINT" });
    s.readyAtMs = Date.now();
    return s;
  }

  private readyAtMs = Infinity;

  /** After 5 s without a call: processes running the same binary outside the set, if any (tracefs cannot see their calls). */
  protected override quietNote(): string | undefined {
    if (Date.now() - this.readyAtMs < 5000) return undefined;
    return noCallsNote({ functionName: this.program.function.name, pid: this.opts.pid, probed: new Set(this.program.pids) });
  }

  /** Threads to their process (the trace line names the thread only); cached, a gone thread stays itself. */
  private readonly tgids = new Map<number, number>();
  private processOf(tid: number): number {
    let pid = this.tgids.get(tid);
    if (pid === undefined) {
      try {
        pid = Number(/^Tgid:\s+(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, "utf8"))?.[1] ?? tid);
      } catch {
        pid = tid;
      }
      if (this.tgids.size > 100_000) this.tgids.clear();
      this.tgids.set(tid, pid);
    }
    return pid;
  }

  protected startError(code: number | null): DebugError {
    const msg = this.stderr.trim();
    return new DebugError(/permission|not permitted/i.test(msg) ? "no_permission" : "bpftrace_failed", `uprobe events failed (${code}): ${msg}`);
  }

  protected onLine(line: string): void {
    if (line.includes(`tracing_mark_write: ${endMark}`)) {
      this.endTracer();
      return;
    }
    const m = lineRe.exec(line);
    if (!m) return;
    const tid = Number(m[1]);
    const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt(m[3]!.padEnd(9, "0").slice(0, 9));
    const g = BigInt(`0x${m[5]}`).toString();
    const base = { ns, timeMs: Number((ns + this.monoToWallNs) / 1_000_000n), pid: this.processOf(tid), tid, goroutine: g };
    if (m[4] === "entry") {
      this.seen++;
      const sampled = this.seen % this.program.sampleRate === 0;
      const stack = this.open.get(g) ?? [];
      // A goroutine that panicked out of the function never returns: bound what it leaves open.
      if (stack.length >= maxOpenCalls) stack.shift();
      stack.push(sampled ? ns : null);
      this.open.set(g, stack);
      if (!sampled) return;
      const args = m[6] ? [...m[6].matchAll(/a\d=(-?\d+)/g)].map((x) => x[1]!) : [];
      this.push({ type: "entry", ...base, ...(args.length ? { args } : {}) });
    } else {
      // RET probes also fire for calls entered before the session: those find no open call.
      const stack = this.open.get(g);
      if (!stack?.length) return;
      const start = stack.pop();
      if (stack.length === 0) this.open.delete(g);
      if (start === null || start === undefined) return;
      this.push({ type: "return", ...base, durationNs: Number(ns - start), ...(m[7] !== undefined ? { ret: m[7] } : {}) });
    }
  }
}
