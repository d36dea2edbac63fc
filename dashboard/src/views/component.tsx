// Component: one component's state, metric charts for a time range (raw 1 s
// points from its agents for short ranges, the colony's rollups for long
// ones), requests per route (RED) and sampled requests, its SDK health,
// events and insights, and links to its traces and logs.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import { colony } from "../api.ts";
import { useLive } from "../live.ts";
import { buildCharts, chartRangeToProfile, type Chart, formatBytes, formatDuration, formatPercent, profileHref, rangePreset, rangePresets, toneOf } from "../logic/index.ts";
import { Link, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import { MetricChart } from "./chart.tsx";
import { RequestsPanel, TrafficPanel } from "./requests.tsx";
import { ComponentFlags } from "./control.tsx";
import { EventList } from "./events.tsx";
import { InsightList } from "./insights.tsx";

async function loadCharts(service: string, seconds: number, raw: boolean): Promise<{ charts: Chart[]; unavailable: string[]; note?: string }> {
  const until = new Date();
  const since = new Date(until.getTime() - seconds * 1000);
  const range = { service, since: timestampFromDate(since), until: timestampFromDate(until) };
  if (raw) {
    const res = await colony.queryMetrics({ ...range, raw: true, limit: 20_000 });
    // Agents that cannot answer raw queries: fall back to the colony's own summaries.
    if (res.rawPoints.length > 0) return { charts: buildCharts(res), unavailable: res.unavailable };
    const summaries = await colony.queryMetrics({ ...range, interval: "1m" });
    return { charts: buildCharts(summaries), unavailable: res.unavailable };
  }
  const charts = buildCharts(await colony.queryMetrics(range));
  if (charts.length > 0) return { charts, unavailable: [] as string[] };
  // Nothing rolled up yet (a component that started minutes ago): its agent's raw points of the last 15 minutes instead.
  const recent = await loadCharts(service, 900, true);
  return { ...recent, note: recent.charts.length ? "Nothing rolled up in this range yet: showing the last 15 minutes of raw points." : undefined };
}

export function ComponentView({ name, admin }: { name: string; admin: boolean }) {
  const { query } = useLocation();
  const { status } = useLive();
  const preset = rangePreset(query.get("range"));
  const charts = useAsync(() => loadCharts(name, preset.seconds, preset.raw), [name, preset.id]);
  const agents = status?.services.filter((s) => s.name === name) ?? [];
  return (
    <div class="component" data-testid="component" data-name={name}>
      <div class="toolbar">
        <h2>{name}</h2>
        {agents.map((a) => (
          <span class="facts" data-agent={a.agentId}>
            <span class={`pill ${toneOf(a.status)}`}>{a.status}</span> <span class={`pill ${toneOf(a.health)}`}>{a.health}</span> {a.version && `v${a.version}`} · up{" "}
            {formatDuration(a.uptimeSeconds)} · {a.restartCount} restarts · CPU {formatPercent(a.cpuPercent)} · {formatBytes(a.memoryBytes)} · pid {a.pid}
            {a.address && ` · ${a.address}:${a.port}`}
          </span>
        ))}
        {status && agents.length === 0 && <span class="muted">no agent observes {name} now</span>}
        <Link href={profileHref(name, { window: preset.id })} class="profile-link" title="the always-on profiler's stored CPU profiles: a flame graph">
          CPU profile
        </Link>
        <Link href={`/components/${encodeURIComponent(name)}/terminal`} class="side-link" title="a shell beside it, in its process's namespaces (an exec session; recorded)">
          terminal
        </Link>
        <Link href={`/traces?service=${encodeURIComponent(name)}`} class="side-link" title="the OpenTelemetry spans its agent kept">
          traces
        </Link>
        <Link href={`/logs?service=${encodeURIComponent(name)}`} class="side-link" title="the OpenTelemetry log records its agent kept">
          logs
        </Link>
      </div>
      {agents.some((a) => a.components.length > 0) && (
        <section>
          <h3>SDK health</h3>
          <ul class="sdk">
            {agents.flatMap((a) =>
              a.components.map((c) => (
                <li>
                  <span class={`pill ${toneOf(healthWord(c.status))}`}>{healthWord(c.status)}</span> {c.name} {c.message && <span class="muted">{c.message}</span>}
                </li>
              )),
            )}
          </ul>
        </section>
      )}
      <section>
        <div class="toolbar">
          <h3>Metrics</h3>
          <span class="presets">
            {rangePresets.map((p) => (
              <button class={p.id === preset.id ? "active" : ""} onClick={() => setQuery("range", p.id)} data-range={p.id}>
                {p.label}
              </button>
            ))}
          </span>
          <button class="link" onClick={charts.reload}>
            refresh
          </button>
        </div>
        {charts.error && <p class="error">{charts.error}</p>}
        {charts.data?.unavailable.map((u) => (
          <p class="muted">raw points unavailable: {u}</p>
        ))}
        {charts.data?.note && <p class="muted" data-testid="charts-note">{charts.data.note}</p>}
        {charts.data && charts.data.charts.length === 0 && <p class="muted">No metrics in this range.</p>}
        <div class="charts">
          {charts.data?.charts.map((c) => (
            <MetricChart
              chart={c}
              key={c.metric}
              rangeLink={
                c.metric === "cpu_percent"
                  ? { label: "profile this range", title: "the stored CPU profile of the range shown (drag on the chart to zoom)", href: (min, max) => profileHref(name, chartRangeToProfile(min, max)) }
                  : undefined
              }
            />
          ))}
        </div>
      </section>
      <section>
        <h3>Requests</h3>
        <RequestsPanel service={name} seconds={preset.seconds} />
      </section>
      <SampledRequests service={name} seconds={Math.max(preset.seconds, 3600)} />
      <ComponentFlags service={name} admin={admin} />
      <section>
        <h3>Insights</h3>
        <InsightList service={name} status="active" admin={admin} />
      </section>
      <section>
        <h3>Events</h3>
        <EventList service={name} type="" sinceSeconds={Math.max(preset.seconds, 3600)} limit={50} showService={false} />
      </section>
    </div>
  );
}

/** Asked of the component's agent (through the mesh) only once opened: most visits do not need it. */
function SampledRequests({ service, seconds }: { service: string; seconds: number }) {
  const [open, setOpen] = useState(false);
  return (
    <section>
      <details onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)} data-testid="sampled-requests">
        <summary>
          <h3>Sampled requests</h3> <span class="muted">kept by the Coral SDK's request middleware: method, path, status, headers and bodies</span>
        </summary>
        {open && <TrafficPanel service={service} seconds={seconds} />}
      </details>
    </section>
  );
}

function healthWord(status: number): string {
  return ["unknown", "healthy", "degraded", "unhealthy"][status] ?? "unknown";
}
