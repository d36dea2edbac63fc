// Insights: what the colony's detectors found, with their evidence and next
// steps. Dismissing one is an admin action (audited like the CLI's).
import { useState } from "preact/hooks";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { colony } from "../api.ts";
import { useTopics } from "../live.ts";
import { formatAgo } from "../logic/format.ts";
import { Link, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";

export function InsightList(props: { service: string; status: string; admin: boolean }) {
  const insights = useAsync(() => colony.listInsights({ status: props.status, service: props.service, limit: 200 }), [props.service, props.status]);
  useTopics(["insights"], insights.reload);
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const dismiss = async (id: bigint) => {
    setActionError(undefined);
    try {
      await colony.dismissInsight({ id });
      insights.reload();
    } catch (err) {
      setActionError(ConnectError.from(err).rawMessage);
    }
  };
  if (insights.error) return <p class="error">{insights.error}</p>;
  if (!insights.data) return <p class="muted">Loading…</p>;
  return (
    <div>
      {actionError && (
        <p class="error" data-testid="action-error">
          {actionError}
        </p>
      )}
      {insights.data.insights.length === 0 && (
        <p class="muted" data-testid="no-insights">
          No {props.status === "all" ? "" : props.status} insights.
        </p>
      )}
      <div class="insights" data-testid="insights">
        {insights.data.insights.map((i) => (
          <article class={`insight ${i.priority}`} data-insight={String(i.id)} key={String(i.id)}>
            <header>
              <span class={`pill ${i.priority === "high" ? "bad" : i.priority === "medium" ? "warn" : "idle"}`}>{i.priority}</span>
              <strong>{i.title}</strong>
              <span class="muted">
                {" "}
                · {i.detector} · {i.status}
                {i.lastSeen && ` · seen ${formatAgo(timestampDate(i.lastSeen))}`}
              </span>
              {i.status === "active" && (
                <button
                  class="dismiss"
                  title={props.admin ? "hide this insight while its condition lasts" : "needs an admin session"}
                  disabled={!props.admin}
                  onClick={() => dismiss(i.id)}
                >
                  Dismiss
                </button>
              )}
            </header>
            <p>{i.summary}</p>
            {i.evidenceLines.length > 0 && (
              <ul class="evidence">
                {i.evidenceLines.map((l) => (
                  <li>{l}</li>
                ))}
              </ul>
            )}
            {i.recommendations.length > 0 && (
              <ul class="recommendations">
                {i.recommendations.map((r) => (
                  <li>
                    <code>{r}</code>
                  </li>
                ))}
              </ul>
            )}
            <p class="muted">
              {[i.service, ...i.affectedServices]
                .filter((s, n, all) => s && all.indexOf(s) === n)
                .map((s) => (
                  <Link href={`/components/${encodeURIComponent(s)}`}>{s} </Link>
                ))}
            </p>
          </article>
        ))}
      </div>
    </div>
  );
}

export function Insights({ admin }: { admin: boolean }) {
  const { query } = useLocation();
  const status = query.get("status") ?? "active";
  return (
    <div>
      <div class="toolbar">
        <h2>Insights</h2>
        <span class="presets">
          {["active", "dismissed", "expired", "all"].map((s) => (
            <button class={s === status ? "active" : ""} onClick={() => setQuery("status", s === "active" ? null : s)}>
              {s}
            </button>
          ))}
        </span>
      </div>
      <InsightList service="" status={status} admin={admin} />
    </div>
  );
}
