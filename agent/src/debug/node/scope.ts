// What a snapshot captures at a line, found without pausing the process: the
// script's (generated JavaScript) source parsed with acorn, and the names in
// scope at a position: the parameters and the variables declared (var, let,
// const, function, class, destructuring patterns, catch parameters, for-loop
// heads) in the blocks and functions that contain it, innermost first. The
// program's own top-level names are left out when the position is inside a
// function (they are the module's imports and functions, not the call's
// state). Also the syntax check of the expressions people give, done here
// before the process is touched.
import { parse, type Node } from "acorn";

type AnyNode = Node & Record<string, unknown>;

export interface ScopeName {
  name: string;
  /**
   * Declared with let, const or class in the innermost function, its
   * declaration not yet run at the position (it ends after it): certainly
   * uninitialised (in its temporal dead zone) there.
   * V8's debug-evaluate reads such a binding as undefined, so it is told
   * from the source instead.
   */
  tdz: boolean;
}

/** Names a snapshot captures at most. */
export const maxScopeNames = 50;

/** Parses `source` as a module, else as a script; undefined when it is neither. */
export function parseProgram(source: string): AnyNode | undefined {
  for (const sourceType of ["module", "script"] as const) {
    try {
      return parse(source, { ecmaVersion: "latest", sourceType, allowHashBang: true, allowReturnOutsideFunction: sourceType === "script" }) as unknown as AnyNode;
    } catch {
      // the other source type
    }
  }
  return undefined;
}

/** Offset of a 0-based line and column in `source`. */
export function offsetOf(source: string, line: number, column: number): number {
  let offset = 0;
  for (let l = 0; l < line; l++) {
    const nl = source.indexOf("\n", offset);
    if (nl < 0) return source.length;
    offset = nl + 1;
  }
  return offset + column;
}

/** Identifiers a binding pattern declares ({a, b: [c, ...d]} = … → a, c, d). */
export function patternNames(p: AnyNode | null | undefined, out: string[] = []): string[] {
  if (!p) return out;
  switch (p.type) {
    case "Identifier":
      out.push(String(p.name));
      break;
    case "AssignmentPattern":
      patternNames(p.left as AnyNode, out);
      break;
    case "RestElement":
      patternNames(p.argument as AnyNode, out);
      break;
    case "ArrayPattern":
      for (const e of p.elements as (AnyNode | null)[]) patternNames(e, out);
      break;
    case "ObjectPattern":
      for (const prop of p.properties as AnyNode[]) patternNames(prop.type === "RestElement" ? prop : (prop.value as AnyNode), out);
      break;
  }
  return out;
}

const isFunction = (n: AnyNode) => n.type === "FunctionDeclaration" || n.type === "FunctionExpression" || n.type === "ArrowFunctionExpression";
const children = (n: AnyNode): AnyNode[] => {
  const out: AnyNode[] = [];
  for (const [k, v] of Object.entries(n)) {
    if (k === "type" || k === "start" || k === "end") continue;
    if (Array.isArray(v)) {
      for (const c of v) if (c && typeof c === "object" && typeof (c as AnyNode).type === "string") out.push(c as AnyNode);
    } else if (v && typeof v === "object" && typeof (v as AnyNode).type === "string") out.push(v as AnyNode);
  }
  return out;
};

/** The `var` names of a function body, not looking into nested functions or classes. */
function varNames(body: AnyNode, out: { name: string; start: number }[]): void {
  const visit = (n: AnyNode) => {
    if (isFunction(n) || n.type === "ClassDeclaration" || n.type === "ClassExpression") return;
    if (n.type === "VariableDeclaration" && n.kind === "var") for (const d of n.declarations as AnyNode[]) for (const name of patternNames(d.id as AnyNode)) out.push({ name, start: n.start });
    for (const c of children(n)) visit(c);
  };
  visit(body);
}

/** The lexical declarations (let, const, class, function) directly in a block's statement list. */
function lexicalNames(statements: AnyNode[], out: { name: string; start: number; lexical: boolean }[]): void {
  for (const s of statements) {
    const decl = s.type === "ExportNamedDeclaration" || s.type === "ExportDefaultDeclaration" ? (s.declaration as AnyNode | null) : s;
    if (!decl) continue;
    if (decl.type === "VariableDeclaration" && decl.kind !== "var")
      // Initialised once its declarator has run: before its end (V8 breaks inside it, at the initialiser), it is in its TDZ.
      for (const d of decl.declarations as AnyNode[]) for (const name of patternNames(d.id as AnyNode)) out.push({ name, start: d.end, lexical: true });
    if (decl.type === "ClassDeclaration" && decl.id) out.push({ name: String((decl.id as AnyNode).name), start: decl.end, lexical: true });
    if (decl.type === "FunctionDeclaration" && decl.id) out.push({ name: String((decl.id as AnyNode).name), start: decl.start, lexical: false });
  }
}

