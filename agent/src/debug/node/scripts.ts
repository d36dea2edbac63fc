// The app's own scripts in a Node process, as its V8 inspector reports them
// (Debugger.scriptParsed on Debugger.enable), with their functions and, when
// a script names a source map (inline data: URL or a file next to it), the
// TypeScript (or other) source position of each function.
//
// The app's own scripts are those of the package its main script belongs to
// (the folder of the nearest package.json above process.argv[1], resolved
// through symlinks as Node resolves it; the workspace root above it for a
// monorepo), not under a node_modules folder. That holds for an npm layout
// (dependencies in node_modules) and for a distribution's, where each
// dependency is a package of its own beside the app's (Debian installs them
// all under /usr/share/nodejs). When the main script has no package.json
// above it (node -e, a lone script), every file script not under
// node_modules is the app's.
import { access, readFile, realpath } from "node:fs/promises";
import { SourceMap, type SourceMapPayload } from "node:module";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { listJsFunctions, type JsFunction } from "./functions.ts";

/** What the scripts need of an inspector session: requests and events. */
export interface Cdp {
  send<T = unknown>(method: string, params?: object): Promise<T>;
  on(method: string, listener: (params: unknown) => void): () => void;
}

export interface ScriptParsed {
  scriptId: string;
  url: string;
  sourceMapURL?: string;
}

/** One function of the app, where it runs (scriptId, generated position) and where it is written. */
export interface NodeFunction extends JsFunction {
  scriptId: string;
  /** The generated script's path (or URL when it is not a file). */
  script: string;
  /** The file shown to people: the original source when mapped, relative to the process's working directory. */
  file: string;
  /** 1-based line in `file`. */
  line: number;
  /** "name (file:line)". */
  label: string;
}

export interface ScriptOptions {
  /** Also the scripts of other packages: dependencies, node_modules (default false). */
  includeDependencies?: boolean;
  /** The target's working directory, to show paths relative to it. */
  cwd?: string;
}

const maxScripts = 2000;
const maxSourceBytes = 5 * 1024 * 1024;

export const toPath = (url: string) => (url.startsWith("file://") ? fileURLToPath(url) : url);

/** A script of a file (file:// URL or absolute path), not one of Node's internals (node:…) or an eval's. */
const isFileScript = (url: string): boolean => url.startsWith("file://") || url.startsWith("/");
const inNodeModules = (path: string): boolean => /(^|[\\/])node_modules([\\/]|$)/.test(path);
const exists = (path: string) => access(path).then(() => true, () => false);

/** Says whether a script (by its URL) is one of the app's own. */
export type ScriptFilter = (url: string) => boolean;

async function isWorkspaceRoot(dir: string): Promise<boolean> {
  if (await exists(join(dir, "pnpm-workspace.yaml"))) return true;
  try {
    return (JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { workspaces?: unknown }).workspaces !== undefined;
  } catch {
    return false;
  }
}

/**
 * The folder of the app's own code, given its main script: its package (the
 * nearest folder with a package.json), or the workspace root above that
 * package (npm and yarn "workspaces", pnpm-workspace.yaml; never beyond a
 * node_modules folder); undefined when no package.json is above it.
 */
export async function appRoot(mainScript: string): Promise<string | undefined> {
  const main = await realpath(mainScript).catch(() => mainScript);
  let root: string | undefined;
  for (let dir = dirname(main); ; dir = dirname(dir)) {
    if (!root) {
      if (await exists(join(dir, "package.json"))) root = dir;
    } else if (basename(dir) === "node_modules") break;
    else if (await isWorkspaceRoot(dir)) return dir;
    if (dirname(dir) === dir) return root;
  }
  return root;
}

/** The target's main script (process.argv[1]), or undefined (node -e, a REPL, or it cannot be read). */
async function mainScriptOf(cdp: Cdp): Promise<string | undefined> {
  try {
    const r = await cdp.send<{ result: { value?: unknown } }>("Runtime.evaluate", {
      expression: `(typeof process === "object" && process.argv ? process.argv[1] : undefined)`,
      returnByValue: true,
      throwOnSideEffect: true,
    });
    return typeof r.result.value === "string" && isAbsolute(r.result.value) ? r.result.value : undefined;
  } catch {
    return undefined;
  }
}

/** Which scripts of the process are the app's own (see the top of this file); every file script with `includeDependencies`. */
export async function appScripts(cdp: Cdp, includeDependencies = false): Promise<ScriptFilter> {
  if (includeDependencies) return isFileScript;
  const main = await mainScriptOf(cdp);
  const root = main === undefined ? undefined : await appRoot(main);
  if (root === undefined) return (url) => isFileScript(url) && !inNodeModules(toPath(url));
  return (url) => {
    if (!isFileScript(url)) return false;
    const rel = relative(root, toPath(url));
    return rel !== "" && !/^\.\.([\\/]|$)/.test(rel) && !isAbsolute(rel) && !inNodeModules(rel);
  };
}

/** Debugger.enable, collecting the scriptParsed events it replays; the debugger stays enabled. */
export async function enableAndCollect(cdp: Cdp): Promise<ScriptParsed[]> {
  const scripts: ScriptParsed[] = [];
  const off = cdp.on("Debugger.scriptParsed", (p) => scripts.push(p as ScriptParsed));
  try {
    await cdp.send("Debugger.enable");
    // The events come before the reply; one round trip more settles any in flight.
    await cdp.send("Runtime.evaluate", { expression: "0" });
  } finally {
    off();
  }
  return liveScripts(scripts);
}

