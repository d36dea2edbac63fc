/**
 * Scrapes a Prometheus text-exposition endpoint into flat samples.
 *
 * Parsing uses `parse-prometheus-text-format` (the most used npm parser for
 * this format; not actively maintained) as a per-line tokenizer: it handles
 * the label syntax and escapes. We feed it one line at a time because its
 * family grouping drops labels of labelled histograms/summaries (upstream
 * issue #13) and because one bad line would otherwise fail the whole scrape.
 * On top of it we validate names, values and timestamps, track `# TYPE`, and
 * count the lines we skip.
 */
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { describeGetError, httpGet } from "./http-get.ts";

/** The shape of parse-prometheus-text-format 1.1.x output that we rely on (it ships no types). */
interface LibFamily {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; timestamp_ms?: string }[];
}

// A CommonJS package without types: loaded through require so that no
// ambient declaration is needed in whichever tsconfig includes this file.
const requireCjs = createRequire(import.meta.url);
const parsePrometheusTextFormat = requireCjs("parse-prometheus-text-format") as (text: string) => LibFamily[];

export type PromMetricType =
  | "counter"
  | "gauge"
  | "histogram"
  | "summary"
  | "untyped"
  // OpenMetrics types, accepted in `# TYPE` lines.
  | "unknown"
  | "gaugehistogram"
  | "stateset"
  | "info";

const KNOWN_TYPES = new Set<string>(["counter", "gauge", "histogram", "summary", "untyped", "unknown", "gaugehistogram", "stateset", "info"]);

/**
 * One series value. Histograms and summaries come flattened, as exposed:
 * `x_bucket{le="0.5"}`, `x_sum`, `x_count`, and `x{quantile="0.9"}`; `type`
 * is the type of the family the series belongs to.
 */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  type: PromMetricType;
  timestampMs?: number;
}

export interface InvalidLine {
  /** 1-based line number in the exposition text. */
  line: number;
  /** The line, cut to 200 characters. */
  text: string;
}

export interface PromParseResult {
  samples: PromSample[];
  /** Lines that were neither valid samples, valid `# TYPE` lines, comments nor blank. */
  skippedLines: number;
  /** The first few skipped lines, for diagnosis. */
  invalidLines: InvalidLine[];
  /** Set when the text had content but not a single valid sample. */
  error?: string;
}

export interface ScrapeResult extends PromParseResult {
  /** True when the endpoint answered 2xx with parseable text (some lines may still have been skipped). */
  ok: boolean;
  status?: number;
  latencyMs: number;
  /** Body size in bytes. */
  bytes: number;
}

export interface ScrapeOptions {
  /** Refuse bodies larger than this; default 16 MiB. */
  maxBytes?: number;
}

const METRIC_NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const INF_RE = /^([+-]?)inf(?:inity)?$/i;
const TIMESTAMP_RE = /^-?\d+$/;
const FAMILY_SUFFIXES = ["_bucket", "_count", "_sum", "_created", "_total", "_info", "_gcount", "_gsum"];
const MAX_INVALID_KEPT = 5;

/** A sample value as Go's ParseFloat reads it ("1", "-2.5e3", "+Inf", "NaN"); null if not a number. */
export function parsePromValue(text: string): number | null {
  if (FLOAT_RE.test(text)) return Number(text);
  const inf = INF_RE.exec(text);
  if (inf) return inf[1] === "-" ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return NaN;
  return null;
}

function familyType(name: string, types: ReadonlyMap<string, PromMetricType>): PromMetricType {
  const direct = types.get(name);
  if (direct) return direct;
  for (const suffix of FAMILY_SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const base = types.get(name.slice(0, -suffix.length));
    if (base) return base;
  }
  return "untyped";
}

function libParse(line: string): LibFamily[] | null {
  try {
    // The trailing newline makes the library flush the last (only) family.
    return parsePrometheusTextFormat(`${line}\n`);
  } catch {
    return null;
  }
}

/** Parses "# TYPE name type"; null if malformed. */
function parseTypeLine(line: string): { name: string; type: PromMetricType } | null {
  const family = libParse(line)?.[0];
  if (!family) return null;
  const type = family.type.toLowerCase();
  if (!METRIC_NAME_RE.test(family.name) || !KNOWN_TYPES.has(type)) return null;
  return { name: family.name, type: type as PromMetricType };
}

