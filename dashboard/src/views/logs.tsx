// Logs: the OpenTelemetry log records the agents keep, filtered at the
// agents through the colony as `coral logs` does (component, lowest
// severity, text, trace id, range), newest last like a terminal; "follow"
// asks again every 2 s. A record with a trace id links to its waterfall.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { logRow } from "@coral/common/otel-rows";
import { useEffect } from "preact/hooks";
import { colony } from "../api.ts";
import { formatTime } from "../logic/index.ts";
import { Link, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import { ComponentFilter, RangeButtons } from "./filters.tsx";

export const telemetryRanges = [
  { id: "15m", seconds: 900 },
  { id: "1h", seconds: 3600 },
  { id: "6h", seconds: 6 * 3600 },
  { id: "24h", seconds: 86_400 },
] as const;

const severities = [
  { id: "", label: "any", number: 0 },
  { id: "debug", label: "debug and above", number: 5 },
  { id: "info", label: "info and above", number: 9 },
  { id: "warn", label: "warn and above", number: 13 },
  { id: "error", label: "error and above", number: 17 },
] as const;

const followEveryMs = 2000;

/** What a telemetry answer left out: more records than the limit, agents that did not answer. */
export function TelemetryNotes({ truncated, unavailable, what }: { truncated: boolean; unavailable: readonly string[]; what: string }) {
  return (
    <>
      {truncated && <p class="muted">More {what} match: narrow the filters.</p>}
      {unavailable.map((u) => (
        <p class="muted" data-testid="unavailable">
          not answered: {u}
        </p>
      ))}
    </>
  );
}

export function Logs() {
  const { query } = useLocation();
  const service = query.get("service") ?? "";
  const severity = severities.find((s) => s.id === query.get("severity")) ?? severities[0];
  const grep = query.get("grep") ?? "";
  const trace = query.get("trace") ?? "";
  const follow = query.get("follow") === "1";
  const range = telemetryRanges.find((r) => r.id === query.get("since")) ?? telemetryRanges[1];
  const records = useAsync(
    () =>
      colony.queryLogs({
        filter: { service, minSeverity: severity.number, grep, traceId: trace, since: timestampFromDate(new Date(Date.now() - range.seconds * 1000)), limit: 500 },
      }),
    [service, severity.id, grep, trace, range.id],
  );
  useEffect(() => {
    if (!follow) return;
    const timer = setInterval(records.reload, followEveryMs);
    return () => clearInterval(timer);
  }, [follow, records.reload]);
  // The colony answers newest first; a log reads oldest first.
  const rows = (records.data?.records.map(logRow) ?? []).reverse();
  return (
    <div>
      <div class="toolbar">
        <h2>Logs</h2>
        <ComponentFilter value={service} />
        <select value={severity.id} data-filter="severity" onChange={(e) => setQuery("severity", (e.target as HTMLSelectElement).value || null)}>
          {severities.map((s) => (
            <option value={s.id}>{s.label}</option>
          ))}
        </select>
        <input value={grep} placeholder="text" data-filter="grep" onChange={(e) => setQuery("grep", (e.target as HTMLInputElement).value || null)} />
        <input value={trace} placeholder="trace id" data-filter="trace" onChange={(e) => setQuery("trace", (e.target as HTMLInputElement).value.trim() || null)} />
        <RangeButtons ranges={telemetryRanges} current={range.id} />
        <label>
          <input type="checkbox" checked={follow} data-filter="follow" onChange={(e) => setQuery("follow", (e.target as HTMLInputElement).checked ? "1" : null)} /> follow
        </label>
      </div>
      {records.error && <p class="error">{records.error}</p>}
      {records.data && rows.length === 0 && (
        <p class="muted" data-testid="no-logs">
          No log records match. (Apps send OpenTelemetry logs to their agent: OTLP on 127.0.0.1:4317 gRPC or :4318 HTTP.)
        </p>
      )}
      {rows.length > 0 && (
        <table class="grid logs" data-testid="logs">
          <tbody>
            {rows.map((r, n) => (
              <tr key={`${r.time}/${n}`} class={r.severityNumber >= 17 ? "failed" : r.severityNumber >= 13 ? "warned" : ""}>
                <td class="muted nowrap">{formatTime(new Date(r.time))}</td>
                <td data-field="severity">{r.severity}</td>
                <td>
                  <Link href={`/components/${encodeURIComponent(r.service)}`}>{r.service}</Link>
                </td>
                <td class="details" data-field="body">
                  {r.body}
                </td>
                <td class="mono">{r.traceId && <Link href={`/traces/${r.traceId}`}>trace</Link>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {records.data && <TelemetryNotes truncated={records.data.truncated} unavailable={records.data.unavailable} what="records" />}
    </div>
  );
}