/**
 * The names in scope at `offset` of the program `ast`, innermost scope
 * first, each once (an inner name hides an outer one), at most `max`.
 */
export function namesInScope(ast: AnyNode, offset: number, max = maxScopeNames): ScopeName[] {
  // The chain of nodes from the program down to the innermost one containing the offset.
  const chain: AnyNode[] = [];
  let node: AnyNode | undefined = ast;
  while (node) {
    chain.push(node);
    node = children(node).find((c) => c.start <= offset && offset < c.end);
  }
  const inFunction = chain.some(isFunction);
  // Walk from the innermost scope out; `innermost` until the first function boundary is crossed.
  const scopes: { names: { name: string; start: number; lexical: boolean }[]; innermost: boolean }[] = [];
  let innermost = true;
  for (let i = chain.length - 1; i >= 0; i--) {
    const n = chain[i]!;
    const names: { name: string; start: number; lexical: boolean }[] = [];
    if (n.type === "BlockStatement" || n.type === "StaticBlock") lexicalNames(n.body as AnyNode[], names);
    else if (n.type === "SwitchStatement") lexicalNames((n.cases as AnyNode[]).flatMap((c) => c.consequent as AnyNode[]), names);
    else if ((n.type === "ForStatement" && (n.init as AnyNode | null)?.type === "VariableDeclaration") || n.type === "ForOfStatement" || n.type === "ForInStatement") {
      const head = (n.type === "ForStatement" ? n.init : n.left) as AnyNode;
      // The loop variable is initialised before the body runs: never TDZ inside it.
      if (head.type === "VariableDeclaration" && head.kind !== "var") for (const d of head.declarations as AnyNode[]) for (const name of patternNames(d.id as AnyNode)) names.push({ name, start: -1, lexical: true });
    } else if (n.type === "CatchClause" && n.param) for (const name of patternNames(n.param as AnyNode)) names.push({ name, start: -1, lexical: false });
    else if (isFunction(n)) {
      for (const p of n.params as AnyNode[]) for (const name of patternNames(p)) names.push({ name, start: -1, lexical: false });
      const vars: { name: string; start: number }[] = [];
      varNames(n.body as AnyNode, vars);
      for (const v of vars) names.push({ ...v, lexical: false });
    } else if (n.type === "Program") {
      if (inFunction) continue;
      lexicalNames(n.body as AnyNode[], names);
      const vars: { name: string; start: number }[] = [];
      varNames(n, vars);
      for (const v of vars) names.push({ ...v, lexical: false });
    }
    scopes.push({ names, innermost });
    if (isFunction(n)) innermost = false;
  }
  const seen = new Set<string>();
  const out: ScopeName[] = [];
  for (const scope of scopes)
    for (const d of scope.names) {
      if (seen.has(d.name)) continue;
      seen.add(d.name);
      out.push({ name: d.name, tdz: scope.innermost && d.lexical && d.start > offset });
      if (out.length >= max) return out;
    }
  return out;
}

/**
 * Checks that `text` is one JavaScript expression (what a logpoint's --expr
 * or a --condition must be); returns the problem in words, or undefined.
 * "1); evil(" is two statements, not an expression, and is refused.
 */
export function expressionProblem(text: string): string | undefined {
  if (!text.trim()) return "is empty";
  if (text.length > 2000) return `is too long (${text.length} characters, at most 2000)`;
  let ast: AnyNode;
  try {
    ast = parse(wrapExpression(text), { ecmaVersion: "latest", sourceType: "script", preserveParens: true }) as unknown as AnyNode;
  } catch (err) {
    return `is not a JavaScript expression: ${(err as Error).message.replace(/ \(\d+:\d+\)$/, "")}`;
  }
  const body = ast.body as AnyNode[];
  const e = body.length === 1 && body[0]!.type === "ExpressionStatement" ? (body[0]!.expression as AnyNode) : undefined;
  // One parenthesised expression from the first character to the last: nothing closes our parenthesis early.
  if (!e || e.type !== "ParenthesizedExpression" || e.start !== 0 || e.end !== text.length + 3) return "is not one JavaScript expression (statements are not allowed)";
  return undefined;
}

/** How an expression checked by expressionProblem is embedded: parenthesised, a line comment at its end closed. */
export const wrapExpression = (text: string) => `(${text}\n)`;
