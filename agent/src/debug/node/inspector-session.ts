// What function sessions (session.ts) and line sessions (line-session.ts)
// share: one session per Node process at a time, the inspector opened
// (through the app's Coral SDK when it runs one, else SIGUSR1), the recorder
// installed, its records drained every ~200 ms into UprobeEvents, and one
// way to end: whatever ends a session (stop, deadline, max events, an error,
// the target exiting), the breakpoints are removed, the last records read,
// the recorder taken out of the target, the debugger disabled and the
// inspector closed if it was opened for us.
import { EventEmitter } from "node:events";
import { readlinkSync } from "node:fs";
import { openInspector, type InProcessInspector, type InspectorSession, type InspectorVia } from "../../profile/inspector.ts";
import { ProfileError } from "../../profile/errors.ts";
import { DebugError } from "../program.ts";
import type { SessionLimiter, SessionSummary, StopReason, UprobeEvent } from "../probe-session.ts";
import { drainExpression, installExpression, removeExpression, type Drained, type RecorderConfig, type RecorderRecord } from "./recorder.ts";
import type { Cdp, NodeFunction } from "./scripts.ts";

export type Session = InspectorSession & Cdp;

/** What every Node session takes besides its own request. */
export interface NodeSessionCommon {
  id: string;
  pid: number;
  limiter?: SessionLimiter;
  /** New records per second at most (default 10000); more are counted as lost. */
  perSecond?: number;
  /** How long after the deadline the in-target watchdog cleans up if the agent is gone (default 15 s). */
  watchdogMarginMs?: number;
  /** Default 200. */
  drainEveryMs?: number;
  /** The app's Coral SDK (the agent's SdkLink): it opens the inspector in-process, without SIGUSR1, when the process runs it. */
  inProcess?: InProcessInspector;
}

