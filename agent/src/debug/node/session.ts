// A debug session on one JavaScript function of a running Node process,
// through its V8 inspector: conditional breakpoints that record and return
// false (see recorder.ts), drained every ~200 ms into UprobeEvents, so the
// collectors, the store, the colony and the CLI treat it like a uprobe
// session. Whatever ends it (stop, deadline, max events, an error, the agent
// closing), every breakpoint is removed, the recorder taken out of the
// target, the debugger disabled and the inspector closed if we opened it.
// If the agent dies instead, CDP drops the breakpoints with the WebSocket and
// the recorder's watchdog removes itself and closes the inspector. What both
// kinds of Node session share (the inspector opened through the app's Coral
// SDK when it runs one, else SIGUSR1; draining; ending) is in
// inspector-session.ts.
import { randomBytes } from "node:crypto";
import { openInspector, type InspectorOptions } from "../../profile/inspector.ts";
import { DebugError, LIMITS } from "../program.ts";
import { summarize, type SessionRequest, type SessionSummary, type StopReason, type UprobeEvent } from "../probe-session.ts";
import { argList, entryCondition, returnCondition, type RecorderConfig, type RecorderRecord } from "./recorder.ts";
import { instrumentFunction, sameLines } from "./instrument.ts";
import { cwdOf, inRange, inspectorError, NodeInspectorSession, running, type NodeSessionCommon, type Session } from "./inspector-session.ts";
import { enableAndCollect, loadFunctions, matchFunction, type NodeFunction, type ScriptOptions } from "./scripts.ts";

export interface NodeSessionOptions extends SessionRequest, NodeSessionCommon {
  /** A function name ("fetchUser", "Users.get") or file:line. */
  functionName: string;
  /** "auto" (default): rewrite the function in place when V8 allows it, else breakpoints; "breakpoints" always (benchmarks compare the two). */
  mechanism?: "auto" | "breakpoints";
}

/**
 * Opens the inspector, lists the app's functions, and calls `use` with them;
 * closes everything after. While a session runs on the process, its list
 * (taken when it attached) is used instead, the inspector being that session's.
 */
export async function withNodeFunctions<T>(pid: number, options: ScriptOptions & Pick<InspectorOptions, "inProcess">, use: (functions: NodeFunction[]) => T | Promise<T>): Promise<T> {
  const current = running.get(pid);
  if (current && !options.includeDependencies) return use(current.functions);
  const { inProcess, ...scriptOptions } = options;
  let session: Session;
  try {
    session = (await openInspector(pid, { inProcess })) as Session;
  } catch (err) {
    throw inspectorError(err);
  }
  try {
    const scripts = await enableAndCollect(session);
    const functions = await loadFunctions(session, scripts, { cwd: cwdOf(pid), ...scriptOptions });
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

export class NodeFunctionSession extends NodeInspectorSession {
  /** What the collectors read of a session's program. */
  readonly program: { durationMs: number; argCount: number; sampleRate: number; maxEvents: number; isGo: false; function: { name: string } };
  fn: NodeFunction | undefined;
  /** How calls are seen: the function rewritten in place (fast) or conditional breakpoints (when V8 refuses the rewrite). */
  method: "instrumented" | "breakpoints" = "breakpoints";
  /** The instrumented script and its original source, until it is put back. */
  private rewritten: { scriptId: string; original: string } | undefined;

  private constructor(override readonly opts: NodeSessionOptions) {
    super(opts);
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
    await s.launch();
    return s;
  }

  /** Return values are captured (the rewritten function's `return` values; not on the breakpoint path). */
  get capturesReturn(): boolean {
    return (this.opts.captureReturn ?? false) && this.method === "instrumented";
  }

  protected async attach(cdp: Session): Promise<void> {
    const { pid } = this.opts;
    const functions = (this.functions = await loadFunctions(cdp, await enableAndCollect(cdp), { cwd: cwdOf(pid) }));
    const matches = matchFunction(functions, this.opts.functionName);
    if (matches.length !== 1) throw matchError(this.opts.functionName, functions, matches);
    const fn = (this.fn = matches[0]!);
    this.program.function.name = fn.label;
    const recorder = (extra: Partial<RecorderConfig> = {}) =>
      this.installRecorder(cdp, {
        sampleRate: this.program.sampleRate,
        async: fn.async,
        captureArgs: this.program.argCount > 0,
        captureReturn: this.opts.captureReturn ?? false,
        ...extra,
      });
    const rewritten = this.opts.mechanism === "breakpoints" ? undefined : await this.instrument(cdp, fn);
    if (rewritten) {
      await recorder({ key: rewritten.key, restore: { scriptId: fn.scriptId, source: rewritten.original } });
      this.method = "instrumented";
    } else await this.setBreakpoints(cdp, fn, recorder);
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
    const patched = instrumentFunction(original, fn.start, {
      key,
      async: fn.async,
      argsExpression: this.program.argCount > 0 ? argList(fn.params, this.program.argCount) : "null",
      captureReturn: this.opts.captureReturn ?? false,
    });
    if (!patched || !sameLines(original, patched)) return undefined;
    const r = await cdp.send<{ status?: string; exceptionDetails?: unknown }>("Debugger.setScriptSource", { scriptId: fn.scriptId, scriptSource: patched }).catch(() => undefined);
    // Older protocol versions answer without a status: success is no exception.
    if (!r || r.exceptionDetails || (r.status !== undefined && r.status !== "Ok")) return undefined;
    this.rewritten = { scriptId: fn.scriptId, original };
    return { key, original };
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

  protected toEvent(rec: RecorderRecord): UprobeEvent | undefined {
    if (rec[0] !== 0 && rec[0] !== 1) return undefined; // line records: not this session's
    const { pid } = this.opts;
    const ns = BigInt(Math.round(rec[1] * 1e6));
    return rec[0] === 0
      ? { type: "entry", ns, timeMs: rec[1], pid, tid: pid, ...(rec[2] ? { args: rec[2] } : {}) }
      : { type: "return", ns, timeMs: rec[1], pid, tid: pid, durationNs: Math.round(rec[2] * 1e6), ...(typeof rec[3] === "string" ? { ret: rec[3] } : {}) };
  }

  /** Async calls in flight when the breakpoints went still end (up to 2 s). */
  protected override async settle(reason: StopReason): Promise<void> {
    if (reason === "max_events" || !this.fn?.async) return;
    const until = Date.now() + 2000;
    while (Date.now() < until && this.session && (await this.inFlight()) > 0) {
      await this.drain();
      await new Promise((r) => setTimeout(r, 50));
    }
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

  /**
   * Puts the instrumented function's source back. The recorder is gone
   * already, so the rewritten code is inert meanwhile; V8 refuses while an
   * async instance is suspended, so it is tried for up to 2 s, and the inert
   * rewrite stays when that never succeeds.
   */
  protected override async restoreTarget(cdp: Session): Promise<void> {
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
