// What `coral traffic` prints: the sample list (TIME METHOD PATH STATUS
// DURATION ID), one sample in full (request and response: headers and
// bodies), and the JSON forms of both (also what coral_query_traffic and
// coral_get_traffic_sample answer with).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { TrafficSampleSummary } from "@coral/proto/gen/coral/agent/v1/traffic_pb";
import type { TrafficSample } from "@coral/proto/gen/coral/sdk/v1/traffic_pb";
import { clip, colors, columns, formatTime, timeHeader } from "./text.ts";

export interface TrafficRow {
  id: string;
  time: string;
  method: string;
  path: string;
  route: string;
  status: number;
  durationMs: number;
  reason: string;
}

export interface TrafficSampleJson extends TrafficRow {
  requestHeaders: { name: string; value: string }[];
  responseHeaders: { name: string; value: string }[];
  /** UTF-8 text when the body is text, else base64 (bodyEncoding says which). */
  requestBody: string;
  requestBodyEncoding: "utf8" | "base64";
  requestBodyTruncated: boolean;
  requestBodySize: number;
  responseBody: string;
  responseBodyEncoding: "utf8" | "base64";
  responseBodyTruncated: boolean;
  responseBodySize: number;
}

export function trafficRow(s: TrafficSampleSummary | TrafficSample): TrafficRow {
  return {
    id: s.id,
    time: s.startTime ? timestampDate(s.startTime).toISOString() : "",
    method: s.method,
    path: s.path,
    route: s.route,
    status: s.status,
    durationMs: Math.round(s.durationMs * 1000) / 1000,
    reason: s.reason,
  };
}

/** Text when the bytes are valid UTF-8 without control characters other than whitespace; else base64. */
function body(bytes: Uint8Array): { text: string; encoding: "utf8" | "base64" } {
  const text = Buffer.from(bytes).toString("utf8");
  // eslint-disable-next-line no-control-regex
  const binary = text.includes("\uFFFD") || /[\u0000-\u0008\u000e-\u001f]/.test(text);
  return binary ? { text: Buffer.from(bytes).toString("base64"), encoding: "base64" } : { text, encoding: "utf8" };
}

export function trafficSampleJson(s: TrafficSample): TrafficSampleJson {
  const req = body(s.requestBody);
  const res = body(s.responseBody);
  return {
    ...trafficRow(s),
    requestHeaders: s.requestHeaders.map((h) => ({ name: h.name, value: h.value })),
    responseHeaders: s.responseHeaders.map((h) => ({ name: h.name, value: h.value })),
    requestBody: req.text,
    requestBodyEncoding: req.encoding,
    requestBodyTruncated: s.requestBodyTruncated,
    requestBodySize: Number(s.requestBodySize),
    responseBody: res.text,
    responseBodyEncoding: res.encoding,
    responseBodyTruncated: s.responseBodyTruncated,
    responseBodySize: Number(s.responseBodySize),
  };
}

const ms = (x: number) => (x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`);

export function formatTrafficList(service: string, samples: readonly (TrafficSampleSummary | TrafficSample)[], options: { color: boolean; utc?: boolean; since: string; sampleRate: number; truncated: boolean }): string {
  const c = colors(options.color);
  if (samples.length === 0)
    return (
      `No traffic samples of ${service} match in the last ${options.since}.\n` +
      (options.sampleRate < 0
        ? "(The agent has not reached the app's Coral SDK request middleware: coral.instrumentServer(server), app.use(coral.express()) or app.register(coral.fastify).)"
        : `(The SDK keeps ${Math.round(options.sampleRate * 1000) / 10} % of requests and every 5xx.)`)
    );
  const head = [timeHeader(options), "METHOD", "PATH", "STATUS", "DURATION", "ID"].map((h) => c.bold(h));
  const body = samples.map((s) => {
    const status = String(s.status);
    return [
      formatTime(s.startTime, options),
      s.method,
      clip(s.path, 60),
      s.status >= 500 ? c.red(status) : s.status >= 400 ? c.yellow(status) : status,
      ms(s.durationMs),
      s.id,
    ];
  });
  const lines = columns(head, body);
  if (options.truncated) lines.push(c.dim(`(more samples match: showing the newest ${samples.length}; use --limit or narrower filters)`));
  return lines.join("\n");
}

export function formatTrafficSample(s: TrafficSample, options: { color: boolean; utc?: boolean }): string {
  const c = colors(options.color);
  const j = trafficSampleJson(s);
  const out: string[] = [];
  out.push(c.bold(`${j.method} ${j.path}`) + c.dim(`  (route ${j.route})`));
  out.push(`id ${j.id} · ${formatTime(s.startTime, options)}${options.utc ? " UTC" : ""} · ${ms(j.durationMs)} · kept because ${j.reason === "error" ? "it is a 5xx" : "it was sampled"}`);
  const section = (title: string, headers: { name: string; value: string }[], text: string, encoding: string, truncated: boolean, size: number) => {
    out.push("", c.bold(title));
    for (const h of headers) out.push(`${h.name}: ${h.value}`);
    if (size === 0) {
      out.push("", c.dim("(no body)"));
      return;
    }
    out.push("", encoding === "base64" ? c.dim(`(binary body, base64)`) : "", text);
    if (truncated) out.push(c.dim(`… (cut: ${Buffer.byteLength(encoding === "base64" ? Buffer.from(text, "base64") : text)} of ${size} bytes kept)`));
  };
  section("Request", j.requestHeaders, j.requestBody, j.requestBodyEncoding, j.requestBodyTruncated, j.requestBodySize);
  section(`Response ${j.status}`, j.responseHeaders, j.responseBody, j.responseBodyEncoding, j.responseBodyTruncated, j.responseBodySize);
  return out.filter((l, i) => !(l === "" && out[i - 1] === "")).join("\n");
}
