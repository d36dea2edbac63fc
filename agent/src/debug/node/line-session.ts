// Logpoints and snapshots on one line of a running Node process, through its
// V8 inspector, with the same lifecycle as a function session (session.ts):
// the recorder installed in the target, a breakpoint whose condition records
// and returns false, drained every ~200 ms into UprobeEvents ("log" with the
// expression's formatted value, "snapshot" with the names in scope as JSON),
// everything removed whatever ends the session, the watchdog if the agent dies.
//
// Side effects: V8 checks them (throwOnSideEffect) only for
// Debugger.evaluateOnCallFrame, not for breakpoint conditions. So the first
// breakpoint pauses: on the first hit (where the condition holds) the
// condition and the expression are evaluated on the paused frame with
// throwOnSideEffect and a 50 ms timeout. One with a side effect, or one that
// throws, ends the session with the reason and the breakpoint removed;
// otherwise the hit is recorded and the pausing breakpoint replaced by the
// recording one. The target is resumed in every case (finally), after about
// a millisecond. Later hits whose expression throws record "!Error: …".
import { EventEmitter } from "node:events";
import { openInspector, type InspectorSession } from "../../profile/inspector.ts";
import { DebugError, LIMITS } from "../program.ts";
import { summarizeCalls, type SessionLimiter, type SessionSummary, type StopReason, type UprobeEvent } from "../probe-session.ts";
import { resolveLine, type ResolvedLine } from "./lines.ts";
import { drainExpression, installExpression, logpointCondition, removeExpression, snapshotCondition, type Drained } from "./recorder.ts";
import { expressionProblem, namesInScope, offsetOf, parseProgram, wrapExpression, type ScopeName } from "./scope.ts";
import { enableAndCollect, loadFunctions, type Cdp, type NodeFunction } from "./scripts.ts";
import { claimProcess, cwdOf, inspectorError, releaseProcess, running, type ProcessSession } from "./session.ts";

export type LineKind = "logpoint" | "snapshot";

/** Snapshots a session takes at most. */
export const maxSnapshots = 50;

export interface NodeLineOptions {
  id: string;
  pid: number;
  kind: LineKind;
  /** file:line, the file as coral debug functions shows it (or a suffix), a TypeScript source through its source map. */
  location: string;
  /** Logpoints: what is recorded each time the line runs. */
  expression?: string;
  /** Only the hits where this holds. */
  condition?: string;
  /** Snapshots: how many (1..50, default 1); the session ends once they are taken. */
  snapshotCount?: number;
  durationMs?: number;
  /** Logpoints: values recorded at most (default 10000). */
  maxEvents?: number;
  limiter?: SessionLimiter;
  /** New records per second at most (default 10000); more are counted as lost. */
  perSecond?: number;
  /** How long after the deadline the in-target watchdog cleans up if the agent is gone (default 15 s). */
  watchdogMarginMs?: number;
  /** Default 200. */
  drainEveryMs?: number;
  /** How long the first-hit check may evaluate the condition or the expression (default 50 ms). */
  checkTimeoutMs?: number;
}

type Session = InspectorSession & Cdp;

interface Paused {
  reason: string;
  hitBreakpoints?: string[];
  callFrames: { callFrameId: string }[];
}

interface Evaluated {
  result: { type: string; value?: unknown; description?: string };
  exceptionDetails?: { text?: string; exception?: { description?: string; className?: string } };
}

