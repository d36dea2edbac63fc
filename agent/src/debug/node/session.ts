// A debug session on one JavaScript function of a running Node process,
// through its V8 inspector: conditional breakpoints that record and return
// false (see recorder.ts), drained every ~200 ms into UprobeEvents, so the
// collectors, the store, the colony and the CLI treat it like a uprobe
// session. Whatever ends it (stop, deadline, max events, an error, the agent
// closing), every breakpoint is removed, the recorder taken out of the
// target, the debugger disabled and the inspector closed if we opened it.
// If the agent dies instead, CDP drops the breakpoints with the WebSocket and
// the recorder's watchdog removes itself and closes the inspector.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { readlinkSync } from "node:fs";
import { openInspector, type InspectorSession } from "../../profile/inspector.ts";
import { ProfileError } from "../../profile/errors.ts";
import { DebugError, LIMITS } from "../program.ts";
import { SessionLimiter, summarize, type SessionRequest, type SessionSummary, type StopReason, type UprobeEvent } from "../probe-session.ts";
import { argList, entryCondition, installExpression, drainExpression, removeExpression, returnCondition, type Drained, type RecorderConfig } from "./recorder.ts";
import { instrumentFunction, sameLines } from "./instrument.ts";
import { enableAndCollect, loadFunctions, matchFunction, type Cdp, type NodeFunction, type ScriptOptions } from "./scripts.ts";

export interface NodeSessionOptions extends SessionRequest {
  id: string;
  pid: number;
  /** A function name ("fetchUser", "Users.get") or file:line. */
  functionName: string;
  limiter?: SessionLimiter;
  /** New calls recorded per second at most (default 10000); more are counted as lost. */
  perSecond?: number;
  /** How long after the deadline the in-target watchdog cleans up if the agent is gone (default 15 s). */
  watchdogMarginMs?: number;
  /** Default 200. */
  drainEveryMs?: number;
  /** "auto" (default): rewrite the function in place when V8 allows it, else breakpoints; "breakpoints" always (benchmarks compare the two). */
  mechanism?: "auto" | "breakpoints";
}

type Session = InspectorSession & Cdp;

const inRange = (name: string, v: number, min: number, max: number) => {
  if (!Number.isInteger(v) || v < min || v > max) throw new DebugError("invalid_option", `${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
};

/** ProfileError (the inspector's) → DebugError, keeping the message. */
export function inspectorError(err: unknown): DebugError {
  if (err instanceof DebugError) return err;
  if (err instanceof ProfileError) return new DebugError(err.code === "process_exited" ? "process_not_found" : "unsupported", err.message);
  return new DebugError("unsupported", `the V8 inspector failed: ${(err as Error).message ?? String(err)}`);
}

/** The working directory of a process (to show paths relative to it), or undefined. */
export function cwdOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** What the one-per-process registry knows of a session (function sessions here, line sessions in line-session.ts). */
export interface ProcessSession {
  readonly opts: { id: string };
  readonly program: { function: { name: string } };
  /** The app's functions when the session attached. */
  functions: NodeFunction[];
}

/** The session running on each process: its inspector is ours while it runs (one per process). */
export const running = new Map<number, ProcessSession>();

/** Registers a session on its process, or says which one already runs there. */
export function claimProcess(pid: number, s: ProcessSession): void {
  const other = running.get(pid);
  if (other) throw new DebugError("limit_reached", `session ${other.opts.id} already traces ${other.program.function.name} in process ${pid}: one session per Node process at a time`);
  running.set(pid, s);
}

export function releaseProcess(pid: number, s: ProcessSession): void {
  if (running.get(pid) === s) running.delete(pid);
}

/**
 * Opens the inspector, lists the app's functions, and calls `use` with them;
 * closes everything after. While a session runs on the process, its list
 * (taken when it attached) is used instead, the inspector being that session's.
 */
export async function withNodeFunctions<T>(pid: number, options: ScriptOptions, use: (functions: NodeFunction[]) => T | Promise<T>): Promise<T> {
  const current = running.get(pid);
  if (current && !options.includeNodeModules) return use(current.functions);
  let session: Session;
  try {
    session = (await openInspector(pid)) as Session;
  } catch (err) {
    throw inspectorError(err);
  }
  try {
    const scripts = await enableAndCollect(session);
    const functions = await loadFunctions(session, scripts, { cwd: cwdOf(pid), ...options });
    return await use(functions);
  } finally {
    await session.send("Debugger.disable").catch(() => undefined);
    await session.close();
  }
}

/** The error for a spec that matched no function, or several. */
export function matchError(spec: string, all: readonly NodeFunction[], matches: readonly NodeFunction[]): DebugError {
  if (matches.length === 0) {
    const needle = spec.replace(/:\d+$/, "").toLowerCase();
    const close = all.filter((f) => f.label.toLowerCase().includes(needle)).slice(0, 20);
    return new DebugError(
      "function_not_found",
      `no JavaScript function ${JSON.stringify(spec)} in the app's scripts` + (close.length ? ` (close matches: ${close.map((f) => f.label).join(", ")})` : ` (${all.length} functions; coral debug functions lists them)`),
      close.map((f) => `${f.file}:${f.line}`),
    );
  }
  return new DebugError(
    "invalid_option",
    `${JSON.stringify(spec)} matches ${matches.length} functions: ${matches.slice(0, 20).map((f) => f.label).join(", ")}; name one as file:line`,
    matches.slice(0, 20).map((f) => `${f.file}:${f.line}`),
  );
}

