// The fast way to trace a JavaScript function: rewrite its source in the
// running process (V8 LiveEdit, CDP Debugger.setScriptSource) so that the
// function itself calls the recorder, instead of a conditional breakpoint
// that V8 evaluates through the debugger on every call (~100–250 µs a hit).
// An instrumented call costs a few hundred nanoseconds.
//
// What is inserted never adds a line (breakpoints, stack traces and source
// maps keep their lines) and calls the recorder through a global unique to
// the session, `globalThis[key]?.…`: once the recorder is removed (session
// end, or the in-target watchdog when the agent died) the inserted code does
// nothing, even where the original source could not be put back.
//
//   sync:  function f(a) { BODY }  →  function f(a) {const K=G?.e([a]);try{ BODY}finally{G?.x(K)} }
//   async: async function f(a) { BODY }  →  async function f(a) {const K=G?.b([a]);try{ BODY}catch(C){G?.t(K,C);throw C} }
//          (the end is when the function's own promise settles: the promise
//          hooks of recorder.ts, as for the breakpoint path)
//
// where G is globalThis[key]. The async catch hands what the body threw or
// an await rejected with to the recorder (a sync call that throws ends
// without its error: V8 refused that rewrite with a catch in our tests),
// which records it as the call's error, and throws it on unchanged. An
// async function whose closing part has no room (see below) is marked at
// its entry only: its calls are timed, a rejection is not seen.
//
// With captureReturn, each `return EXPR` of the function itself (not of
// functions nested in it) also hands the value to the recorder on its way
// out, on the same line:
//
//   return EXPR;  →  return (R=(EXPR),globalThis[key]?.v(K,R),R);
//
// where `let R` is declared with K at the entry; with the recorder gone,
// the value is still computed once and returned.
//
// `finally` also ends calls that throw. Directive prologues ("use strict")
// stay first. V8 refuses the edit while an instance of an async function is
// suspended in an await (BlockedByActiveGenerator), or when the function is
// on the stack, and the rewrite is not tried where V8 would see the change
// outside the function (an arrow's expression body, a body with no space
// before its `}`); the session then uses breakpoints.
import { parse, type Node } from "acorn";

type AnyNode = Node & Record<string, unknown>;

export interface InstrumentOptions {
  /** The global property the recorder is reachable through, e.g. "__coral_fn_ab12". */
  key: string;
  async: boolean;
  /** The entry arguments as an expression (e.g. `[a, b]`), or "null". */
  argsExpression: string;
  /** Hand each `return`'s value to the recorder (v). */
  captureReturn?: boolean;
}

const isFunction = (n: AnyNode): boolean => n.type === "FunctionDeclaration" || n.type === "FunctionExpression" || n.type === "ArrowFunctionExpression";

function parseAny(source: string): AnyNode | undefined {
  for (const sourceType of ["module", "script"] as const) {
    try {
      return parse(source, { ecmaVersion: "latest", sourceType, allowHashBang: true, allowReturnOutsideFunction: sourceType === "script", preserveParens: true }) as unknown as AnyNode;
    } catch {
      // try the other source type
    }
  }
  return undefined;
}

/** The function node that starts at `offset`, depth first. */
function functionAt(root: AnyNode, offset: number): AnyNode | undefined {
  const stack: AnyNode[] = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (n.start > offset || n.end <= offset) continue;
    if (isFunction(n) && n.start === offset) return n;
    for (const [k, v] of Object.entries(n)) {
      if (k === "type" || k === "start" || k === "end") continue;
      if (Array.isArray(v)) {
        for (const c of v) if (c && typeof c === "object" && typeof (c as AnyNode).type === "string") stack.push(c as AnyNode);
      } else if (v && typeof v === "object" && typeof (v as AnyNode).type === "string") stack.push(v as AnyNode);
    }
  }
  return undefined;
}