/** Parses one sample line into name, labels, value, timestamp; null if it is not a valid sample. */
function parseSample(line: string): Omit<PromSample, "type"> | null {
  const families = libParse(line);
  const family = families?.[0];
  const metric = family?.metrics[0];
  if (!family || !metric || families.length !== 1 || family.metrics.length !== 1) return null;
  const name = family.name;
  if (!METRIC_NAME_RE.test(name) || !line.startsWith(name) || typeof metric.value !== "string") return null;
  const labels = metric.labels ?? {};
  if (!Object.keys(labels).every((k) => LABEL_NAME_RE.test(k))) return null;

  // The library is lenient after the labels ("1 2 3" reads as value 1,
  // timestamp 23): require exactly "value [timestamp]" there.
  let tail = line.slice(name.length).trimStart();
  if (tail.startsWith("{")) tail = tail.slice(tail.lastIndexOf("}") + 1);
  const tokens = tail.trim().split(/\s+/).filter((t) => t.length > 0);
  if (tokens.length < 1 || tokens.length > 2 || tokens[0] !== metric.value) return null;
  const value = parsePromValue(metric.value);
  if (value === null) return null;
  const sample: Omit<PromSample, "type"> = { name, labels: { ...labels }, value };
  if (tokens.length === 2) {
    const ts = tokens[1] ?? "";
    if (!TIMESTAMP_RE.test(ts) || ts !== metric.timestamp_ms) return null;
    sample.timestampMs = Number(ts);
  }
  return sample;
}

/**
 * Parses Prometheus text exposition format (0.0.4). Never throws: invalid
 * lines are skipped and counted; a text with content but no valid sample
 * gets an `error`.
 */
export function parsePrometheusText(text: string): PromParseResult {
  const samples: PromSample[] = [];
  const invalidLines: InvalidLine[] = [];
  const types = new Map<string, PromMetricType>();
  let skippedLines = 0;
  const skip = (lineNo: number, line: string): void => {
    skippedLines++;
    if (invalidLines.length < MAX_INVALID_KEPT) invalidLines.push({ line: lineNo, text: line.slice(0, 200) });
  };

  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line.length === 0) continue;
    if (line.startsWith("#")) {
      // HELP text and free comments carry no samples; only TYPE matters to us.
      if (!line.startsWith("# TYPE ")) continue;
      const parsed = parseTypeLine(line);
      if (parsed) types.set(parsed.name, parsed.type);
      else skip(i + 1, line);
      continue;
    }
    const sample = parseSample(line);
    if (sample) samples.push({ ...sample, type: familyType(sample.name, types) });
    else skip(i + 1, line);
  }

  const result: PromParseResult = { samples, skippedLines, invalidLines };
  if (samples.length === 0 && skippedLines > 0) {
    const first = invalidLines[0];
    result.error = `not Prometheus text format: no valid sample in ${skippedLines} line(s)${
      first ? `; line ${first.line}: ${JSON.stringify(first.text.slice(0, 80))}` : ""
    }`;
  }
  return result;
}

/**
 * GETs `url` and parses the exposition text. Never throws: connection
 * failures, timeouts, non-2xx answers, oversized bodies and unparseable text
 * are results with `ok: false` and an `error`.
 */
export async function scrapePrometheus(url: string, timeoutMs = 5000, options: ScrapeOptions = {}): Promise<ScrapeResult> {
  const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
  const t0 = performance.now();
  const failed = (error: string, extra: Partial<ScrapeResult> = {}): ScrapeResult => ({
    ok: false,
    samples: [],
    skippedLines: 0,
    invalidLines: [],
    bytes: 0,
    latencyMs: performance.now() - t0,
    ...extra,
    error,
  });
  try {
    new URL(url);
  } catch {
    return failed(`invalid URL: ${url}`);
  }
  try {
    const res = await httpGet(url, {
      timeoutMs,
      maxBodyBytes: maxBytes,
      followRedirects: 5,
      headers: { accept: "text/plain;version=0.0.4;q=1,*/*;q=0.1", "user-agent": "coral-agent/metrics" },
    });
    if (res.status < 200 || res.status > 299) return failed(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`, { status: res.status });
    if (res.tooLarge !== undefined) return failed(`response larger than ${maxBytes} bytes`, { status: res.status, bytes: res.tooLarge });
    const body = { text: (res.body ?? Buffer.alloc(0)).toString("utf8"), bytes: res.body?.length ?? 0 };
    const parsed = parsePrometheusText(body.text);
    const result: ScrapeResult = {
      ...parsed,
      ok: parsed.error === undefined,
      status: res.status,
      bytes: body.bytes,
      latencyMs: performance.now() - t0,
    };
    return result;
  } catch (err) {
    return failed(describeGetError(err, timeoutMs));
  }
}
