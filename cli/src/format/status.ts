// `coral status`:
//
//   APPLICATION: my-shop (dev)
//   ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━
//   Colony: my-shop-dev-a1b2c3 (running locally)
//   Connected: 3 components
//
//   COMPONENT   STATUS   VERSION   UPTIME   PORT   PID    PROCS   CPU    MEMORY     RESTARTS
//   frontend    ● up     1.9.2     3h 24m   3000   4242   5       1.5%   64.0 MiB   3
//
//   Insights: 1 active (view details: coral insights)
//
//   Ingest: 2 telemetry batches set aside in the last hour (5 in all) …
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { GetStatusResponse, ServiceInfo } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { colors, columns, compareNames, formatDuration, plural, rule, visibleWidth, type Colors, type FormatOptions } from "./text.ts";

export interface StatusOptions extends FormatOptions {
  /** Where the colony is, shown after its id: "running locally", a URL. */
  location?: string;
}

export type Tone = "green" | "yellow" | "red" | "grey";

/** The word and dot color for a component: its agent's state, refined by its health. */
export function componentState(service: Pick<ServiceInfo, "status" | "health"> & { port?: number }): { text: string; tone: Tone } {
  switch (service.status) {
    case "online":
      if (service.health === "waiting") return { text: service.port ? `waiting (no process on port ${service.port})` : "waiting (no process)", tone: "yellow" };
      if (service.health === "unhealthy") return { text: "unhealthy", tone: "red" };
      if (service.health === "degraded") return { text: "degraded", tone: "yellow" };
      return { text: "up", tone: "green" };
    case "degraded":
      return { text: "degraded", tone: "yellow" };
    case "registering":
      return { text: "starting", tone: "yellow" };
    case "offline":
      return { text: "offline", tone: "red" };
    case "expired":
      return { text: "expired", tone: "grey" };
    default:
      return { text: service.status || "unknown", tone: "grey" };
  }
}

export function paint(c: Colors, tone: Tone, text: string): string {
  return tone === "green" ? c.green(text) : tone === "yellow" ? c.yellow(text) : tone === "red" ? c.red(text) : c.gray(text);
}

const connectedStates = new Set(["online", "degraded", "registering"]);

export const noComponentsHint = "No components connected yet. Connect one with: coral connect <name> --port <port>";

export function formatStatus(res: GetStatusResponse, options: StatusOptions): string {
  const c = colors(options.color);
  const title = `APPLICATION: ${res.appName || "(unnamed)"}${res.environment ? ` (${res.environment})` : ""}`;
  const connected = res.services.filter((s) => connectedStates.has(s.status)).length;
  const away = res.services.length - connected;
  const header = [
    `Colony: ${res.colonyId}${options.location ? ` (${options.location})` : ""}`,
    `Connected: ${plural(connected, "component")}${away > 0 ? ` (${away} offline or expired)` : ""}`,
  ];

  let body: string[];
  if (res.services.length === 0) body = [noComponentsHint];
  else {
    const rows = [...res.services].sort((a, b) => compareNames(a.name, b.name));
    const table = statusColumns(c);
    const [head, ...lines] = columns(
      table.map((col) => col.header),
      rows.map((s) => table.map((col) => col.cell(s))),
    );
    body = [c.bold(head!), ...lines];
  }
  // As wide as the table (the hint line may run past it).
  const width = Math.max(visibleWidth(title), ...(res.services.length > 0 ? body.map(visibleWidth) : []), 40);
  // Per-component health from apps' Coral SDKs.
  const sdkLines = [...res.services]
    .filter((s) => s.sdkEnabled && s.components.length > 0)
    .sort((a, b) => compareNames(a.name, b.name))
    .map((s) => `  ${s.name}: ${s.components.map((h) => `${paint(c, sdkTone(h.status), "●")} ${h.name} ${sdkWord(h.status)}${h.message ? ` (${h.message})` : ""}`).join("  ")}`);
  const sdk = sdkLines.length > 0 ? ["", c.bold("Health checks (Coral SDK):"), ...sdkLines] : [];
  // Active insights (none: no line).
  const insights = res.insightCount > 0 ? ["", `${c.yellow("Insights:")} ${res.insightCount} active (view details: coral insights)`] : [];
  return [c.bold(title), rule(width), ...header, "", ...body, ...sdk, ...insights, ...ingestWarning(res, c)].join("\n");
}