/** The `return` statements of `fn` itself, not of the functions nested in it. */
function ownReturns(fn: AnyNode): AnyNode[] {
  const out: AnyNode[] = [];
  const stack: AnyNode[] = [fn.body as AnyNode];
  while (stack.length) {
    const n = stack.pop()!;
    if (n.type === "ReturnStatement") out.push(n);
    for (const [k, v] of Object.entries(n)) {
      if (k === "type" || k === "start" || k === "end") continue;
      for (const c of Array.isArray(v) ? v : [v]) if (c && typeof c === "object" && typeof (c as AnyNode).type === "string" && !isFunction(c as AnyNode)) stack.push(c as AnyNode);
    }
  }
  return out;
}

/** Offset of a 0-based line and column. */
function offsetOf(source: string, at: { line: number; column: number }): number {
  let offset = 0;
  for (let line = 0; line < at.line; line++) {
    const nl = source.indexOf("\n", offset);
    if (nl < 0) return -1;
    offset = nl + 1;
  }
  return offset + at.column;
}

/**
 * The script's source with the function that starts at `start` (0-based line
 * and column, as listJsFunctions gives it) instrumented; undefined when no
 * function starts there or it is a generator.
 */
export function instrumentFunction(source: string, start: { line: number; column: number }, options: InstrumentOptions): string | undefined {
  const ast = parseAny(source);
  const at = offsetOf(source, start);
  const fn = ast && at >= 0 ? functionAt(ast, at) : undefined;
  if (!fn || fn.generator) return undefined;
  const body = fn.body as AnyNode;
  const g = `globalThis[${JSON.stringify(options.key)}]`;
  const id = options.key.replace(/\W/g, "");
  const token = `__coral_t_${id}`;
  const value = `__coral_r_${id}`;
  const capture = options.captureReturn === true;
  // V8 maps a textual diff of the old and new source to functions; where the
  // inserted text could align on either side of a closing brace, it may put
  // the change at the module's top level and refuse the edit
  // (BlockedByTopLevelEsModuleChange). So the closing part goes right after
  // the last statement, when whitespace or a comment follows it (the next
  // original character then cannot be confused with it). V8 refuses any change to an arrow's
  // expression body the same way: those use breakpoints.
  if (body.type !== "BlockStatement") return undefined;
  // After the directive prologue ("use strict" must stay first to count).
  let insertAt = body.start + 1;
  for (const s of body.body as AnyNode[]) {
    if (s.type === "ExpressionStatement" && typeof s.directive === "string") insertAt = s.end;
    else break;
  }
  // Right after the last statement: what follows is whitespace or a comment (else a sync function gives up, an async one is marked at entry only).
  const statements = body.body as AnyNode[];
  const closeAt = statements.length ? statements[statements.length - 1]!.end : insertAt;
  const wrap = /[\s/]/.test(source[closeAt] ?? "");
  if (!options.async && !wrap) return undefined;
  const caught = `__coral_c_${id}`;
  const enter = `const ${token}=${g}?.${options.async ? "b" : "e"}(${options.argsExpression});${capture ? `let ${value};` : ""}${wrap ? "try{" : ""}`;
  // Sync: finally only (V8's LiveEdit refuses the sync rewrite with a catch as well; throws there are not marked).
  const exit = options.async ? `}catch(${caught}){${g}?.t(${token},${caught});throw ${caught}}` : `}finally{${g}?.x(${token})}`;
  // Insertions by offset; at one offset, in the order added.
  const edits: { at: number; text: string }[] = [{ at: insertAt, text: enter }];
  if (capture)
    for (const r of ownReturns(fn)) {
      const arg = r.argument as AnyNode | null;
      if (!arg) continue;
      edits.push({ at: arg.start, text: `(${value}=(` }, { at: arg.end, text: `),${g}?.v(${token},${value}),${value})` });
    }
  if (wrap) edits.push({ at: closeAt, text: exit });
  const ordered = edits.map((e, i) => ({ ...e, i })).sort((a, b) => a.at - b.at || a.i - b.i);
  let out = "";
  let from = 0;
  for (const e of ordered) {
    out += source.slice(from, e.at) + e.text;
    from = e.at;
  }
  return out + source.slice(from);
}

/** Lines of `a` and `b` are the same (the edit added none). */
export function sameLines(a: string, b: string): boolean {
  const lines = (s: string) => s.split("\n").length;
  return lines(a) === lines(b);
}
