// The source rewrite of instrument.ts, run in a vm context: the function
// keeps its lines and behaviour (return values, throws, `this`, `arguments`,
// its "use strict"), and calls the recorder global once per call — entry and
// exit for sync functions, entry for async ones — and hands it what a call
// throws (an async one: what it rejects with). The recorder here is a
// plain counting object standing in for recorder.ts's (the real one is
// exercised against live processes in session.test.ts).
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { instrumentFunction, sameLines } from "./instrument.ts";
import { listJsFunctions } from "./functions.ts";

const key = "__coral_fn_test";

function run(source: string, name: string, async = false, captureReturn = false) {
  const fn = listJsFunctions(source).find((f) => f.name === name);
  expect(fn, name).toBeDefined();
  const patched = instrumentFunction(source, fn!.start, { key, async, argsExpression: `[${fn!.params.join(", ")}]`, captureReturn });
  expect(patched).toBeDefined();
  expect(sameLines(source, patched!)).toBe(true);
  const calls = { e: [] as unknown[], x: [] as unknown[], a: [] as unknown[], b: [] as unknown[], v: [] as unknown[], t: [] as unknown[] };
  let next = 0;
  const recorder = {
    e: (args: unknown) => (calls.e.push(args), ++next),
    x: (t: unknown) => void calls.x.push(t),
    a: (args: unknown) => void calls.a.push(args),
    b: (args: unknown) => (calls.b.push(args), ++next),
    v: (t: unknown, value: unknown) => void calls.v.push([t, value]),
    t: (t: unknown, err: unknown) => void calls.t.push([t, (err as Error).message]),
  };
  const context: Record<string, unknown> = { exports: {} };
  context.globalThis = context;
  context[key] = recorder;
  runInNewContext(patched!, context);
  return { exports: context.exports as Record<string, (...a: unknown[]) => unknown>, calls, patched: patched!, context };
}

