/**
 * The colony keys metric summaries by name (labels are not part of the key),
 * and names must match /^[A-Za-z_:][A-Za-z0-9_:./-]*$/, so each method, route
 * and status class is its own metric, named
 * `http_request_duration_ms:GET:2xx:/users/:id`: placeholders `{id}` are
 * written `:id`, any other character outside [A-Za-z0-9_./-] as `::XX` (its
 * UTF-8 bytes in hex). The summary of one such metric is the requests of the
 * interval: count = requests, p50/p95/p99 = latency in milliseconds.
 * The agent writes these names (agent/src/observe/http/metrics.ts) and
 * `coral requests` reads them (cli/src/commands/requests.ts).
 */

export const HTTP_DURATION_METRIC = "http_request_duration_ms";
export const HTTP_UNPARSED_METRIC = "http_unparsed_reads";
/**
 * Published beside the request series when they come from the app's Coral SDK
 * middleware rather than eBPF (one point per request the SDK counted): the
 * colony keys summaries by name only, so the source is a series of its own.
 * `coral requests` shows SOURCE sdk for a service that has it in the window.
 */
export const HTTP_SDK_SOURCE_METRIC = "http_requests_source_sdk";

const plain = /[A-Za-z0-9_./-]/;
// TextEncoder/TextDecoder rather than Buffer: the dashboard runs this in the browser too.
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function encodeRoute(route: string): string {
  let out = "";
  let i = 0;
  while (i < route.length) {
    const ph = /^\{([a-z]+)\}/.exec(route.slice(i));
    if (ph) {
      out += `:${ph[1]}`;
      i += ph[0].length;
      continue;
    }
    const ch = route[i]!;
    if (plain.test(ch)) out += ch;
    else for (const b of utf8Encoder.encode(ch)) out += `::${b.toString(16).padStart(2, "0")}`;
    i++;
  }
  return out;
}

export function decodeRoute(encoded: string): string {
  const bytes: number[] = [];
  let out = "";
  const flush = () => {
    if (bytes.length) out += utf8Decoder.decode(new Uint8Array(bytes));
    bytes.length = 0;
  };
  let i = 0;
  while (i < encoded.length) {
    const esc = /^::([0-9a-f]{2})/.exec(encoded.slice(i));
    if (esc) {
      bytes.push(parseInt(esc[1]!, 16));
      i += 4;
      continue;
    }
    flush();
    const ph = /^:([a-z]+)/.exec(encoded.slice(i));
    if (ph) {
      out += `{${ph[1]}}`;
      i += ph[0].length;
      continue;
    }
    out += encoded[i];
    i++;
  }
  flush();
  return out;
}

export interface RequestSeries {
  method: string;
  route: string;
  /** "2xx", "4xx", … */
  status: string;
}

export function requestMetricName(s: RequestSeries): string {
  return `${HTTP_DURATION_METRIC}:${s.method}:${s.status}:${encodeRoute(s.route)}`;
}

export function parseRequestMetricName(name: string): RequestSeries | null {
  const m = /^http_request_duration_ms:([A-Z]{1,16}):([1-5]xx):(.+)$/.exec(name);
  if (!m) return null;
  return { method: m[1]!, status: m[2]!, route: decodeRoute(m[3]!) };
}
