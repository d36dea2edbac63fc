// ConfigError: what is wrong, where. Every message names the file, then the
// key path (or line and column for YAML syntax), then the problem:
//   .coral/config.yaml: colony.api.port: must be a port from 1 to 65535 (got 70000)
import { isAbsolute, relative } from "node:path";
import YAML from "yaml";
import { z } from "zod";

export interface ConfigIssue {
  /** Dotted key path ("colony.api.port"); empty for the whole file. */
  path: string;
  message: string;
  /** 1-based position, for YAML syntax errors. */
  line?: number;
  column?: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  /** The file as shown in messages (relative to the working folder when inside it). */
  readonly displayFile: string;
  constructor(
    /** Absolute path of the file. */
    readonly file: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    const shown = displayPath(file);
    super(issues.map((issue) => formatIssue(shown, issue)).join("\n"));
    this.displayFile = shown;
  }
}

function formatIssue(file: string, issue: ConfigIssue): string {
  const where = [file];
  if (issue.line !== undefined) where.push(`line ${issue.line}, column ${issue.column ?? 1}`);
  if (issue.path) where.push(issue.path);
  return `${where.join(": ")}: ${issue.message}`;
}

/** `path` relative to the working folder when it is inside it, else absolute. */
export function displayPath(path: string, cwd = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

/** Parses YAML text; syntax errors become a ConfigError with line and column. */
export function parseYaml(text: string, file: string): unknown {
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((err) => ({
        path: "",
        message: `YAML syntax error: ${(err.message.split("\n")[0] ?? err.message).replace(/ at line \d+, column \d+:?$/, "")}`,
        line: err.linePos?.[0].line ?? 1,
        column: err.linePos?.[0].col ?? 1,
      })),
    );
  }
  return dropNulls(doc.toJS({ maxAliasCount: 100 }) as unknown);
}

/** "key:" with nothing after it means "not set": drop null entries from mappings. */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
    return out;
  }
  return value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value)) return "a mapping";
  return String(value);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (!isPlainObject(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** The object keys a schema allows at `path` (through defaults and optionals). */
function allowedKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const unwrap = (s: z.ZodType): z.ZodType => {
    let current = s;
    while (current instanceof z.ZodDefault || current instanceof z.ZodPrefault || current instanceof z.ZodOptional)
      current = current.unwrap() as z.ZodType;
    return current;
  };
  let node = unwrap(schema);
  for (const key of path) {
    // A record (e.g. mcp.servers.<name>): every key has the value's schema.
    if (node instanceof z.ZodRecord) {
      node = unwrap(node.valueType as z.ZodType);
      continue;
    }
    if (!(node instanceof z.ZodObject)) return [];
    const child = (node.shape as Record<string, z.ZodType>)[String(key)];
    if (!child) return [];
    node = unwrap(child);
  }
  return node instanceof z.ZodObject ? Object.keys(node.shape) : [];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/**
 * Turns zod issues into ConfigIssues. `sources` maps a dotted path to the
 * environment variable that set it, so messages say where a value came from.
 */
export function toConfigIssues(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  schema: z.ZodType,
  sources: Readonly<Record<string, string>> = {},
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const pathText = (path: readonly PropertyKey[]) => {
    const dotted = path.map(String).join(".");
    const source = sources[dotted];
    return source ? `${dotted} (from ${source})` : dotted;
  };
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      const allowed = allowedKeysAt(schema, issue.path);
      for (const key of issue.keys) {
        const close = allowed.filter((k) => editDistance(k, key) <= 2);
        const hint = close.length > 0 ? `; did you mean "${close[0]}"?` : "";
        out.push({ path: pathText([...issue.path, key]), message: `unknown key${hint} (allowed here: ${allowed.join(", ")})` });
      }
      continue;
    }
    const value = valueAt(input, issue.path);
    let message = issue.message;
    // zod's own wording ("Invalid input: ...") only where the schema has none.
    if (issue.code === "invalid_type" && value === undefined) message = "is required";
    else if (issue.code === "invalid_type" && issue.expected === "object" && message.startsWith("Invalid input")) message = "must be a mapping";
    const shown = describeValue(value);
    // A bad key (issue.code invalid_key) is named by the path already; its value is beside the point.
    if (value !== undefined && issue.code !== "invalid_key" && !message.includes(shown)) message += ` (got ${shown})`;
    out.push({ path: pathText(issue.path), message });
  }
  return out;
}
