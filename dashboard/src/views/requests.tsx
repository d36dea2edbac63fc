// The component view's Requests panel (RED: requests/s, 5xx/s and p95 over
// time, and the per-route table `coral requests` prints) and its Traffic
// panel (the sampled requests the agent keeps, as `coral traffic` lists
// them; a row opens the sample: headers, already redacted by the SDK, and
// bodies up to its size limit).
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { requestRows } from "@coral/common/request-rows";
import { spanMs } from "@coral/common/otel-rows";
import { useState } from "preact/hooks";
import { colony, traffic } from "../api.ts";
import { formatTime, redCharts } from "../logic/index.ts";
import { useAsync } from "../use-async.ts";
import { MetricChart } from "./chart.tsx";

export function RequestsPanel({ service, seconds }: { service: string; seconds: number }) {
  const red = useAsync(async () => {
    const until = new Date();
    const res = await colony.queryMetrics({ service, since: timestampFromDate(new Date(until.getTime() - seconds * 1000)), until: timestampFromDate(until) });
    return { rows: requestRows(res, seconds * 1000, until.getTime()), charts: redCharts(res) };
  }, [service, seconds]);
  if (red.error) return <p class="error">{red.error}</p>;
  if (!red.data) return <p class="muted">Loading…</p>;
  if (red.data.rows.length === 0)
    return (
      <p class="muted" data-testid="no-requests">
        No HTTP requests seen in this range. (eBPF request tracing needs the agent to run as root with bpftrace, plaintext HTTP/1.x only; or use the Coral SDK's request
        middleware in the app.)
      </p>
    );
  return (
    <div data-testid="requests">
      <div class="charts">
        {red.data.charts.map((c) => (
          <MetricChart chart={c} key={c.metric} />
        ))}
      </div>
      <table class="grid">
        <thead>
          <tr>
            <th>method</th>
            <th>route</th>
            <th class="num">requests</th>
            <th class="num">4xx</th>
            <th class="num">5xx</th>
            <th class="num">rate/s</th>
            <th class="num">p50</th>
            <th class="num">p95</th>
            <th class="num">p99</th>
            <th>source</th>
          </tr>
        </thead>
        <tbody>
          {red.data.rows.map((r) => (
            <tr key={`${r.method} ${r.route}`} data-route={`${r.method} ${r.route}`}>
              <td>{r.method}</td>
              <td data-field="route">{r.route}</td>
              <td class="num" data-field="requests">
                {r.requests}
              </td>
              <td class={`num ${r["4xx"] ? "warn-text" : ""}`}>{r["4xx"]}</td>
              <td class={`num ${r["5xx"] ? "error" : ""}`} data-field="5xx">
                {r["5xx"]}
              </td>
              <td class="num">{r.ratePerSec.toFixed(2)}</td>
              <td class="num">{spanMs(r.p50Ms)}</td>
              <td class="num">{spanMs(r.p95Ms)}</td>
              <td class="num">{spanMs(r.p99Ms)}</td>
              <td class="muted">{r.source}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function TrafficPanel({ service, seconds }: { service: string; seconds: number }) {
  const [filters, setFilters] = useState({ pathPrefix: "", method: "", status: "" });
  const [open, setOpen] = useState<string | undefined>(undefined);
  const samples = useAsync(
    () => traffic.queryTraffic({ serviceName: service, ...filters, since: timestampFromDate(new Date(Date.now() - seconds * 1000)), limit: 50 }),
    [service, seconds, filters.pathPrefix, filters.method, filters.status],
  );
  const field = (name: keyof typeof filters, placeholder: string) => (
    <input
      value={filters[name]}
      placeholder={placeholder}
      data-filter={name}
      onChange={(e) => setFilters((f) => ({ ...f, [name]: (e.target as HTMLInputElement).value.trim() }))}
    />
  );
  return (
    <div data-testid="traffic">
      <div class="toolbar">
        {field("pathPrefix", "path prefix, e.g. /users")}
        {field("method", "method")}
        {field("status", "status, e.g. 5xx")}
        <button class="link" onClick={samples.reload}>
          refresh
        </button>
        {samples.data && (
          <span class="muted" data-testid="traffic-buffer">
            {String(samples.data.storedSamples)} samples kept ({Math.round(Number(samples.data.storedBytes) / 1024)} KiB)
            {samples.data.sampleRate >= 0 ? `, sampling ${Math.round(samples.data.sampleRate * 1000) / 10} % and every 5xx` : ", no SDK request middleware reached yet"}
          </span>
        )}
      </div>
      {samples.error && <p class="error">{samples.error}</p>}
      {samples.data && samples.data.samples.length === 0 && (
        <p class="muted" data-testid="no-traffic">
          No sampled requests match. (Traffic samples come from the Coral SDK's request middleware in the app.)
        </p>
      )}
      {samples.data && samples.data.samples.length > 0 && (
        <table class="grid">
          <thead>
            <tr>
              <th>time</th>
              <th>method</th>
              <th>path</th>
              <th class="num">status</th>
              <th class="num">duration</th>
              <th>kept</th>
            </tr>
          </thead>
          <tbody>
            {samples.data.samples.flatMap((s) => [
              <tr key={s.id} data-sample={s.id} class="clickable" onClick={() => setOpen(open === s.id ? undefined : s.id)}>
                <td class="muted nowrap">{s.startTime ? formatTime(timestampDate(s.startTime)) : ""}</td>
                <td>{s.method}</td>
                <td data-field="path">{s.path}</td>
                <td class={`num ${s.status >= 500 ? "error" : ""}`}>{s.status}</td>
                <td class="num">{spanMs(s.durationMs)}</td>
                <td class="muted">{s.reason}</td>
              </tr>,
              open === s.id && (
                <tr key={`${s.id}-detail`} class="details">
                  <td colSpan={6}>
                    <SampleDetail id={s.id} />
                  </td>
                </tr>
              ),
            ])}
          </tbody>
        </table>
      )}
      {samples.data?.truncated && <p class="muted">More samples match: narrow the filters.</p>}
    </div>
  );
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

function Body({ label, bytes, size, truncated }: { label: string; bytes: Uint8Array; size: bigint; truncated: boolean }) {
  if (size === 0n) return <p class="muted">{label}: empty</p>;
  return (
    <div>
      <p class="muted">
        {label}: {String(size)} bytes{truncated ? `, first ${bytes.length} kept` : ""}
      </p>
      <pre class="body" data-field={label}>
        {utf8.decode(bytes)}
      </pre>
    </div>
  );
}

function SampleDetail({ id }: { id: string }) {
  const detail = useAsync(() => traffic.getTrafficSample({ id }), [id]);
  if (detail.error) return <p class="error">{detail.error}</p>;
  const s = detail.data?.sample;
  if (!s) return <p class="muted">Loading…</p>;
  const headers = (list: { name: string; value: string }[]) => (
    <table class="headers">
      {list.map((h) => (
        <tr>
          <td class="muted">{h.name}</td>
          <td>{h.value}</td>
        </tr>
      ))}
    </table>
  );
  return (
    <div class="sample" data-testid="sample-detail">
      <p>
        <strong>
          {s.method} {s.path}
        </strong>{" "}
        → {s.status} in {spanMs(s.durationMs)} <span class="muted">(route {s.route})</span>
      </p>
      <div class="sample-columns">
        <div>
          <h4>request headers</h4>
          {headers(s.requestHeaders)}
          <Body label="request body" bytes={s.requestBody} size={s.requestBodySize} truncated={s.requestBodyTruncated} />
        </div>
        <div>
          <h4>response headers</h4>
          {headers(s.responseHeaders)}
          <Body label="response body" bytes={s.responseBody} size={s.responseBodySize} truncated={s.responseBodyTruncated} />
        </div>
      </div>
    </div>
  );
}