const inRange = (name: string, v: number, min: number, max: number) => {
  if (!Number.isInteger(v) || v < min || v > max) throw new DebugError("invalid_option", `${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
};

/** Checks a line request before anything touches the process: the kind, the counts, and that the expressions parse. */
export function checkLineRequest(opts: Pick<NodeLineOptions, "kind" | "location" | "expression" | "condition" | "snapshotCount">): void {
  if (opts.kind !== "logpoint" && opts.kind !== "snapshot") throw new DebugError("invalid_option", `kind must be logpoint or snapshot, got ${JSON.stringify(opts.kind)}`);
  if (opts.kind === "logpoint") {
    const problem = expressionProblem(opts.expression ?? "");
    if (problem) throw new DebugError("invalid_option", `the expression ${problem}`);
  } else if (opts.expression) throw new DebugError("invalid_option", "a snapshot takes no expression (it captures the arguments and locals)");
  if (opts.condition) {
    const problem = expressionProblem(opts.condition);
    if (problem) throw new DebugError("invalid_option", `the condition ${problem}`);
  }
  if (opts.kind === "snapshot") inRange("snapshot count", opts.snapshotCount || 1, 1, maxSnapshots);
  else if (opts.snapshotCount) throw new DebugError("invalid_option", "a snapshot count is for snapshots only");
}

/** The first line of an exception's description ("TypeError: x is not a function"). */
const firstLine = (e: Evaluated["exceptionDetails"]) => (e?.exception?.description ?? e?.text ?? "an exception").split("\n")[0]!.slice(0, 300);

export class NodeLineSession extends EventEmitter implements ProcessSession {
  readonly events: UprobeEvent[] = [];
  stopReason: StopReason | undefined;
  /** Why the session ended, in words, when the stop reason alone does not say it (a rejected expression). */
  stopDetail: string | undefined;
  lostEvents = 0;
  readonly program: { durationMs: number; argCount: 0; sampleRate: 1; maxEvents: number; isGo: false; function: { name: string } };
  line: ResolvedLine | undefined;
  /** Snapshots: the names captured. */
  names: ScopeName[] = [];
  functions: NodeFunction[] = [];
  /** The first hit was checked and recorded; the recording breakpoint is set. */
  checked = false;
  private session: Session | undefined;
  private breakpoints: string[] = [];
  private checkBreakpoint: string | undefined;
  private conditionChecked = false;
  private recording = "";
  private offPaused: (() => void) | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private done = false;
  private accepting = true;
  private ending: Promise<void> | undefined;
  private draining: Promise<void> = Promise.resolve();

  private constructor(readonly opts: NodeLineOptions) {
    super();
    const snapshots = opts.kind === "snapshot" ? inRange("snapshot count", opts.snapshotCount || 1, 1, maxSnapshots) : 0;
    this.program = {
      durationMs: inRange("durationMs", opts.durationMs || LIMITS.defaultDurationMs, 1, LIMITS.maxDurationMs),
      argCount: 0,
      sampleRate: 1,
      maxEvents: snapshots || inRange("maxEvents", opts.maxEvents || LIMITS.defaultMaxEvents, 1, LIMITS.maxMaxEvents),
      isGo: false,
      function: { name: opts.location },
    };
  }

  /** Checks the request, opens the inspector, resolves the line and sets the (checking) breakpoint; resolves before the line first runs. */
  static async start(opts: NodeLineOptions): Promise<NodeLineSession> {
    checkLineRequest(opts);
    const s = new NodeLineSession(opts);
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

  get snapshotCount(): number {
    return this.opts.kind === "snapshot" ? this.program.maxEvents : 0;
  }

  private async attach(): Promise<void> {
    const { pid } = this.opts;
    try {
      this.session = (await openInspector(pid)) as Session;
    } catch (err) {
      throw inspectorError(err);
    }
    const cdp = this.session;
    const cwd = cwdOf(pid);
    const scripts = await enableAndCollect(cdp);
    const line = (this.line = await resolveLine(cdp, scripts, this.opts.location, cwd));
    this.program.function.name = line.where;
    this.functions = await loadFunctions(cdp, scripts, { cwd });
    if (this.opts.kind === "snapshot") {
      const { scriptSource } = await cdp.send<{ scriptSource: string }>("Debugger.getScriptSource", { scriptId: line.scriptId });
      const ast = parseProgram(scriptSource);
      if (!ast) throw new DebugError("unsupported", `cannot parse the script of ${line.where} (${line.script}) to find the names in scope`);
      this.names = namesInScope(ast, offsetOf(scriptSource, line.location.lineNumber, line.location.columnNumber));
      this.recording = snapshotCondition(this.names, this.opts.condition);
    } else this.recording = logpointCondition(this.opts.expression!, this.opts.condition);
    const installed = await cdp.send<{ result: { value?: unknown }; exceptionDetails?: Evaluated["exceptionDetails"] }>("Runtime.evaluate", {
      expression: installExpression({
        sampleRate: 1,
        perSecond: this.opts.perSecond ?? 10_000,
        buffer: Math.min(this.program.maxEvents + 1, 100_000),
        async: false,
        captureArgs: false,
        watchdogMs: this.program.durationMs + (this.opts.watchdogMarginMs ?? 15_000),
        closeInspector: cdp.openedByUs,
        snapshots: this.snapshotCount,
      }),
      includeCommandLineAPI: true,
      returnByValue: true,
    });
    if (installed.result.value !== "ok") throw new DebugError("unsupported", `cannot install the recorder in process ${pid}: ${firstLine(installed.exceptionDetails)}`);
    this.offPaused = cdp.on("Debugger.paused", (p) => void this.onPaused(p as Paused));
    // The first breakpoint pauses (once), for the side-effect check; no condition yet: it is checked first too.
    this.checkBreakpoint = await this.setBreakpoint(undefined);
    this.drainTimer = setInterval(() => void this.drain(), this.opts.drainEveryMs ?? 200);
    this.deadline = setTimeout(() => void this.finish("duration"), this.program.durationMs);
    cdp.on("Inspector.detached", () => void this.finish("bpftrace_exit"));
  }

  private async setBreakpoint(condition: string | undefined): Promise<string> {
    const { line } = this;
    const { breakpointId } = await this.session!.send<{ breakpointId: string }>("Debugger.setBreakpoint", {
      location: { scriptId: line!.scriptId, lineNumber: line!.location.lineNumber, columnNumber: line!.location.columnNumber },
      ...(condition ? { condition } : {}),
    });
    this.breakpoints.push(breakpointId);
    return breakpointId;
  }

  private async removeBreakpoint(id: string | undefined): Promise<void> {
    if (!id || !this.session) return;
    this.breakpoints = this.breakpoints.filter((b) => b !== id);
    await this.session.send("Debugger.removeBreakpoint", { breakpointId: id }).catch(() => undefined);
  }

  /** Evaluates `text` on the paused frame without side effects; the problem in words, or the value. */
  private async evaluate(frame: string, text: string): Promise<{ problem: string } | { value: Evaluated["result"] }> {
    const r = await this.session!.send<Evaluated>("Debugger.evaluateOnCallFrame", {
      callFrameId: frame,
      expression: wrapExpression(text),
      throwOnSideEffect: true,
      timeout: this.opts.checkTimeoutMs ?? 50,
      silent: true,
    });
    if (!r.exceptionDetails) return { value: r.result };
    const error = firstLine(r.exceptionDetails);
    if (/side-effect/i.test(error)) return { problem: `side effects: ${text} (${error})` };
    if (/terminated/i.test(error)) return { problem: `took longer than ${this.opts.checkTimeoutMs ?? 50} ms: ${text}` };
    return { problem: `throws at ${this.line!.where}: ${error}` };
  }

  /**
   * A pause: ours (the check breakpoint's first hit) or another (a
   * `debugger` statement while the debugger is enabled), resumed at once.
   * The target is resumed in every case.
   */
  private async onPaused(p: Paused): Promise<void> {
    const cdp = this.session;
    let failure: string | undefined;
    try {
      if (!cdp || this.checked || this.done || !this.checkBreakpoint || !p.hitBreakpoints?.includes(this.checkBreakpoint)) return;
      const frame = p.callFrames[0]?.callFrameId;
      if (!frame) return;
      const { condition, expression, kind } = this.opts;
      if (condition && !this.conditionChecked) {
        const c = await this.evaluate(frame, condition);
        if ("problem" in c) {
          failure = `the condition ${c.problem.startsWith("side") ? `has ${c.problem}; conditions are evaluated only when they have no side effects` : c.problem}`;
          return;
        }
        this.conditionChecked = true;
        // Not this time: pause again only where the condition (now known to be side-effect-free) holds.
        if (!(await this.truthy(frame, condition))) {
          await this.removeBreakpoint(this.checkBreakpoint);
          this.checkBreakpoint = await this.setBreakpoint(condition);
          return;
        }
      }
      if (kind === "logpoint") {
        const e = await this.evaluate(frame, expression!);
        if ("problem" in e) {
          failure = `the expression ${e.problem.startsWith("side") ? `has ${e.problem}; logpoints evaluate only side-effect-free expressions` : e.problem}`;
          return;
        }
      }
      // Checked: this hit is recorded, and the recording breakpoint replaces the pausing one.
      await cdp.send("Debugger.evaluateOnCallFrame", { callFrameId: frame, expression: this.recording, silent: true });
      await this.removeBreakpoint(this.checkBreakpoint);
      this.checkBreakpoint = undefined;
      await this.setBreakpoint(this.recording);
      this.checked = true;
    } catch (err) {
      failure = `the first-hit check failed: ${(err as Error).message}`;
    } finally {
      await cdp?.send("Debugger.resume").catch(() => undefined);
      // A session already ending (stopped meanwhile) keeps its own reason.
      if (failure && !this.ending) {
        this.stopDetail = failure;
        void this.finish("error");
      }
    }
  }

  private async truthy(frame: string, text: string): Promise<boolean> {
    const r = await this.session!.send<Evaluated>("Debugger.evaluateOnCallFrame", {
      callFrameId: frame,
      expression: `!!${wrapExpression(text)}`,
      throwOnSideEffect: true,
      timeout: this.opts.checkTimeoutMs ?? 50,
      silent: true,
      returnByValue: true,
    });
    return r.result.value === true;
  }

  /** Reads the target's records into events (one drain at a time). */
  private drain(): Promise<void> {
    this.draining = this.draining.then(async () => {
      const cdp = this.session;
      if (!cdp) return;
      let got: Drained | null | undefined;
      try {
        got = (await cdp.send<{ result: { value?: Drained | null } }>("Runtime.evaluate", { expression: drainExpression, returnByValue: true })).result.value;
      } catch {
        if (!this.done) void this.finish("bpftrace_exit");
        return;
      }
      if (!got) return;
      this.lostEvents += got.dropped;
      const { pid } = this.opts;
      for (const rec of got.ev) {
        if (!this.accepting) break;
        if (rec[0] !== 2 && rec[0] !== 3) continue;
        const ev: UprobeEvent = {
          type: rec[0] === 2 ? "log" : "snapshot",
          ns: BigInt(Math.round(rec[1] * 1e6)),
          timeMs: rec[1],
          pid,
          tid: pid,
          value: rec[0] === 2 ? rec[2] : JSON.stringify(rec[2]),
        };
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

  async stop(): Promise<SessionSummary> {
    await this.finish("stopped");
    return this.summary();
  }

  private finish(reason: StopReason): Promise<void> {
    this.ending ??= (async () => {
      this.stopReason ??= reason;
      clearTimeout(this.deadline);
      clearInterval(this.drainTimer);
      if (this.session) await Promise.all(this.breakpoints.splice(0).map((breakpointId) => this.session!.send("Debugger.removeBreakpoint", { breakpointId }).catch(() => undefined)));
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

  /** Everything out of the target, whatever state the session is in; a pause still held is resumed. */
  private async cleanup(): Promise<void> {
    const cdp = this.session;
    if (!cdp) return;
    this.session = undefined;
    await Promise.all(this.breakpoints.splice(0).map((breakpointId) => cdp.send("Debugger.removeBreakpoint", { breakpointId }).catch(() => undefined)));
    await cdp.send("Runtime.evaluate", { expression: removeExpression }).catch(() => undefined);
    await cdp.send("Debugger.resume").catch(() => undefined);
    await cdp.send("Debugger.disable").catch(() => undefined);
    this.offPaused?.();
    await cdp.close();
  }

  summary(): SessionSummary {
    const s = summarizeCalls(this.events.length, [], { function: this.program.function.name, slowThresholdNs: 0, lostEvents: this.lostEvents, stopReason: this.stopReason });
    return { ...s, processCount: 1 };
  }
}
