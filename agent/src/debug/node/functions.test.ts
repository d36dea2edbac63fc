// The functions acorn finds in a script, by the names people use for them.
import { describe, expect, it } from "vitest";
import { listJsFunctions } from "./functions.ts";
import { matchFunction, type NodeFunction } from "./scripts.ts";

const source = `import { x } from "y";
export async function fetchUser(id, { cache } = {}, ...rest) {
  return id;
}
const add = (a, b = 1) => a + b;
class Users {
  constructor(db) { this.db = db; }
  async get(id) { return id; }
  static #hidden() {}
  get size() { return 0; }
}
const api = { list() {}, remove: async function (id) {} };
exports.handler = function (req, res) {};
function* gen() {}
setTimeout(function tick() {}, 1);
`;

describe("listJsFunctions", () => {
  it("names declarations, arrows, methods, object methods and assignments, with positions", () => {
    const fns = listJsFunctions(source);
    expect(fns.map((f) => [f.name, f.async, f.start.line + 1, f.params])).toEqual([
      ["fetchUser", true, 2, ["id", "", "rest"]],
      ["add", false, 5, ["a", "b"]],
      ["Users", false, 7, ["db"]],
      ["Users.get", true, 8, ["id"]],
      ["Users.#hidden", false, 9, []],
      ["api.list", false, 12, []],
      ["api.remove", true, 12, ["id"]],
      ["handler", false, 13, ["req", "res"]],
      ["tick", false, 15, []],
    ]);
  });

  it("parses CommonJS (return at top level) and gives up quietly on what is not JavaScript", () => {
    expect(listJsFunctions("return; function f() {}").map((f) => f.name)).toEqual(["f"]);
    expect(listJsFunctions("interface X { a: number }")).toEqual([]);
  });
});

describe("matchFunction", () => {
  const fn = (name: string, file: string, line: number, endLine = line + 2): NodeFunction => ({
    name,
    async: false,
    params: [],
    start: { line: line - 1, column: 0 },
    body: { line: line - 1, column: 10 },
    end: { line: endLine - 1, column: 1 },
    scriptId: "1",
    script: `/app/${file}`,
    file,
    line,
    label: `${name} (${file}:${line})`,
  });
  const all = [fn("Store.run", "a.js", 3), fn("Queue.run", "b.js", 10), fn("main", "a.js", 1, 20)];

  it("by exact name, by method name, and by file:line (the innermost function)", () => {
    expect(matchFunction(all, "Store.run").map((f) => f.name)).toEqual(["Store.run"]);
    expect(matchFunction(all, "run").map((f) => f.name)).toEqual(["Store.run", "Queue.run"]);
    expect(matchFunction(all, "b.js:10").map((f) => f.name)).toEqual(["Queue.run"]);
    expect(matchFunction(all, "a.js:4").map((f) => f.name)).toEqual(["Store.run"]);
    expect(matchFunction(all, "a.js:15").map((f) => f.name)).toEqual(["main"]);
    expect(matchFunction(all, "nope")).toEqual([]);
  });
});
