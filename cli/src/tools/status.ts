// coral_get_status: the application's components, their state, health,
// versions, restarts and resources, and the colony's own health.
import { toJson } from "@bufbuild/protobuf";
import { GetStatusResponseSchema, type ServiceInfo } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { z } from "zod";
import { formatDuration } from "../format/text.ts";
import { ago, bytes, clock, defineTool, toolArgs, fitLines, num, textBudgetChars, tsDate } from "./common.ts";

const connected = new Set(["online", "degraded", "registering"]);

export function describeService(s: ServiceInfo, now: number): string {
  const state = s.status === "online" && s.health && s.health !== "healthy" && s.health !== "unknown" ? `online but ${s.health}` : s.status || "unknown";
  const parts = [
    `${s.name}: ${state}`,
    s.health && s.health !== "healthy" && s.health !== "unknown" && !state.includes(s.health) ? `health ${s.health}` : "",
    s.version ? `version ${s.version}` : "",
    connected.has(s.status) ? `uptime ${formatDuration(s.uptimeSeconds)}` : "",
    `restarts ${s.restartCount}`,
    s.pid ? `pid ${s.pid}` : "",
    connected.has(s.status) ? `cpu ${num(s.cpuPercent)}%` : "",
    connected.has(s.status) && s.memoryBytes > 0n ? `memory ${bytes(s.memoryBytes)}` : "",
    s.port ? `port ${s.port}` : "",
    s.lastSeen ? `last seen ${ago(now - tsDate(s.lastSeen)!.getTime())}` : "",
    s.agentId !== s.name ? `agent ${s.agentId}` : "",
  ];
  return `- ${parts.filter(Boolean).join(", ")}`;
}

export const getStatusTool = defineTool({
  name: "coral_get_status",
  title: "Application status",
  description:
    "Current state of the application watched by Coral: every component (service) with its agent state (online, degraded, offline), " +
    "health, version, uptime, restart count, CPU and memory, plus the colony's own health. Start here to see what runs and what is unwell.",
  inputSchema: toolArgs({
    service: z.string().min(1).optional().describe("Only this component, e.g. api"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await ctx.colony.getStatus({});
    const now = clock(ctx);
    const services = args.service ? res.services.filter((s) => s.name === args.service) : res.services;
    const up = res.services.filter((s) => connected.has(s.status)).length;
    const lines = [
      `Application ${res.appName || "(unnamed)"}${res.environment ? ` (${res.environment})` : ""}, colony ${res.colonyId}, coral ${res.version}, colony up ${formatDuration(res.uptimeSeconds)}.`,
      `Colony health: NATS ${res.natsStatus || "unknown"}, discovery ${res.discoveryStatus || "unknown"}${res.meshMode ? `, mesh ${res.meshMode}` : ""}.`,
      `${res.services.length} component${res.services.length === 1 ? "" : "s"}: ${up} connected, ${res.services.length - up} offline or gone.`,
    ];
    if (args.service && services.length === 0)
      lines.push(`No component named "${args.service}". Known: ${res.services.map((s) => s.name).join(", ") || "none"}.`);
    else if (res.services.length === 0) lines.push("No components connected yet (connect one with: coral connect <name> --port <port>).");
    const rows = services.map((s) => describeService(s, now));
    const { shown, omitted } = fitLines(rows, textBudgetChars - lines.join("\n").length - 200);
    lines.push(...shown);
    if (omitted > 0) lines.push(`… ${omitted} more components not shown: call again with service=<name> for one of them.`);
    const data = toJson(GetStatusResponseSchema, { ...res, services } as typeof res, { alwaysEmitImplicit: true });
    return { text: lines.join("\n"), data };
  },
});
