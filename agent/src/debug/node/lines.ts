// file:line → where V8 breaks in a running Node process. The file is named
// as `coral debug functions` shows it (relative to the process's working
// directory) or by a suffix of it; a TypeScript (or other) source through the
// source map its compiled script names. The location is the first place on
// that line where V8 can break (Debugger.getPossibleBreakpoints); a line
// without code is an error that names the nearest lines with code.
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { DebugError } from "../program.ts";
import { appScripts, display, loadSourceMap, toPath, type Cdp, type ScriptFilter, type ScriptParsed } from "./scripts.ts";

export interface ResolvedLine {
  scriptId: string;
  /** The generated script's path. */
  script: string;
  /** The file as shown to people (the original source when mapped). */
  file: string;
  /** 1-based line in `file`. */
  line: number;
  /** Where the breakpoint goes in the generated script (0-based). */
  location: { lineNumber: number; columnNumber: number };
  /** "file:line". */
  where: string;
}

interface Location {
  lineNumber: number;
  columnNumber: number;
}

/** One decoded source-map segment: generated line and column, source index, original line and column (all 0-based). */
export type Mapping = [genLine: number, genCol: number, source: number, line: number, col: number];

const b64 = new Map([..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"].map((c, i) => [c, i]));

/** Decodes a source map's `mappings` (segments without a source are left out), in generated order. */
export function decodeMappings(mappings: string): Mapping[] {
  const out: Mapping[] = [];
  let genLine = 0;
  let source = 0;
  let line = 0;
  let col = 0;
  for (const lineText of mappings.split(";")) {
    let genCol = 0;
    for (const segment of lineText.split(",")) {
      if (!segment) continue;
      const fields: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of segment) {
        const digit = b64.get(ch);
        if (digit === undefined) throw new Error(`invalid source map mappings (${JSON.stringify(ch)})`);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      genCol += fields[0] ?? 0;
      if (fields.length < 4) continue;
      source += fields[1]!;
      line += fields[2]!;
      col += fields[3]!;
      out.push([genLine, genCol, source, line, col]);
    }
    genLine++;
  }
  return out;
}

/** The mapping that covers a generated position (the last one at or before it), or undefined. */
export function mappingAt(mappings: readonly Mapping[], at: Location): Mapping | undefined {
  let lo = 0;
  let hi = mappings.length - 1;
  let found: Mapping | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = mappings[mid]!;
    if (m[0] < at.lineNumber || (m[0] === at.lineNumber && m[1] <= at.columnNumber)) {
      found = m;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** The lines nearest to `line` (1-based) among `withCode`, as words. */
export function nearestLines(line: number, withCode: Iterable<number>): string {
  const lines = [...new Set(withCode)].sort((a, b) => a - b);
  const before = lines.filter((l) => l < line).pop();
  const after = lines.find((l) => l > line);
  const near = [before, after].filter((l): l is number => l !== undefined);
  return near.length ? `the nearest lines with code: ${near.join(", ")}` : "no line near it has code";
}

interface Candidate {
  scriptId: string;
  script: string;
  /** Absolute path of the file (the script, or one source of its map). */
  path: string;
  shown: string;
  /** Set when the file is a source of the script's map. */
  mapped?: { mappings: Mapping[]; source: number };
}

const matches = (spec: string, c: Candidate) => c.shown === spec || c.path === spec || c.shown.endsWith(`/${spec}`) || c.path.endsWith(`/${spec}`);

/** Parses "file:line" (line ≥ 1), or a clear error. */
export function parseFileLine(spec: string): { file: string; line: number } {
  const m = /^(.+):(\d+)$/.exec(spec.trim());
  if (!m || Number(m[2]) < 1) throw new DebugError("invalid_option", `${JSON.stringify(spec.slice(0, 200))}: expected file:line, e.g. src/server.ts:42 (the file as coral debug functions shows it)`);
  return { file: m[1]!, line: Number(m[2]) };
}

/** The files of the app's scripts (and of their source maps) that `file` names. */
async function candidates(scripts: readonly ScriptParsed[], isOwn: ScriptFilter, file: string, cwd: string | undefined): Promise<{ found: Candidate[]; all: string[] }> {
  const found: Candidate[] = [];
  const all = new Set<string>();
  const seen = new Set<string>();
  for (const s of scripts) {
    if (seen.has(s.scriptId) || !isOwn(s.url)) continue;
    seen.add(s.scriptId);
    const script = toPath(s.url);
    const own: Candidate = { scriptId: s.scriptId, script, path: script, shown: display(script, cwd) };
    all.add(own.shown);
    if (matches(file, own)) found.push(own);
    const loaded = await loadSourceMap(script, s.sourceMapURL);
    if (!loaded) continue;
    const payload = loaded.map.payload;
    let decoded: Mapping[] | undefined;
    payload.sources.forEach((source, index) => {
      const path = source.startsWith("file://") ? fileURLToPath(source) : resolve(loaded.dir, payload.sourceRoot ?? "", source);
      const c: Candidate = { scriptId: s.scriptId, script, path, shown: display(path, cwd) };
      all.add(c.shown);
      if (!matches(file, c)) return;
      decoded ??= decodeMappings(payload.mappings);
      found.push({ ...c, mapped: { mappings: decoded, source: index } });
    });
  }
  return { found, all: [...all].sort() };
}

/** Where `spec` ("file:line") breaks in the process; Debugger must be enabled and `scripts` its scriptParsed events. */
export async function resolveLine(cdp: Cdp, scripts: readonly ScriptParsed[], spec: string, cwd: string | undefined): Promise<ResolvedLine> {
  const { file, line } = parseFileLine(spec);
  const { found, all } = await candidates(scripts, await appScripts(cdp), file, cwd);
  const files = [...new Set(found.map((c) => c.path))];
  if (files.length === 0)
    throw new DebugError(
      "function_not_found",
      `no file ${JSON.stringify(file)} among the app's scripts` + (all.length ? ` (they are: ${all.slice(0, 20).join(", ")}${all.length > 20 ? ", …" : ""})` : " (the process has loaded none)"),
      all.slice(0, 20),
    );
  if (files.length > 1) {
    const shown = [...new Set(found.map((c) => c.shown))];
    throw new DebugError("invalid_option", `${JSON.stringify(file)} matches ${shown.length} files: ${shown.slice(0, 20).join(", ")}; name one by a longer path`, shown.slice(0, 20));
  }
  const c = found[0]!;
  const where = `${c.shown}:${line}`;
  const possible = (from: number, to: number) =>
    cdp
      .send<{ locations: Location[] }>("Debugger.getPossibleBreakpoints", {
        start: { scriptId: c.scriptId, lineNumber: from, columnNumber: 0 },
        end: { scriptId: c.scriptId, lineNumber: to, columnNumber: 0 },
      })
      .then((r) => r.locations.sort((a, b) => a.lineNumber - b.lineNumber || a.columnNumber - b.columnNumber));
  const result = (location: Location): ResolvedLine => ({ scriptId: c.scriptId, script: c.script, file: c.shown, line, location: { lineNumber: location.lineNumber, columnNumber: location.columnNumber }, where });
  if (!c.mapped) {
    const on = await possible(line - 1, line);
    if (on[0]) return result(on[0]);
    const near = await possible(Math.max(0, line - 51), line + 50);
    throw new DebugError("invalid_option", `${where} has no code V8 can break on (${nearestLines(line, near.map((l) => l.lineNumber + 1))})`);
  }
  const { mappings, source } = c.mapped;
  const ofSource = mappings.filter((m) => m[2] === source);
  const onLine = ofSource.filter((m) => m[3] === line - 1);
  if (onLine.length > 0) {
    const from = Math.min(...onLine.map((m) => m[0]));
    const to = Math.max(...onLine.map((m) => m[0])) + 1;
    // The first place V8 breaks whose generated code comes from that line.
    const at = (await possible(from, to)).find((l) => {
      const m = mappingAt(mappings, l);
      return m !== undefined && m[2] === source && m[3] === line - 1;
    });
    if (at) return result(at);
  }
  // The nearest source lines whose code V8 breaks on (mapped back), within 50 lines.
  const nearGen = ofSource.filter((m) => Math.abs(m[3] - (line - 1)) <= 50).map((m) => m[0]);
  const near = nearGen.length ? await possible(Math.min(...nearGen), Math.max(...nearGen) + 1) : [];
  const back = near.flatMap((l) => {
    const m = mappingAt(mappings, l);
    return m && m[2] === source ? [m[3] + 1] : [];
  });
  throw new DebugError("invalid_option", `${where} has no code V8 can break on (${nearestLines(line, back)})`);
}