/**
 * One script per URL: after a live edit (instrument.ts) V8 keeps copies of
 * the earlier versions under new ids, while the live script keeps its
 * original id, the smallest of its URL's.
 */
export function liveScripts(scripts: readonly ScriptParsed[]): ScriptParsed[] {
  const byUrl = new Map<string, ScriptParsed>();
  const out: ScriptParsed[] = [];
  for (const s of scripts) {
    if (!s.url) {
      out.push(s);
      continue;
    }
    const seen = byUrl.get(s.url);
    if (!seen || Number(s.scriptId) < Number(seen.scriptId)) byUrl.set(s.url, s);
  }
  return [...out, ...byUrl.values()];
}

/** Loads the source map a script names, or undefined (none, unreadable, or not a map). */
export async function loadSourceMap(scriptPath: string, sourceMapURL: string | undefined): Promise<{ map: SourceMap; dir: string } | undefined> {
  if (!sourceMapURL) return undefined;
  try {
    let text: string;
    let dir = dirname(scriptPath);
    const inline = /^data:application\/json[^,]*?(;base64)?,(.*)$/s.exec(sourceMapURL);
    if (inline) text = inline[1] ? Buffer.from(inline[2]!, "base64").toString("utf8") : decodeURIComponent(inline[2]!);
    else {
      const file = sourceMapURL.startsWith("file://") ? fileURLToPath(sourceMapURL) : resolve(dirname(scriptPath), sourceMapURL);
      if (/^[a-z]+:/i.test(sourceMapURL) && !sourceMapURL.startsWith("file://")) return undefined; // http: and others: never fetched
      text = await readFile(file, "utf8");
      dir = dirname(file);
    }
    const payload = JSON.parse(text) as SourceMapPayload;
    return { map: new SourceMap(payload), dir };
  } catch {
    return undefined;
  }
}

export function display(path: string, cwd: string | undefined): string {
  if (!cwd || !isAbsolute(path)) return path;
  const rel = relative(cwd, path);
  return rel.startsWith("..") ? path : rel;
}

/** The functions of every app script of the process (Debugger must be enabled; see enableAndCollect). */
export async function loadFunctions(cdp: Cdp, scripts: readonly ScriptParsed[], options: ScriptOptions = {}): Promise<NodeFunction[]> {
  const out: NodeFunction[] = [];
  const seen = new Set<string>();
  const own = await appScripts(cdp, options.includeDependencies);
  for (const s of scripts.filter((x) => own(x.url)).slice(0, maxScripts)) {
    if (seen.has(s.scriptId)) continue;
    seen.add(s.scriptId);
    let source: string;
    try {
      ({ scriptSource: source } = await cdp.send<{ scriptSource: string }>("Debugger.getScriptSource", { scriptId: s.scriptId }));
    } catch {
      continue; // collected meanwhile
    }
    if (source.length > maxSourceBytes) continue;
    const script = toPath(s.url);
    const mapped = await loadSourceMap(script, s.sourceMapURL);
    // CommonJS sources are wrapped by Node in a function on one line: the positions of the text we parse are the script's.
    for (const fn of listJsFunctions(source)) {
      let file = script;
      let line = fn.start.line + 1;
      if (mapped) {
        const e = mapped.map.findEntry(fn.start.line, fn.start.column) as { originalSource?: string; originalLine?: number };
        if (e.originalSource !== undefined && e.originalLine !== undefined) {
          file = e.originalSource.startsWith("file://") ? fileURLToPath(e.originalSource) : resolve(mapped.dir, e.originalSource);
          line = e.originalLine + 1;
        }
      }
      const shown = display(file, options.cwd);
      out.push({ ...fn, scriptId: s.scriptId, script, file: shown, line, label: `${fn.name} (${shown}:${line})` });
    }
  }
  return out;
}

/**
 * The one function `spec` names: a name ("fetchUser", "Users.get"), or
 * file:line (a suffix of the shown file or the script, and a line inside the
 * function; the innermost wins). Returns every candidate when not exactly one.
 */
export function matchFunction(functions: readonly NodeFunction[], spec: string): NodeFunction[] {
  const fileLine = /^(.+):(\d+)$/.exec(spec);
  if (fileLine) {
    const [, file, lineText] = fileLine;
    const line = Number(lineText);
    const inFile = functions.filter((f) => f.file === file || f.file.endsWith(`/${file}`) || f.script.endsWith(`/${file}`) || f.script === file);
    const starting = inFile.filter((f) => f.line === line);
    if (starting.length) return starting;
    // A line inside a function: the generated positions for scripts, so only when the file is the script itself.
    const inside = inFile.filter((f) => f.file === f.script || f.script.endsWith(`/${file}`)).filter((f) => f.start.line + 1 <= line && line <= f.end.line + 1);
    inside.sort((a, b) => b.start.line - a.start.line || b.start.column - a.start.column);
    return inside.slice(0, 1);
  }
  const exact = functions.filter((f) => f.name === spec);
  if (exact.length) return exact;
  return functions.filter((f) => f.name.endsWith(`.${spec}`));
}
