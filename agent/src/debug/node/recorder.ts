// The JavaScript the agent installs in the traced Node process (through
// Runtime.evaluate with the inspector console's `require`) while a session
// runs, and the breakpoint conditions that call it. Every condition ends in
// `false`: execution never pauses.
//
// Sync functions: the entry breakpoint pushes the call on a stack, each
// return location (CDP "return" break locations: every `return` and the
// implicit one at the closing brace) pops it, last in first out. A call that
// throws leaves its entry on the stack without a return event; the stack is
// bounded, and later calls still pair with their own entries, except when an
// inner call of a recursion throws (the outer one then pairs with it).
//
// Async functions: at the entry breakpoint (the body's first statement) the
// function's implicit promise is the most recently created one, which a
// promise init hook (v8.promiseHooks, installed only for such a session)
// remembers; a settled hook records the end when that promise settles. No
// handler is attached to the promise, so unhandled-rejection behaviour is
// exactly the app's own (a .then() with a re-throw would turn a rejection
// the app handles into an unhandled one of our derived promise).
//
// Return values (--capture-return) are captured by rewritten functions only
// (instrument.ts): each `return EXPR` hands its value to v() before it is
// returned, formatted like the arguments (depth 2, 200 characters) and
// recorded with the call's end. An async function's value is the settled
// one: a value returned is the value the promise resolves to; a native
// promise returned gets a handler of ours (on both outcomes, so nothing new
// can go unhandled) that records what it fulfils with before the function's
// own promise settles. Functions that end without a `return` value record
// none.
//
// Errors: a rewritten async function hands what its body throws or an await
// rejects with to t(), and the call's end records "!Name: message" in place
// of a value, with or without --capture-return. Not seen: a rewritten sync
// function's throw (it ends, without its error), and on the breakpoint path
// (a sync call that throws has no return event; an async one's rejection
// settles like a fulfilment).
//
// Logpoints and snapshots (line-session.ts): the condition calls l() with
// closures over the paused frame's scope that evaluate the user's condition
// and expression, or n() with one closure per name in scope (scope.ts); each
// record takes the same buffer and per-second cap as a call.
//
// Records go into a bounded buffer with a per-second cap on new calls
// (counted when dropped); the agent drains it every ~200 ms. A watchdog timer
// (unref'd, so it never keeps the process alive) removes everything and
// closes the inspector we opened if the agent is gone past the deadline.

import { wrapExpression, type ScopeName } from "./scope.ts";

export interface RecorderConfig {
  /** Record one call in this many. */
  sampleRate: number;
  /** New calls recorded per second at most. */
  perSecond: number;
  /** Records held before the agent drains them. */
  buffer: number;
  async: boolean;
  captureArgs: boolean;
  /** Rewritten functions: record the value each `return` hands to v(). */
  captureReturn?: boolean;
  /** Watchdog: after this many ms, remove the recorder (and close the inspector when `closeInspector`). */
  watchdogMs: number;
  closeInspector: boolean;
  /** Instrumented sessions: the global the rewritten function reaches the recorder through (instrument.ts). */
  key?: string;
  /** Instrumented sessions: the original source the watchdog puts back through an in-process inspector session. */
  restore?: { scriptId: string; source: string };
  /** Snapshot sessions: how many snapshots are taken at most (0 otherwise). */
  snapshots?: number;
}

/** The global the recorder lives in, in the target. */
export const recorderGlobal = "__coral";