export class NodeFunctionSession extends EventEmitter {
  readonly events: UprobeEvent[] = [];
  stopReason: StopReason | undefined;
  lostEvents = 0;
  /** What the collectors read of a session's program. */
  readonly program: { durationMs: number; argCount: number; sampleRate: number; maxEvents: number; isGo: false; function: { name: string } };
  fn: NodeFunction | undefined;
  /** The app's functions when the session attached. */
  functions: NodeFunction[] = [];
  private session: Session | undefined;
  private breakpoints: string[] = [];
  /** How calls are seen: the function rewritten in place (fast) or conditional breakpoints (when V8 refuses the rewrite). */
  method: "instrumented" | "breakpoints" = "breakpoints";
  /** The instrumented script and its original source, until it is put back. */
  private rewritten: { scriptId: string; original: string } | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  /** Ended and cleaned up. */
  private done = false;
  /** Records are taken (false once the event cap is reached). */
  private accepting = true;
  private ending: Promise<void> | undefined;
  private draining: Promise<void> = Promise.resolve();

  private constructor(readonly opts: NodeSessionOptions) {
    super();
    this.program = {
      durationMs: inRange("durationMs", opts.durationMs || LIMITS.defaultDurationMs, 1, LIMITS.maxDurationMs),
      argCount: inRange("captureArgs", opts.captureArgs ?? 0, 0, LIMITS.maxArgs),
      sampleRate: inRange("sampleRate", opts.sampleRate || 1, 1, LIMITS.maxSampleRate),
      maxEvents: inRange("maxEvents", opts.maxEvents || LIMITS.defaultMaxEvents, 1, LIMITS.maxMaxEvents),
      isGo: false,
      function: { name: opts.functionName },
    };
  }

  /** Opens the inspector, finds the function, installs the recorder and breakpoints; resolves once calls are being recorded. */
  static async start(opts: NodeSessionOptions): Promise<NodeFunctionSession> {
    const s = new NodeFunctionSession(opts);
    if (running.has(opts.pid)) claimProcess(opts.pid, s); // throws, naming the other
    opts.limiter?.acquire(opts.id);
    claimProcess(opts.pid, s);
    try {
      await s.attach();
    } catch (err) {
      await s.cleanup();
      opts.limiter?.release(opts.id);
      releaseProcess(opts.pid, s);
      throw inspectorError(err);
    }
    return s;
  }

  private async attach(): Promise<void> {
    const { pid } = this.opts;
    try {
      this.session = (await openInspector(pid)) as Session;
    } catch (err) {
      throw inspectorError(err);
    }
    const cdp = this.session;
    const functions = (this.functions = await loadFunctions(cdp, await enableAndCollect(cdp), { cwd: cwdOf(pid) }));
    const matches = matchFunction(functions, this.opts.functionName);
    if (matches.length !== 1) throw matchError(this.opts.functionName, functions, matches);
    const fn = (this.fn = matches[0]!);
    this.program.function.name = fn.label;
    const recorder = (extra: Partial<RecorderConfig> = {}) =>
      this.installRecorder(cdp, {
        sampleRate: this.program.sampleRate,
        perSecond: this.opts.perSecond ?? 10_000,
        buffer: Math.min(this.program.maxEvents + 1, 100_000),
        async: fn.async,
        captureArgs: this.program.argCount > 0,
        watchdogMs: this.program.durationMs + (this.opts.watchdogMarginMs ?? 15_000),
        closeInspector: cdp.openedByUs,
        ...extra,
      });
    const rewritten = this.opts.mechanism === "breakpoints" ? undefined : await this.instrument(cdp, fn);
    if (rewritten) {
      await recorder({ key: rewritten.key, restore: { scriptId: fn.scriptId, source: rewritten.original } });
      this.method = "instrumented";
    } else await this.setBreakpoints(cdp, fn, recorder);
    this.drainTimer = setInterval(() => void this.drain(), this.opts.drainEveryMs ?? 200);
    this.deadline = setTimeout(() => void this.finish("duration"), this.program.durationMs);
    // The connection dropping (the target exited) ends the session.
    this.session.on("Inspector.detached", () => void this.finish("bpftrace_exit"));
  }

