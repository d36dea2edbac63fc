// Traces: the OpenTelemetry spans the agents kept (errors, slow spans and a
// share of the rest), filtered at the agents through the colony as `coral
// traces` does; a trace opens as a waterfall across services, linked to its
// logs. Filters live in the URL, so a link shows the same list.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { spanMs, spanRow, traceTree, type SpanRow } from "@coral/common/otel-rows";
import { colony } from "../api.ts";
import { formatTime, parseMinDuration } from "../logic/index.ts";
import { Link, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import { ComponentFilter, RangeButtons } from "./filters.tsx";
import { TelemetryNotes, telemetryRanges } from "./logs.tsx";

export function Traces({ name }: { name: string }) {
  return name ? <TraceWaterfall traceId={name} /> : <TraceList />;
}

function TraceList() {
  const { query } = useLocation();
  const service = query.get("service") ?? "";
  const operation = query.get("operation") ?? "";
  const minText = query.get("min") ?? "";
  const errorsOnly = query.get("errors") === "1";
  const range = telemetryRanges.find((r) => r.id === query.get("since")) ?? telemetryRanges[1];
  const minDurationMs = parseMinDuration(minText);
  const spans = useAsync(async () => {
    if (Number.isNaN(minDurationMs)) throw new Error(`minimum duration: write it as 200ms or 1.5s, not ${JSON.stringify(minText)}`);
    return colony.queryTraces({
      filter: { service, operation, minDurationMs, errorsOnly, since: timestampFromDate(new Date(Date.now() - range.seconds * 1000)), limit: 200 },
    });
  }, [service, operation, minText, errorsOnly, range.id]);
  const rows = spans.data?.spans.map(spanRow) ?? [];
  return (
    <div>
      <div class="toolbar">
        <h2>Traces</h2>
        <ComponentFilter value={service} />
        <input value={operation} placeholder="operation" data-filter="operation" onChange={(e) => setQuery("operation", (e.target as HTMLInputElement).value.trim())} />
        <input value={minText} placeholder="slower than, e.g. 200ms" data-filter="min" onChange={(e) => setQuery("min", (e.target as HTMLInputElement).value.trim())} />
        <label>
          <input type="checkbox" checked={errorsOnly} data-filter="errors" onChange={(e) => setQuery("errors", (e.target as HTMLInputElement).checked ? "1" : null)} /> errors only
        </label>
        <RangeButtons ranges={telemetryRanges} current={range.id} />
        <button class="link" onClick={spans.reload}>
          refresh
        </button>
      </div>
      {spans.error && <p class="error">{spans.error}</p>}
      {spans.data && rows.length === 0 && (
        <p class="muted" data-testid="no-spans">
          No spans match. (Apps send OpenTelemetry to their agent: OTLP on 127.0.0.1:4317 gRPC or :4318 HTTP; errors, slow spans and a share of the rest are kept.)
        </p>
      )}
      {rows.length > 0 && (
        <table class="grid" data-testid="spans">
          <thead>
            <tr>
              <th>time</th>
              <th>component</th>
              <th>operation</th>
              <th class="num">duration</th>
              <th>status</th>
              <th>trace</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.traceId}/${r.spanId}`} data-span={r.spanId}>
                <td class="muted nowrap">{formatTime(new Date(r.start))}</td>
                <td>
                  <Link href={`/components/${encodeURIComponent(r.service)}`}>{r.service}</Link>
                </td>
                <td data-field="operation">{r.name}</td>
                <td class="num">{spanMs(r.durationMs)}</td>
                <td class={r.error ? "error" : "muted"}>{r.error ? `error${r.statusMessage ? `: ${r.statusMessage}` : ""}` : "ok"}</td>
                <td class="mono">
                  <Link href={`/traces/${r.traceId}`}>{r.traceId.slice(0, 16)}…</Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {spans.data && <TelemetryNotes truncated={spans.data.truncated} unavailable={spans.data.unavailable} what="spans" />}
    </div>
  );
}

function TraceWaterfall({ traceId: asked }: { traceId: string }) {
  const traceId = asked.trim().toLowerCase();
  const spans = useAsync(async () => {
    if (!/^[0-9a-f]{32}$/.test(traceId)) throw new Error(`a trace id is 32 hex digits, not ${JSON.stringify(traceId.slice(0, 40))}`);
    return colony.queryTraces({ filter: { traceId, limit: 1000 } });
  }, [traceId]);
  const rows: SpanRow[] = spans.data?.spans.map(spanRow) ?? [];
  const tree = traceTree(rows);
  return (
    <div data-testid="trace" data-trace={traceId}>
      <div class="toolbar">
        <h2>
          Trace <span class="mono">{traceId}</span>
        </h2>
        {rows.length > 0 && (
          <span class="muted">
            {rows.length} spans, {tree.services} component{tree.services === 1 ? "" : "s"}, {spanMs(tree.totalMs)}
          </span>
        )}
        <Link href={`/logs?trace=${traceId}&since=24h`}>logs of this trace</Link>
        <Link href="/traces">all traces</Link>
      </div>
      {spans.error && <p class="error">{spans.error}</p>}
      {spans.data && rows.length === 0 && <p class="muted">No spans of this trace are kept (it may be older than the agents' raw window, or not kept by their rules).</p>}
      {rows.length > 0 && (
        <table class="grid waterfall">
          <thead>
            <tr>
              <th>operation</th>
              <th>component</th>
              <th class="num">duration</th>
              <th class="timeline">timeline</th>
            </tr>
          </thead>
          <tbody>
            {tree.spans.map(({ row: r, depth, offsetMs }) => (
              <tr key={r.spanId} data-span={r.spanId} data-depth={depth} class={r.error ? "failed" : ""} title={r.error ? r.statusMessage || "error" : attributesText(r)}>
                <td style={{ paddingLeft: `${10 + depth * 16}px` }}>{r.name}</td>
                <td>{r.service}</td>
                <td class="num">{spanMs(r.durationMs)}</td>
                <td class="timeline">
                  <div
                    class={`bar ${r.error ? "error-bar" : ""}`}
                    style={{ marginLeft: `${(offsetMs / tree.totalMs) * 100}%`, width: `${Math.max(0.5, (r.durationMs / tree.totalMs) * 100)}%` }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {spans.data && <TelemetryNotes truncated={spans.data.truncated} unavailable={spans.data.unavailable} what="spans" />}
    </div>
  );
}

function attributesText(r: SpanRow): string {
  return Object.entries(r.attributes)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("\n");
}
