// The import graph of Coral's own TypeScript files, read from their import
// and export statements (static and dynamic). Shared by the boundary and the
// cycle lint rules.
import { readFileSync, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** Every specifier a file imports or re-exports; typeOnly for `import type` / `export type`. */
export function importsOf(text) {
  const out = [];
  // Comments are not imports (a doc comment may show one).
  const source = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const re = /(?:^|[;\s])(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?(["'])([^"']+)\3|import\s*\(\s*(["'])([^"']+)\5\s*\)/g;
  for (const m of source.matchAll(re)) {
    if (m[4] !== undefined) out.push({ spec: m[4], typeOnly: Boolean(m[2]) });
    else out.push({ spec: m[6], typeOnly: false });
  }
  return out;
}

const cache = new Map();
/** Relative imports of a file (type imports too), resolved to absolute paths of files that exist. */
export function localImports(file) {
  let deps = cache.get(file);
  if (deps) return deps;
  deps = [];
  let source = "";
  try {
    source = readFileSync(file, "utf8");
  } catch {
    // unreadable: no edges
  }
  for (const { spec } of importsOf(source)) {
    if (!spec.startsWith(".")) continue;
    const target = resolve(dirname(file), spec);
    if (existsSync(target)) deps.push(target);
  }
  cache.set(file, deps);
  return deps;
}

/** A cycle through `file` (list of files, starting and ending at it), or null. */
export function cycleThrough(file) {
  const stack = [file];
  const seen = new Set();
  const visit = (f) => {
    for (const dep of localImports(f)) {
      if (dep === file) return [...stack, dep];
      if (seen.has(dep)) continue;
      seen.add(dep);
      stack.push(dep);
      const found = visit(dep);
      if (found) return found;
      stack.pop();
    }
    return null;
  };
  return visit(file);
}
