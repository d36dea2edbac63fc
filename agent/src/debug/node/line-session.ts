// Logpoints and snapshots on one line of a running Node process, through its
// V8 inspector, with the lifecycle function sessions have too
// (inspector-session.ts):
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
import { DebugError, LIMITS } from "../program.ts";
import { summarizeCalls, type SessionSummary, type UprobeEvent } from "../probe-session.ts";
import { resolveLine, type ResolvedLine } from "./lines.ts";
import { logpointCondition, snapshotCondition, type RecorderRecord } from "./recorder.ts";
import { expressionProblem, namesInScope, offsetOf, parseProgram, wrapExpression, type ScopeName } from "./scope.ts";
import { enableAndCollect, loadFunctions } from "./scripts.ts";
import { cwdOf, exceptionLine, inRange, NodeInspectorSession, type NodeSessionCommon, type Session } from "./inspector-session.ts";

export type LineKind = "logpoint" | "snapshot";

/** Snapshots a session takes at most. */
export const maxSnapshots = 50;

export interface NodeLineOptions extends NodeSessionCommon {
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
  /** How long the first-hit check may evaluate the condition or the expression (default 50 ms). */
  checkTimeoutMs?: number;
}

interface Paused {
  reason: string;
  hitBreakpoints?: string[];
  callFrames: { callFrameId: string }[];
}

interface Evaluated {
  result: { type: string; value?: unknown; description?: string };
  exceptionDetails?: { text?: string; exception?: { description?: string; className?: string } };
}

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

export class NodeLineSession extends NodeInspectorSession {
  /** Why the session ended, in words, when the stop reason alone does not say it (a rejected expression). */
  stopDetail: string | undefined;
  readonly program: { durationMs: number; argCount: 0; sampleRate: 1; maxEvents: number; isGo: false; function: { name: string } };
  line: ResolvedLine | undefined;
  /** Snapshots: the names captured. */
  names: ScopeName[] = [];
  /** The first hit was checked and recorded; the recording breakpoint is set. */
  checked = false;
  private checkBreakpoint: string | undefined;
  private conditionChecked = false;
  private recording = "";
  private offPaused: (() => void) | undefined;

  private constructor(override readonly opts: NodeLineOptions) {
    super(opts);
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
    await s.launch();
    return s;
  }

  get snapshotCount(): number {
    return this.opts.kind === "snapshot" ? this.program.maxEvents : 0;
  }

  protected async attach(cdp: Session): Promise<void> {
    const cwd = cwdOf(this.opts.pid);
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
    await this.installRecorder(cdp, { sampleRate: 1, async: false, captureArgs: false, snapshots: this.snapshotCount });
    this.offPaused = cdp.on("Debugger.paused", (p) => void this.onPaused(p as Paused));
    // The first breakpoint pauses (once), for the side-effect check; no condition yet: it is checked first too.
    this.checkBreakpoint = await this.setBreakpoint(undefined);
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
    const error = exceptionLine(r.exceptionDetails);
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
      if (!cdp || this.checked || !this.running || !this.checkBreakpoint || !p.hitBreakpoints?.includes(this.checkBreakpoint)) return;
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

  protected toEvent(rec: RecorderRecord): UprobeEvent | undefined {
    if (rec[0] !== 2 && rec[0] !== 3) return undefined; // function records: not this session's
    const { pid } = this.opts;
    return { type: rec[0] === 2 ? "log" : "snapshot", ns: BigInt(Math.round(rec[1] * 1e6)), timeMs: rec[1], pid, tid: pid, value: rec[0] === 2 ? rec[2] : JSON.stringify(rec[2]) };
  }

  /** A pause still held is resumed. */
  protected override async restoreTarget(cdp: Session): Promise<void> {
    await cdp.send("Debugger.resume").catch(() => undefined);
    this.offPaused?.();
  }

  summary(): SessionSummary {
    const s = summarizeCalls(this.events.length, [], { function: this.program.function.name, slowThresholdNs: 0, lostEvents: this.lostEvents, stopReason: this.stopReason });
    return { ...s, processCount: 1 };
  }
}
