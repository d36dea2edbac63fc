// A scripted investigation for the Anthropic stand-in: ask for events and
// status (the registry's coral_* tools), then for metrics, then answer with numbers read from the tool
// results the loop sent back (so the answer can only hold them if the real
// tools ran against the real colony).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { HealthStatus } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import type { ToolContext } from "@coral/cli/tools";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";
import { toolResults, type Script } from "./anthropic-stand-in.ts";

export const PEAK_MEMORY = 931_234_567;

export function investigation(): Script {
  return ({ body }) => {
    const turn = body.messages.filter((m) => m.role === "assistant").length;
    if (turn === 0)
      return {
        kind: "message",
        stop_reason: "tool_use",
        content: [
          { type: "thinking", thinking: "Restarts: look at frontend's restart events and its status.", signature: "sig-standin-1" },
          { type: "text", text: "Let me look at frontend's restarts." },
          { type: "tool_use", id: "toolu_standin_1", name: "coral_query_events", input: { service: "frontend", event_type: "restart", since: "2h" } },
          { type: "tool_use", id: "toolu_standin_2", name: "coral_get_status", input: {} },
        ],
      };
    if (turn === 1)
      return {
        kind: "message",
        stop_reason: "tool_use",
        content: [
          { type: "text", text: "Now its memory." },
          { type: "tool_use", id: "toolu_standin_3", name: "coral_query_metrics", input: { service: "frontend", metric: "memory_bytes", since: "30m" } },
        ],
      };
    const results = toolResults(body);
    const text = (name: string) => results.find((r) => r.name === name)?.text ?? "";
    const events = text("coral_query_events");
    const status = text("coral_get_status");
    const metrics = text("coral_query_metrics");
    const restarts = /: (\d+)\+? found/.exec(events)?.[1] ?? "?";
    const exit = /exit_code=(\d+)/.exec(events)?.[1] ?? "?";
    const counted = /^- frontend: .*restarts (\d+)/m.exec(status)?.[1] ?? "?";
    const version = /^- frontend: .*version ([^,\s]+)/m.exec(status)?.[1] ?? "?";
    const peak = /max (\d+)/.exec(metrics)?.[1] ?? "?";
    return {
      kind: "message",
      stop_reason: "end_turn",
      content: [
        {
          type: "text",
          text:
            `frontend restarted ${restarts} times in the last 2 hours, each time with exit code ${exit} (OOMKilled). ` +
            `The colony counts restarts=${counted} on version ${version}. Memory peaked at ${peak} bytes before the last restart: ` +
            `likely a memory leak in ${version}.`,
        },
      ],
    };
  };
}

const minute = (offset: number) => timestampFromDate(new Date(Math.floor(Date.now() / 60_000) * 60_000 - offset * 60_000));
const ago = (minutes: number) => timestampFromDate(new Date(Date.now() - minutes * 60_000));

/** frontend 1.9.2: a deploy, then three OOM restarts while memory climbs to PEAK_MEMORY. */
export async function publishIncident(colonyUrl: string, localToken: string, api: ToolContext["colony"]): Promise<SyntheticAgent> {
  const frontend = new SyntheticAgent({ colonyUrl, localToken, agentId: "frontend-1", serviceName: "frontend", port: 3000, version: "1.9.2" });
  await frontend.register();
  await frontend.heartbeat(HealthStatus.HEALTHY, { restartCount: 3 });
  const oom = (bytes: number) => JSON.stringify({ exit_code: 137, signal: "SIGKILL", reason: "OOMKilled", memory_bytes: bytes });
  await frontend.publish({
    events: [
      { eventId: "deploy-1", timestamp: ago(70), eventType: "deploy", detailsJson: JSON.stringify({ version: "1.9.2", previous: "1.9.1" }) },
      { eventId: "restart-1", timestamp: ago(50), eventType: "restart", detailsJson: oom(890_000_000) },
      { eventId: "restart-2", timestamp: ago(30), eventType: "restart", detailsJson: oom(925_000_000) },
      { eventId: "restart-3", timestamp: ago(10), eventType: "restart", detailsJson: oom(PEAK_MEMORY) },
    ],
    metrics: [5, 4, 3, 2, 1].map((offset, i) => {
      const max = i === 4 ? PEAK_MEMORY : 512_000_000 + i * 90_000_000;
      return { timestamp: minute(offset), metricName: "memory_bytes", interval: "1m", p50: max - 20_000_000, p95: max - 5_000_000, p99: max - 1_000_000, mean: max - 30_000_000, max, min: 500_000_000, count: 12n };
    }),
  });
  await waitFor("the incident to be ingested", async () => {
    const [events, metrics] = await Promise.all([
      api.queryEvents({ service: "frontend", eventType: "restart" }),
      api.queryMetrics({ service: "frontend", metricName: "memory_bytes", interval: "1m" }),
    ]);
    return events.events.length === 3 && metrics.series[0]?.points.length === 5 ? true : undefined;
  });
  return frontend;
}
