// The names a snapshot captures, from the source alone, and the syntax check of expressions.
import { describe, expect, it } from "vitest";
import { expressionProblem, namesInScope, offsetOf, parseProgram, patternNames } from "./scope.ts";

/** The names in scope where `@` is (the marker removed from the source). */
function at(marked: string) {
  const offset = marked.indexOf("@");
  const source = marked.replace("@", "");
  return namesInScope(parseProgram(source)!, offset);
}

describe("namesInScope", () => {
  it("params, var anywhere in the function, let/const of the blocks that contain the position; TDZ for the ones declared after it", () => {
    const names = at(`import x from "y";
const top = 1;
function f(a, { b, c: [d, ...e] } = {}, ...rest) {
  const before = 1;
  if (a) { var hoisted = 2; let hidden = 3; }
  for (let i = 0; i < 2; i++) {
    @const inLoop = i;
  }
  let after = 4;
  class K {}
  function g() { let insideG = 1; }
}`);
    expect(names).toEqual([
      { name: "inLoop", tdz: true },
      { name: "i", tdz: false },
      { name: "before", tdz: false },
      { name: "after", tdz: true },
      { name: "K", tdz: true },
      { name: "g", tdz: false },
      { name: "a", tdz: false },
      { name: "b", tdz: false },
      { name: "d", tdz: false },
      { name: "e", tdz: false },
      { name: "rest", tdz: false },
      { name: "hoisted", tdz: false },
    ]);
  });

  it("TDZ: let/const/class declared at or after the position in the innermost function; closures see the outer function's names", () => {
    const names = at(`function outer(o) {
  const early = 1;
  const inner = (p) => {
    @return p + early + late;
  };
  const late = 2;
  return inner;
}`);
    expect(names).toEqual([
      { name: "p", tdz: false },
      { name: "early", tdz: false },
      { name: "inner", tdz: false },
      { name: "late", tdz: false },
      { name: "o", tdz: false },
    ]);
    expect(at(`function f(a) {\n  @const sum = a;\n  let later = 1;\n}`)).toEqual([
      { name: "sum", tdz: true },
      { name: "later", tdz: true },
      { name: "a", tdz: false },
    ]);
  });

  it("catch parameters, switch cases, the program's names only at top level, at most 50 names", () => {
    expect(at(`function f() { try { x(); } catch ({ message }) { @log(message); } }`).map((n) => n.name)).toEqual(["message"]);
    expect(at(`function f(v) { switch (v) { case 1: let k = 2; @k; } }`).map((n) => n.name)).toEqual(["k", "v"]);
    expect(at(`const a = 1;\nlet b = 2;\n@b;\nvar c = 3;\nfunction d() {}`)).toEqual([
      { name: "a", tdz: false },
      { name: "b", tdz: false },
      { name: "d", tdz: false },
      { name: "c", tdz: false },
    ]);
    const many = `function f(${Array.from({ length: 60 }, (_, i) => `p${i}`).join(", ")}) { @return 1; }`;
    expect(at(many)).toHaveLength(50);
  });

  it("patternNames and offsetOf", () => {
    const ast = parseProgram("const { a, b: { c }, ...d } = x; const [e, , f = 1] = y;")!;
    const decls = (ast.body as { declarations: { id: never }[] }[]).flatMap((s) => s.declarations.map((d) => patternNames(d.id)));
    expect(decls).toEqual([["a", "c", "d"], ["e", "f"]]);
    expect(offsetOf("ab\ncd\nef", 2, 1)).toBe(7);
  });
});

describe("expressionProblem", () => {
  it("accepts one expression, also with a trailing line comment", () => {
    for (const ok of ["a + b", "user.name", "`${a}-${b}`", "a, b", "x => x", "a // note", "{ a: 1 }.a", "await1"]) expect(expressionProblem(ok)).toBeUndefined();
  });

  it("refuses statements, text that closes our parenthesis, syntax errors and empty text", () => {
    expect(expressionProblem("1); process.exit(")).toBe("is not one JavaScript expression (statements are not allowed)");
    expect(expressionProblem("0), globalThis.x = 1, (0")).toBe("is not one JavaScript expression (statements are not allowed)");
    expect(expressionProblem("a; b")).toMatch(/^is not (one )?a? ?JavaScript expression/);
    expect(expressionProblem("a +")).toMatch(/^is not a JavaScript expression: Unexpected token/);
    expect(expressionProblem("  ")).toBe("is empty");
    expect(expressionProblem("x".repeat(2001))).toMatch(/too long/);
  });
});