  /**
   * Rewrites the function in the running process so it calls the recorder
   * itself (instrument.ts); undefined when V8 refuses the edit (an async
   * instance suspended in an await, the function on the stack) or the
   * source cannot be parsed: breakpoints then.
   */
  private async instrument(cdp: Session, fn: NodeFunction): Promise<{ key: string; original: string } | undefined> {
    const key = `__coral_fn_${randomBytes(6).toString("hex")}`;
    let original: string;
    try {
      original = (await cdp.send<{ scriptSource: string }>("Debugger.getScriptSource", { scriptId: fn.scriptId })).scriptSource;
    } catch {
      return undefined;
    }
    const patched = instrumentFunction(original, fn.start, { key, async: fn.async, argsExpression: this.program.argCount > 0 ? argList(fn.params, this.program.argCount) : "null" });
    if (!patched || !sameLines(original, patched)) return undefined;
    const r = await cdp.send<{ status?: string; exceptionDetails?: unknown }>("Debugger.setScriptSource", { scriptId: fn.scriptId, scriptSource: patched }).catch(() => undefined);
    // Older protocol versions answer without a status: success is no exception.
    if (!r || r.exceptionDetails || (r.status !== undefined && r.status !== "Ok")) return undefined;
    this.rewritten = { scriptId: fn.scriptId, original };
    return { key, original };
  }

  private async installRecorder(cdp: Session, cfg: RecorderConfig): Promise<void> {
    const installed = await cdp.send<{ result: { value?: unknown }; exceptionDetails?: { text?: string; exception?: { description?: string } } }>("Runtime.evaluate", {
      expression: installExpression(cfg),
      includeCommandLineAPI: true,
      returnByValue: true,
    });
    if (installed.result.value !== "ok")
      throw new DebugError("unsupported", `cannot install the recorder in process ${this.opts.pid}: ${installed.exceptionDetails?.exception?.description ?? installed.exceptionDetails?.text ?? "no result"}`);
  }

  /** The breakpoint path: one at the body's first statement, one at each return location of a sync function. */
  private async setBreakpoints(cdp: Session, fn: NodeFunction, recorder: () => Promise<void>): Promise<void> {
    const { locations } = await cdp.send<{ locations: { lineNumber: number; columnNumber: number; type?: string }[] }>("Debugger.getPossibleBreakpoints", {
      // From the body: a default parameter's code runs only when its argument is missing.
      start: { scriptId: fn.scriptId, lineNumber: fn.body.line, columnNumber: fn.body.column },
      end: { scriptId: fn.scriptId, lineNumber: fn.end.line, columnNumber: fn.end.column },
      restrictToFunction: true,
    });
    const entry = locations[0];
    if (!entry) throw new DebugError("unsupported", `${fn.label} has no code V8 can break on`);
    const returns = fn.async ? [] : locations.filter((l) => l.type === "return");
    if (!fn.async && returns.length === 0) throw new DebugError("unsupported", `${fn.label} has no return location (does it always throw?)`);
    await recorder();
    const enter = entryCondition(fn.async, fn.params, this.program.argCount);
    const sameSpot = (l: { lineNumber: number; columnNumber: number }) => l.lineNumber === entry.lineNumber && l.columnNumber === entry.columnNumber;
    // An empty body: entry and return are one location, one breakpoint does both.
    const points = [{ at: entry, condition: returns.some(sameSpot) ? `(${enter}, ${returnCondition()})` : enter }, ...returns.filter((l) => !sameSpot(l)).map((at) => ({ at, condition: returnCondition() }))];
    for (const p of points) {
      const { breakpointId } = await cdp.send<{ breakpointId: string }>("Debugger.setBreakpoint", {
        location: { scriptId: fn.scriptId, lineNumber: p.at.lineNumber, columnNumber: p.at.columnNumber },
        condition: p.condition,
      });
      this.breakpoints.push(breakpointId);
    }
  }

