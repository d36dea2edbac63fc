// `coral requests`' table: RED per route from @coral/common/request-rows
// (shared with the coral_query_requests tool and the dashboard).
import type { RequestRow } from "@coral/common/request-rows";
import { colors, columns } from "./text.ts";

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

export function formatRequestRows(service: string, rows: readonly RequestRow[], options: { color: boolean; since: string }): string {
  const c = colors(options.color);
  if (rows.length === 0)
    return `No HTTP requests seen for ${service} in the last ${options.since}.\n(eBPF request tracing needs the agent to run as root with bpftrace, plaintext HTTP/1.x only; or use the Coral SDK's request middleware in the app.)`;
  const head = ["METHOD", "ROUTE", "REQUESTS", "4XX", "5XX", "RATE/S", "P50 MS", "P95 MS", "P99 MS", "SOURCE"].map((h) => c.bold(h));
  const body = rows.map((r) => [
    r.method,
    r.route,
    String(r.requests),
    r["4xx"] ? c.yellow(String(r["4xx"])) : "0",
    r["5xx"] ? c.red(String(r["5xx"])) : "0",
    r.ratePerSec.toFixed(2),
    ms(r.p50Ms),
    ms(r.p95Ms),
    ms(r.p99Ms),
    r.source,
  ]);
  return columns(head, body).join("\n");
}