/** One column of the component table: its header and what it shows of a component. */
export interface StatusColumn {
  header: string;
  cell(service: ServiceInfo): string;
}

/** True when the component's agent is connected and observes a process (so its numbers are current). */
const observing = (s: ServiceInfo) => connectedStates.has(s.status) && s.pid > 0;

/** The component table's columns, left to right: add a column here. */
export function statusColumns(c: Colors): StatusColumn[] {
  return [
    { header: "COMPONENT", cell: (s) => s.name },
    {
      header: "STATUS",
      cell: (s) => {
        const state = componentState(s);
        return `${paint(c, state.tone, "●")} ${state.text}`;
      },
    },
    { header: "VERSION", cell: (s) => (s.version ? `${s.version}${s.gitCommit ? ` (${s.gitCommit.slice(0, 7)})` : ""}` : "-") },
    { header: "UPTIME", cell: (s) => (connectedStates.has(s.status) ? formatDuration(s.uptimeSeconds) : "-") },
    { header: "PORT", cell: (s) => (s.port ? String(s.port) : "-") },
    { header: "PID", cell: (s) => (observing(s) ? String(s.pid) : "-") },
    // The listener and its descendants (workers): CPU and MEMORY are their sums.
    { header: "PROCS", cell: (s) => (observing(s) && s.processCount > 0 ? String(s.processCount) : "-") },
    { header: "CPU", cell: (s) => (observing(s) ? formatPercent(s.cpuPercent) : "-") },
    { header: "MEMORY", cell: (s) => (observing(s) ? formatBytes(s.memoryBytes) : "-") },
    { header: "RESTARTS", cell: (s) => String(s.restartCount) },
  ];
}

/** "0.0%", "12.5%", "250%" (several cores). */
export function formatPercent(value: number): string {
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)}%`;
}

/** "812 KiB", "64.0 MiB", "1.25 GiB". */
export function formatBytes(bytes: bigint | number): string {
  const n = Number(bytes);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value >= 100 ? Math.round(value) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} ${units[unit]}`;
}

/** A warning when ingestion set telemetry aside in the last hour (none: no line). */
export function ingestWarning(res: Pick<GetStatusResponse, "ingest">, c: Colors): string[] {
  const ingest = res.ingest;
  if (!ingest || ingest.setAsideRecent === 0n) return [];
  const at = ingest.lastSetAsideAt ? timestampDate(ingest.lastSetAsideAt).toISOString().slice(11, 19) : "";
  const last = ingest.lastReason ? ` Last${ingest.lastAgentId ? ` from ${ingest.lastAgentId}` : ""}${at ? ` at ${at}` : ""}: ${ingest.lastReason.slice(0, 160)}` : "";
  return [
    "",
    `${c.yellow("Ingest:")} ${plural(ingest.setAsideRecent, "telemetry batch", "telemetry batches")} set aside in the last hour (${ingest.batchesSetAside} in all, ${ingest.batchesStored} stored).${last}`,
    `  (see: coral events --type ingest.dead_letter)`,
  ];
}

// GetHealthResponse.Status: 1 healthy, 2 degraded, 3 unhealthy, else unknown.
function sdkWord(status: number): string {
  return status === 1 ? "healthy" : status === 2 ? "degraded" : status === 3 ? "unhealthy" : "unknown";
}

function sdkTone(status: number): Tone {
  return status === 1 ? "green" : status === 2 ? "yellow" : status === 3 ? "red" : "grey";
}