  /** Reads the target's records into events (serialised: one drain at a time). */
  private drain(): Promise<void> {
    this.draining = this.draining.then(async () => {
      const cdp = this.session;
      if (!cdp) return;
      let got: Drained | null | undefined;
      try {
        const r = await cdp.send<{ result: { value?: Drained | null } }>("Runtime.evaluate", { expression: drainExpression, returnByValue: true });
        got = r.result.value;
      } catch {
        if (!this.done) void this.finish("bpftrace_exit"); // the connection is gone: the process exited or closed it
        return;
      }
      if (!got) return;
      this.lostEvents += got.dropped;
      const { pid } = this.opts;
      for (const rec of got.ev) {
        if (!this.accepting) break;
        if (rec[0] !== 0 && rec[0] !== 1) continue; // line records: not this session's
        const ns = BigInt(Math.round(rec[1] * 1e6));
        const ev: UprobeEvent =
          rec[0] === 0
            ? { type: "entry", ns, timeMs: rec[1], pid, tid: pid, ...(rec[2] ? { args: rec[2] } : {}) }
            : { type: "return", ns, timeMs: rec[1], pid, tid: pid, durationNs: Math.round(rec[2] * 1e6), ...(rec[3] ? { ret: rec[3] } : {}) };
        this.events.push(ev);
        this.emit("event", ev);
        if (this.events.length >= this.program.maxEvents) {
          this.accepting = false;
          void this.finish("max_events");
          break;
        }
      }
    });
    return this.draining;
  }

  get running(): boolean {
    return !this.done;
  }

  /** Stops (idempotent) once the records taken so far are read and the target is clean. */
  async stop(): Promise<SessionSummary> {
    await this.finish("stopped");
    return this.summary();
  }

  private finish(reason: StopReason): Promise<void> {
    this.ending ??= (async () => {
      this.stopReason ??= reason;
      clearTimeout(this.deadline);
      clearInterval(this.drainTimer);
      // No new calls once the breakpoints are gone; async calls in flight still end (up to 2 s).
      await this.removeBreakpoints();
      if (reason !== "max_events" && this.fn?.async) {
        const until = Date.now() + 2000;
        while (Date.now() < until && this.session && (await this.inFlight()) > 0) {
          await this.drain();
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      if (reason !== "max_events") await this.drain();
      this.accepting = false;
      await this.cleanup();
      this.done = true;
      this.opts.limiter?.release(this.opts.id);
      releaseProcess(this.opts.pid, this);
      this.emit("end", this.stopReason);
    })();
    return this.ending;
  }

  private async inFlight(): Promise<number> {
    try {
      const r = await this.session!.send<{ result: { value?: number } }>("Runtime.evaluate", {
        expression: `(globalThis.__coral ? globalThis.__coral.inflight : 0)`,
        returnByValue: true,
      });
      return r.result.value ?? 0;
    } catch {
      return 0;
    }
  }

  private async removeBreakpoints(): Promise<void> {
    if (this.session) await this.removeBreakpointsWith(this.session);
  }

  /** Everything out of the target, whatever state the session is in. */
  private async cleanup(): Promise<void> {
    const cdp = this.session;
    if (!cdp) return;
    this.session = undefined;
    await this.removeBreakpointsWith(cdp);
    await cdp.send("Runtime.evaluate", { expression: removeExpression }).catch(() => undefined);
    await this.restoreSource(cdp);
    await cdp.send("Debugger.disable").catch(() => undefined);
    await cdp.close();
  }

  /**
   * Puts the instrumented function's source back. The recorder is gone
   * already, so the rewritten code is inert meanwhile; V8 refuses while an
   * async instance is suspended, so it is tried for up to 2 s, and the inert
   * rewrite stays when that never succeeds.
   */
  private async restoreSource(cdp: Session): Promise<void> {
    const r = this.rewritten;
    if (!r) return;
    this.rewritten = undefined;
    const until = Date.now() + 2000;
    for (;;) {
      const res = await cdp.send<{ status?: string; exceptionDetails?: unknown }>("Debugger.setScriptSource", { scriptId: r.scriptId, scriptSource: r.original }).catch(() => undefined);
      if (!res || (!res.exceptionDetails && (res.status === undefined || res.status === "Ok"))) return;
      if (Date.now() > until) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private async removeBreakpointsWith(cdp: Session): Promise<void> {
    const ids = this.breakpoints;
    this.breakpoints = [];
    await Promise.all(ids.map((breakpointId) => cdp.send("Debugger.removeBreakpoint", { breakpointId }).catch(() => undefined)));
  }

  summary(): SessionSummary {
    const s = summarize(this.events, {
      function: this.program.function.name,
      slowThresholdNs: (this.opts.slowThresholdMs ?? 100) * 1e6,
      lostEvents: this.lostEvents,
      stopReason: this.stopReason,
    });
    return { ...s, processCount: 1 };
  }
}
