// Overview: every component as `coral status` knows it (the same GetStatus
// answer, pushed live), with its active insight count; a row opens the component.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { colony } from "../api.ts";
import { useLive, useTopics } from "../live.ts";
import { formatAgo, formatBytes, formatDuration, formatPercent, toneOf } from "../logic/format.ts";
import { Link } from "../router.tsx";
import { useAsync } from "../use-async.ts";

/** Active insights per service (an insight about several counts for each). */
export function useInsightCounts(): Map<string, number> {
  const insights = useAsync(() => colony.listInsights({ status: "active", limit: 1000 }), []);
  useTopics(["insights"], insights.reload);
  const counts = new Map<string, number>();
  for (const i of insights.data?.insights ?? []) {
    const names = new Set([i.service, ...i.affectedServices].filter(Boolean));
    for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  return counts;
}

export function Overview(_: { admin: boolean }) {
  const { status, receivedAt } = useLive();
  const counts = useInsightCounts();
  if (!status) return <div class="muted">Waiting for the colony…</div>;
  const ingest = status.ingest;
  return (
    <div class="overview">
      <section class="cards">
        <Card label="components" value={String(new Set(status.services.map((s) => s.name)).size)} />
        <Card label="insights" value={String(status.insightCount)} href="/insights" testid="insight-count" />
        <Card label="colony uptime" value={formatDuration(status.uptimeSeconds)} />
        <Card label="NATS" value={status.natsStatus} tone={toneOf(status.natsStatus)} />
        <Card label="discovery" value={status.discoveryStatus} tone={toneOf(status.discoveryStatus.split(" ")[0]!)} />
        <Card label="mesh" value={status.meshMode} />
        {ingest && <Card label="batches set aside (1 h)" value={String(ingest.setAsideRecent)} tone={ingest.setAsideRecent > 0n ? "warn" : "idle"} />}
      </section>
      <table class="grid" data-testid="components">
        <thead>
          <tr>
            <th>component</th>
            <th>status</th>
            <th>health</th>
            <th>version</th>
            <th class="num">uptime</th>
            <th class="num">restarts</th>
            <th class="num">CPU</th>
            <th class="num">memory</th>
            <th class="num">insights</th>
            <th>last seen</th>
          </tr>
        </thead>
        <tbody>
          {status.services.length === 0 && (
            <tr>
              <td colSpan={10} class="muted">
                No components yet: connect one with coral connect &lt;name&gt; --port &lt;port&gt;.
              </td>
            </tr>
          )}
          {status.services.map((s) => (
            <tr data-service={s.name} data-agent={s.agentId} key={s.agentId}>
              <td data-field="name">
                <Link href={`/components/${encodeURIComponent(s.name)}`}>{s.name}</Link>
                {s.processCount > 1 && <span class="muted"> ({s.processCount} processes)</span>}
              </td>
              <td data-field="status">
                <span class={`pill ${toneOf(s.status)}`}>{s.status}</span>
              </td>
              <td data-field="health">
                <span class={`pill ${toneOf(s.health)}`}>{s.health}</span>
              </td>
              <td data-field="version">{s.version || "–"}</td>
              <td data-field="uptime" class="num">
                {formatDuration(Number(s.uptimeSeconds) + (s.uptimeSeconds > 0n ? Math.floor((Date.now() - receivedAt) / 1000) : 0))}
              </td>
              <td data-field="restarts" class="num">
                {s.restartCount}
              </td>
              <td data-field="cpu" class="num">
                {formatPercent(s.cpuPercent)}
              </td>
              <td data-field="memory" class="num">
                {formatBytes(s.memoryBytes)}
              </td>
              <td data-field="insights" class="num">
                {counts.get(s.name) ?? 0}
              </td>
              <td data-field="last-seen" class="muted">
                {s.lastSeen ? formatAgo(timestampDate(s.lastSeen)) : "–"}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Card(props: { label: string; value: string; tone?: string; href?: string; testid?: string }) {
  const body = (
    <>
      <div class={`value ${props.tone ?? ""}`} data-testid={props.testid}>
        {props.value}
      </div>
      <div class="label">{props.label}</div>
    </>
  );
  return <div class="card">{props.href ? <Link href={props.href}>{body}</Link> : body}</div>;
}