/** The expression that installs (or replaces) the recorder; evaluates to "ok". */
export function installExpression(cfg: RecorderConfig): string {
  return `(() => {
  const req = require, cfg = ${JSON.stringify(cfg)};
  if (globalThis.${recorderGlobal}) globalThis.${recorderGlobal}.remove();
  const now = () => performance.timeOrigin + performance.now();
  const show = (v, d) => {
    if (typeof v === "string") return JSON.stringify(v.length > 200 ? v.slice(0, 200) : v);
    if (typeof v === "bigint") return v + "n";
    if (typeof v === "function") return "[Function " + (v.name || "anonymous") + "]";
    if (v === null || typeof v !== "object") return String(v);
    if (d <= 0) return Array.isArray(v) ? "[…]" : "{…}";
    if (Array.isArray(v)) return "[" + v.slice(0, 10).map((x) => show(x, d - 1)).join(", ") + (v.length > 10 ? ", …" : "") + "]";
    const parts = [];
    for (const k of Object.keys(v).slice(0, 10)) {
      const p = Object.getOwnPropertyDescriptor(v, k);
      parts.push(k + ": " + (p && "value" in p ? show(p.value, d - 1) : "[getter]"));
    }
    return "{" + parts.join(", ") + "}";
  };
  const fmt = (v) => { let s; try { s = show(v, 2); } catch { s = "?"; } return s.length > 200 ? s.slice(0, 199) + "…" : s; };
  const c = { ev: [], dropped: 0, sec: 0, inSec: 0, calls: 0, inflight: 0, stack: [], last: null, pending: new WeakMap(), stops: [] };
  const enter = (args) => {
    const t = now();
    if (c.calls++ % cfg.sampleRate !== 0) return { t, keep: false };
    const s = Math.floor(t / 1000);
    if (s !== c.sec) { c.sec = s; c.inSec = 0; }
    if (c.inSec >= cfg.perSecond || c.ev.length >= cfg.buffer) { c.dropped++; return { t, keep: false }; }
    c.inSec++;
    c.ev.push([0, t, cfg.captureArgs && args ? args.map(fmt) : null]);
    return { t, keep: true };
  };
  const exit = (e, ret) => {
    if (!e || !e.keep) return;
    const t = now();
    if (c.ev.length >= cfg.buffer * 2) { c.dropped++; return; }
    // A call that threw (or rejected) records "!" and the error instead of a value (values never start with "!").
    c.ev.push([1, t, t - e.t, e.err !== undefined ? "!" + e.err : ret === undefined ? null : ret]);
  };
  c.s = (args) => { c.stack.push(enter(args)); if (c.stack.length > 10000) c.stack.shift(); return false; };
  c.r = () => { exit(c.stack.pop(), null); return false; };
  c.a = (args) => { const p = c.last; c.last = null; const e = enter(args); if (p && e.keep) { c.pending.set(p, e); c.inflight++; } return false; };
  if (cfg.async) {
    const hooks = req("v8").promiseHooks;
    c.stops.push(hooks.onInit((p) => { c.last = p; }));
    c.stops.push(hooks.onSettled((p) => { const e = c.pending.get(p); if (e) { c.pending.delete(p); c.inflight--; exit(e, e.ret); } }));
  }
  // Logpoints and snapshots (line sessions): [2, wall ms, value] and [3, wall ms, {name: value}].
  const errText = (e) => { let t; try { t = e && e.name ? e.name + ": " + e.message : String(e); } catch { t = "?"; } return t.length > 200 ? t.slice(0, 199) + "…" : t; };
  const rec = (r) => {
    const s = Math.floor(r[1] / 1000);
    if (s !== c.sec) { c.sec = s; c.inSec = 0; }
    if (c.inSec >= cfg.perSecond || c.ev.length >= cfg.buffer) { c.dropped++; return false; }
    c.inSec++;
    c.ev.push(r);
    return true;
  };
  c.TDZ = { tdz: true };
  c.NA = { na: true };
  c.snaps = 0;
  c.miss = (e) => (e instanceof ReferenceError && /before initiali[sz]ation/.test(e.message) ? c.TDZ : c.NA);
  c.l = (cond, value) => {
    const t = now();
    try { if (cond && !cond()) return false; } catch (e) { rec([2, t, "!condition: " + errText(e)]); return false; }
    let v;
    try { v = fmt(value()); } catch (e) { v = "!" + errText(e); }
    rec([2, t, v]);
    return false;
  };
  c.n = (cond, names, values) => {
    if (c.snaps >= (cfg.snapshots || 0)) return false;
    const t = now();
    try { if (cond && !cond()) return false; } catch { return false; }
    const vals = values(), out = {};
    names.forEach((n, i) => { const v = vals[i]; if (v !== c.NA) out[n] = v === c.TDZ ? "<uninitialized>" : fmt(v); });
    if (rec([3, t, out])) c.snaps++;
    return false;
  };
  // Instrumented functions (instrument.ts) call e/x through globalThis[cfg.key]: a token from entry to exit, no stack.
  c.e = (args) => enter(args);
  c.x = (e) => exit(e, e && e.ret);
  // What a rewritten call threw (its catch hands it over and throws it on): the call's error.
  c.t = (e, err) => { if (e && e.keep) e.err = errText(err); };
  // Async ones with --capture-return: b is a's twin that returns the token v needs.
  c.b = (args) => { const p = c.last; c.last = null; const e = enter(args); if (p && e.keep) { c.pending.set(p, e); c.inflight++; } return e; };
  const then = Promise.prototype.then;
  c.v = (e, v) => {
    if (!cfg.captureReturn || !e || !e.keep) return;
    if (cfg.async && v instanceof Promise) then.call(v, (r) => { e.ret = fmt(r); }, () => undefined);
    else e.ret = fmt(v);
  };
  if (cfg.key) globalThis[cfg.key] = c;
  c.drain = () => { const out = { ev: c.ev, dropped: c.dropped }; c.ev = []; c.dropped = 0; return out; };
  c.remove = () => {
    for (const stop of c.stops) stop();
    c.stops = [];
    clearTimeout(c.watchdog);
    if (cfg.key && globalThis[cfg.key] === c) delete globalThis[cfg.key];
    if (globalThis.${recorderGlobal} === c) delete globalThis.${recorderGlobal};
  };
  c.watchdog = setTimeout(() => {
    c.remove();
    if (cfg.restore) {
      try {
        const s = new (req("inspector").Session)();
        s.connect();
        s.post("Debugger.enable", () => s.post("Debugger.setScriptSource", { scriptId: cfg.restore.scriptId, scriptSource: cfg.restore.source }, () => { s.post("Debugger.disable"); s.disconnect(); }));
      } catch {}
    }
    if (cfg.closeInspector) req("inspector").close();
  }, cfg.watchdogMs);
  c.watchdog.unref();
  globalThis.${recorderGlobal} = c;
  return "ok";
})()`;
}

