// The JavaScript functions of one script, found by parsing its source with
// acorn: declarations, `const f = () => …`, class methods (`Class.method`),
// object methods (`obj.method`) and `a.b = function …`. Positions are
// 0-based (CDP's); lines shown to people are 1-based. Generators are left
// out (a call's end is not one place).
import { parse, type Node } from "acorn";

export interface JsFunction {
  name: string;
  async: boolean;
  /** Parameter names, in order ("" for destructured ones). */
  params: string[];
  /** Where the function starts and ends in the generated script (0-based line and column). */
  start: { line: number; column: number };
  end: { line: number; column: number };
  /** Where the body starts (its `{`, or an arrow's expression): calls enter there, whatever default parameters did. */
  body: { line: number; column: number };
}

type AnyNode = Node & Record<string, unknown>;

const isFunction = (n: AnyNode | undefined | null): boolean =>
  !!n && (n.type === "FunctionDeclaration" || n.type === "FunctionExpression" || n.type === "ArrowFunctionExpression");

function keyName(key: AnyNode | undefined, computed: unknown): string | undefined {
  if (!key || computed) return undefined;
  if (key.type === "Identifier" || key.type === "PrivateIdentifier") return (key.type === "PrivateIdentifier" ? "#" : "") + String(key.name);
  if (key.type === "Literal") return String(key.value);
  return undefined;
}

/** `a.b.c` as text, or undefined for anything computed. */
function memberName(n: AnyNode | undefined): string | undefined {
  if (!n) return undefined;
  if (n.type === "Identifier") return String(n.name);
  if (n.type === "ThisExpression") return "this";
  if (n.type === "MemberExpression" && !n.computed) {
    const left = memberName(n.object as AnyNode);
    const right = keyName(n.property as AnyNode, false);
    return left && right ? `${left}.${right}` : undefined;
  }
  return undefined;
}

function paramName(p: AnyNode): string {
  if (p.type === "Identifier") return String(p.name);
  if (p.type === "AssignmentPattern") return paramName(p.left as AnyNode);
  if (p.type === "RestElement") return paramName(p.argument as AnyNode);
  return "";
}

/** Offsets → 0-based line and column. */
function lineIndex(source: string): (offset: number) => { line: number; column: number } {
  const starts = [0];
  for (let i = 0; i < source.length; i++) if (source.charCodeAt(i) === 10) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, column: offset - starts[lo]! };
  };
}

/** The functions of `source` (module or script, whichever parses); [] when it parses as neither. */
export function listJsFunctions(source: string): JsFunction[] {
  let ast: AnyNode | undefined;
  for (const sourceType of ["module", "script"] as const) {
    try {
      ast = parse(source, { ecmaVersion: "latest", sourceType, allowHashBang: true, allowReturnOutsideFunction: sourceType === "script" }) as unknown as AnyNode;
      break;
    } catch {
      // try the other source type
    }
  }
  if (!ast) return [];
  const at = lineIndex(source);
  const out: JsFunction[] = [];
  const add = (fn: AnyNode, name: string | undefined) => {
    if (!name || fn.generator) return;
    out.push({ name, async: !!fn.async, params: (fn.params as AnyNode[]).map(paramName), start: at(fn.start), end: at(fn.end), body: at((fn.body as AnyNode).start) });
  };
  const named = new Set<AnyNode>();
  const visit = (n: AnyNode, className: string | undefined, objectName: string | undefined) => {
    switch (n.type) {
      case "FunctionDeclaration":
        add(n, keyName(n.id as AnyNode, false));
        named.add(n);
        break;
      case "VariableDeclarator":
        if (isFunction(n.init as AnyNode)) {
          add(n.init as AnyNode, keyName(n.id as AnyNode, false));
          named.add(n.init as AnyNode);
        }
        break;
      case "AssignmentExpression":
        if (isFunction(n.right as AnyNode)) {
          add(n.right as AnyNode, memberName(n.left as AnyNode)?.replace(/^(module\.)?exports\./, ""));
          named.add(n.right as AnyNode);
        }
        break;
      case "MethodDefinition":
      case "PropertyDefinition":
        if (isFunction(n.value as AnyNode) && n.kind !== "get" && n.kind !== "set") {
          const key = keyName(n.key as AnyNode, n.computed);
          add(n.value as AnyNode, key && (n.kind === "constructor" ? className : `${className ?? "<class>"}.${key}`));
          named.add(n.value as AnyNode);
        }
        break;
      case "Property":
        if (isFunction(n.value as AnyNode) && n.kind === "init") {
          const key = keyName(n.key as AnyNode, n.computed);
          add(n.value as AnyNode, key && (objectName ? `${objectName}.${key}` : key));
          named.add(n.value as AnyNode);
        }
        break;
      case "FunctionExpression":
        if (!named.has(n) && n.id) add(n, keyName(n.id as AnyNode, false));
        break;
    }
    // What names the children: a class's name for its methods, a variable's for its object's methods.
    let childClass = className;
    let childObject: string | undefined;
    if (n.type === "ClassDeclaration" || n.type === "ClassExpression") childClass = keyName(n.id as AnyNode, false) ?? className;
    if (n.type === "VariableDeclarator" && (n.init as AnyNode | null)?.type === "ClassExpression") childClass = keyName(n.id as AnyNode, false);
    if (n.type === "VariableDeclarator" && (n.init as AnyNode | null)?.type === "ObjectExpression") childObject = keyName(n.id as AnyNode, false);
    if (n.type === "ObjectExpression") childObject = objectName;
    for (const [k, v] of Object.entries(n)) {
      if (k === "type" || k === "start" || k === "end") continue;
      if (Array.isArray(v)) {
        for (const c of v) if (c && typeof c === "object" && typeof (c as AnyNode).type === "string") visit(c as AnyNode, childClass, n.type === "ObjectExpression" ? childObject : undefined);
      } else if (v && typeof v === "object" && typeof (v as AnyNode).type === "string") {
        const passObject = n.type === "VariableDeclarator" || n.type === "ObjectExpression" ? childObject : undefined;
        visit(v as AnyNode, childClass, passObject);
      }
    }
  };
  visit(ast, undefined, undefined);
  return out;
}