export const inRange = (name: string, v: number, min: number, max: number): number => {
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

/** What the one-per-process registry knows of a session. */
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

/** The first line of an exception's description ("TypeError: x is not a function"). */
export const exceptionLine = (e: { text?: string; exception?: { description?: string } } | undefined, otherwise = "an exception"): string =>
  (e?.exception?.description ?? e?.text ?? otherwise).split("\n")[0]!.slice(0, 300);

export abstract class NodeInspectorSession extends EventEmitter implements ProcessSession {
  readonly events: UprobeEvent[] = [];
  stopReason: StopReason | undefined;
  lostEvents = 0;
  /** The app's functions when the session attached. */
  functions: NodeFunction[] = [];
  /** How the inspector was reached: SIGUSR1, or in-process through the app's Coral SDK ("sdk-inspector"). */
  inspector: InspectorVia | undefined;
  abstract readonly program: { durationMs: number; argCount: number; sampleRate: number; maxEvents: number; isGo: false; function: { name: string } };
  protected session: Session | undefined;
  protected breakpoints: string[] = [];
  /** Set once the session began ending (its reason then stays). */
  protected ending: Promise<void> | undefined;
  /** Ended and cleaned up. */
  private done = false;
  /** Records are taken (false once the event cap is reached). */
  private accepting = true;
  private drainTimer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private draining: Promise<void> = Promise.resolve();

  constructor(readonly opts: NodeSessionCommon) {
    super();
  }

  /** Sets the session up on the open inspector (breakpoints, a rewrite); the recorder is installed with installRecorder. */
  protected abstract attach(cdp: Session): Promise<void>;
  /** This session's event for a drained record, or undefined when the record is not its kind. */
  protected abstract toEvent(rec: RecorderRecord): UprobeEvent | undefined;
  abstract summary(): SessionSummary;
  /** Between the breakpoints' removal and the last drain (async calls in flight ending). */
  protected async settle(_reason: StopReason): Promise<void> {}
  /** In cleanup, after the recorder is removed and before the debugger is disabled. */
  protected async restoreTarget(_cdp: Session): Promise<void> {}

  /** Claims the process, opens the inspector and attaches; on failure everything is undone and the error is a DebugError. */
  protected async launch(): Promise<void> {
    const { pid, id, limiter } = this.opts;
    if (running.has(pid)) claimProcess(pid, this); // throws, naming the other
    limiter?.acquire(id);
    claimProcess(pid, this);
    try {
      let cdp: Session;
      try {
        cdp = this.session = (await openInspector(pid, { inProcess: this.opts.inProcess })) as Session;
      } catch (err) {
        throw inspectorError(err);
      }
      this.inspector = cdp.via;
      await this.attach(cdp);
      this.drainTimer = setInterval(() => void this.drain(), this.opts.drainEveryMs ?? 200);
      this.deadline = setTimeout(() => void this.finish("duration"), this.program.durationMs);
      // The connection dropping (the target exited) ends the session.
      cdp.on("Inspector.detached", () => void this.finish("bpftrace_exit"));
    } catch (err) {
      await this.cleanup();
      limiter?.release(id);
      releaseProcess(pid, this);
      throw inspectorError(err);
    }
  }

  /** Installs the recorder (recorder.ts) with the limits every session shares and `own`. */
  protected async installRecorder(cdp: Session, own: Pick<RecorderConfig, "sampleRate" | "async" | "captureArgs"> & Partial<RecorderConfig>): Promise<void> {
    const cfg: RecorderConfig = {
      perSecond: this.opts.perSecond ?? 10_000,
      buffer: Math.min(this.program.maxEvents + 1, 100_000),
      watchdogMs: this.program.durationMs + (this.opts.watchdogMarginMs ?? 15_000),
      closeInspector: cdp.openedByUs,
      ...own,
    };
    const installed = await cdp.send<{ result: { value?: unknown }; exceptionDetails?: { text?: string; exception?: { description?: string } } }>("Runtime.evaluate", {
      expression: installExpression(cfg),
      includeCommandLineAPI: true,
      returnByValue: true,
    });
    if (installed.result.value !== "ok") throw new DebugError("unsupported", `cannot install the recorder in process ${this.opts.pid}: ${exceptionLine(installed.exceptionDetails, "no result")}`);
  }

  /** Reads the target's records into events (serialised: one drain at a time). */
  protected drain(): Promise<void> {
    this.draining = this.draining.then(async () => {
      const cdp = this.session;
      if (!cdp) return;
      let got: Drained | null | undefined;
      try {
        got = (await cdp.send<{ result: { value?: Drained | null } }>("Runtime.evaluate", { expression: drainExpression, returnByValue: true })).result.value;
      } catch {
        if (!this.done) void this.finish("bpftrace_exit"); // the connection is gone: the process exited or closed it
        return;
      }
      if (!got) return;
      this.lostEvents += got.dropped;
      for (const rec of got.ev) {
        if (!this.accepting) break;
        const ev = this.toEvent(rec);
        if (!ev) continue;
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

  protected finish(reason: StopReason): Promise<void> {
    this.ending ??= (async () => {
      this.stopReason ??= reason;
      clearTimeout(this.deadline);
      clearInterval(this.drainTimer);
      // No new records once the breakpoints are gone.
      if (this.session) await this.removeBreakpoints(this.session);
      await this.settle(reason);
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

  protected async removeBreakpoints(cdp: Session): Promise<void> {
    const ids = this.breakpoints;
    this.breakpoints = [];
    await Promise.all(ids.map((breakpointId) => cdp.send("Debugger.removeBreakpoint", { breakpointId }).catch(() => undefined)));
  }

  /** Everything out of the target, whatever state the session is in. */
  private async cleanup(): Promise<void> {
    const cdp = this.session;
    if (!cdp) return;
    this.session = undefined;
    await this.removeBreakpoints(cdp);
    await cdp.send("Runtime.evaluate", { expression: removeExpression }).catch(() => undefined);
    await this.restoreTarget(cdp);
    await cdp.send("Debugger.disable").catch(() => undefined);
    await cdp.close();
  }
}