const g = `globalThis.${recorderGlobal}`;
/** The first `n` parameters as an array expression (undefined for destructured ones and those not yet bound). */
export const argList = (params: readonly string[], n: number) => `[${params.slice(0, n).map((p) => (p ? `typeof ${p} === "undefined" ? undefined : ${p}` : "undefined")).join(", ")}]`;

/** The entry breakpoint's condition; `params` are the function's parameter names, the first `captureArgs` captured. */
export function entryCondition(isAsync: boolean, params: readonly string[], captureArgs: number): string {
  const args = captureArgs > 0 ? argList(params, captureArgs) : "null";
  return `(${g} ? ${g}.${isAsync ? "a" : "s"}(${args}) : false)`;
}

/** A sync function's return-location condition. */
export function returnCondition(): string {
  return `(${g} ? ${g}.r() : false)`;
}

/** A logpoint's breakpoint condition: records `expression`'s value (or "!Error: …") each time `condition` (optional) holds. */
export function logpointCondition(expression: string, condition: string | undefined): string {
  return `(${g} ? ${g}.l(${condition ? `() => ${wrapExpression(condition)}` : "null"}, () => ${wrapExpression(expression)}) : false)`;
}

/**
 * A snapshot's breakpoint condition: records the names' values the first N
 * times `condition` (optional) holds. A name that cannot be read (optimised
 * away, not defined) is left out; one in its temporal dead zone reads
 * "<uninitialized>"; `this` is captured unless it is undefined or the global object.
 */
export function snapshotCondition(names: readonly ScopeName[], condition: string | undefined, captureThis = true): string {
  const read = (n: ScopeName) => (n.tdz ? `${g}.TDZ` : `(() => { try { return ${n.name}; } catch (e) { return ${g}.miss(e); } })()`);
  const all = [...names.map(read), ...(captureThis ? [`(this === undefined || this === globalThis ? ${g}.NA : this)`] : [])];
  const labels = [...names.map((n) => n.name), ...(captureThis ? ["this"] : [])];
  return `(${g} ? ${g}.n(${condition ? `() => ${wrapExpression(condition)}` : "null"}, ${JSON.stringify(labels)}, () => [${all.join(", ")}]) : false)`;
}

/** Evaluates to the records since the last drain, by value. */
export const drainExpression = `(${g} ? ${g}.drain() : null)`;
export const removeExpression = `(${g} ? ${g}.remove() : undefined, "removed")`;

/**
 * One record: [0, wall ms, args] for an entry, [1, wall ms, duration ms, ret]
 * for a return, [2, wall ms, value] for a logpoint, [3, wall ms, {name: value}] for a snapshot.
 */
export type RecorderRecord = [0, number, string[] | null] | [1, number, number, string | null] | [2, number, string] | [3, number, Record<string, string>];
export interface Drained {
  ev: RecorderRecord[];
  dropped: number;
}