describe("instrumentFunction", () => {
  it("wraps a sync function: entry with its arguments, exit on return and on throw, same results", () => {
    const src = `function add(a, b) {\n  if (a > 100) return a;\n  if (a < 0) throw new Error("neg");\n  return a + b;\n}\nexports.add = add;\n`;
    const { exports, calls } = run(src, "add");
    expect(exports.add!(1, 2)).toBe(3);
    expect(exports.add!(200, 2)).toBe(200);
    expect(() => exports.add!(-1, 2)).toThrow("neg");
    expect(calls.e).toEqual([[1, 2], [200, 2], [-1, 2]]);
    expect(calls.x).toEqual([1, 2, 3]);
  });

  it("closes before a trailing comment, not inside it", () => {
    const src = `function f(a) {\n  return a; // the end\n}\nexports.f = f;\n`;
    const { exports, calls, patched } = run(src, "f");
    expect(patched).toMatch(/return a;\}finally\{.*\}\s\/\/ the end/);
    expect(exports.f!(4)).toBe(4);
    expect(calls.x).toEqual([1]);
  });

  it("keeps a directive prologue first, and `this` and `arguments`", () => {
    const src = `function f() {\n  "use strict";\n  return [this === undefined, arguments.length];\n}\nexports.f = f;\n`;
    const { exports, patched, calls } = run(src, "f");
    expect(patched).toMatch(/"use strict";const __coral_t/);
    const f = exports.f!;
    expect(f(1, 2, 3)).toEqual([true, 3]);
    expect(calls.x).toHaveLength(1);
  });

  it("wraps an arrow with a block body; leaves expression bodies and bodies with no space before their brace to breakpoints", () => {
    const src = `const mk = (id) => {\n  return { id, ok: true };\n};\nexports.mk = mk;\n`;
    const { exports, calls } = run(src, "mk");
    expect(exports.mk!(7)).toEqual({ id: 7, ok: true });
    expect(calls.e).toEqual([[7]]);
    expect(calls.x).toEqual([1]);
    const opts = { key, async: false, argsExpression: "null" };
    expect(instrumentFunction(`const twice = (x) => x * 2;\n`, { line: 0, column: 14 }, opts)).toBeUndefined();
    expect(instrumentFunction(`function one(a) {return a}\n`, { line: 0, column: 0 }, opts)).toBeUndefined();
  });

  it("marks the entry of an async function (its end is the promise's) and hands over what it rejects with", async () => {
    const src = `async function load(id) {\n  await null;\n  if (id < 0) await Promise.reject(new Error("bad id " + id));\n  return id * 2;\n}\nexports.load = load;\n`;
    const { exports, calls, patched } = run(src, "load", true);
    expect(await exports.load!(21)).toBe(42);
    await expect(exports.load!(-3)).rejects.toThrow("bad id -3");
    expect(calls.b).toEqual([[21], [-3]]);
    expect(calls.t).toEqual([[2, "bad id -3"]]);
    expect(patched).not.toContain("finally");
    // No room for the closing part: the entry only (timed, a rejection not seen).
    const tight = `async function f(a) {await a}\nexports.f = f;\n`;
    const entryOnly = instrumentFunction(tight, { line: 0, column: 0 }, { key, async: true, argsExpression: "[a]" });
    expect(entryOnly).toBeDefined();
    expect(entryOnly).not.toContain("catch");
  });

  it("is inert once the recorder global is gone", () => {
    const src = `function add(a, b) {\n  return a + b;\n}\nexports.add = add;\n`;
    const { exports, context } = run(src, "add");
    delete context[key];
    expect(exports.add!(2, 3)).toBe(5);
  });

  it("leaves class methods' and nested functions' own code alone", () => {
    const src = `class Store {\n  run(x) {\n    const inner = () => x + 1;\n    return inner();\n  }\n}\nexports.run = (x) => new Store().run(x);\n`;
    const { exports, calls, patched } = run(src, "Store.run");
    expect(exports.run!(1)).toBe(2);
    expect(calls.e).toEqual([[1]]);
    expect(patched).toContain("const inner = () => x + 1;");
  });

  it("with captureReturn, hands each own `return`'s value to v with the call's token, on the same lines, results unchanged", () => {
    const src = [
      "function pick(a, b) {",
      "  const inner = () => { return 'inner'; };",
      "  if (a < 0) throw new Error('neg');",
      "  if (a === 0) return;",
      "  if (a > 100) return a, { big: a, inner: inner() };",
      "  return a +",
      "    b",
      "}",
      "exports.pick = pick;",
      "",
    ].join("\n");
    const { exports, calls, patched, context } = run(src, "pick", false, true);
    expect(exports.pick!(1, 2)).toBe(3);
    expect(exports.pick!(200, 2)).toEqual({ big: 200, inner: "inner" });
    expect(exports.pick!(0, 2)).toBeUndefined();
    expect(() => exports.pick!(-1, 2)).toThrow("neg");
    // One v per `return EXPR` taken (none for the bare return, the throw, or the nested arrow's return), then x.
    expect(calls.v).toEqual([[1, 3], [2, { big: 200, inner: "inner" }]]);
    expect(calls.x).toEqual([1, 2, 3, 4]);
    expect(patched).toContain("const inner = () => { return 'inner'; };");
    // Inert without the recorder: the value is still computed once and returned.
    delete context[key];
    expect(exports.pick!(5, 1)).toBe(6);
    expect(exports.pick!(300, 1)).toEqual({ big: 300, inner: "inner" });
  });

  it("with captureReturn, an async function takes a token at entry (b) and hands v what it returns, a promise included", async () => {
    const src = `async function load(id) {\n  await null;\n  if (id < 0) return Promise.resolve(-id);\n  return id * 2;\n}\nexports.load = load;\n`;
    const { exports, calls } = run(src, "load", true, true);
    expect(await exports.load!(21)).toBe(42);
    expect(await exports.load!(-4)).toBe(4);
    expect(calls.b).toEqual([[21], [-4]]);
    expect(calls.v[0]).toEqual([1, 42]);
    expect((calls.v[1] as [number, unknown])[0]).toBe(2);
    // The vm context's own Promise: a thenable here.
    expect(typeof (calls.v[1] as [number, { then?: unknown }])[1].then).toBe("function");
  });

  it("says no for a position where no function starts, and for generators", () => {
    const src = `function* gen() {\n  yield 1;\n}\nconst x = 1;\n`;
    const opts = { key, async: false, argsExpression: "null" };
    expect(instrumentFunction(src, { line: 0, column: 0 }, opts)).toBeUndefined();
    expect(instrumentFunction(src, { line: 3, column: 0 }, opts)).toBeUndefined();
  });
});
