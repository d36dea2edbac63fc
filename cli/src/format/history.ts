// `coral history <service> [--at time]`: what the colony believed about the
// service's agent at a moment, and the transitions that led there.
import type { GetHistoryResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { paint, componentState } from "./status.ts";
import { colors, columns, formatTime, timeHeader, type FormatOptions } from "./text.ts";

export function formatHistory(res: GetHistoryResponse, options: FormatOptions): string {
  const c = colors(options.color);
  const at = formatTime(res.at, options);
  const name = res.service || "(unknown service)";
  const lines = [c.bold(`${name}${res.agentId ? ` (agent ${res.agentId})` : ""}`)];
  if (!res.stateAt) lines.push(`The colony knew no agent for ${name} at ${at}.`);
  else {
    const tone = componentState({ status: res.stateAt, health: "" }).tone;
    lines.push(`State at ${at}${options.utc ? " UTC" : ""}: ${paint(c, tone, res.stateAt)}`);
  }
  if (res.transitions.length === 0) {
    lines.push("", `No recorded transitions for ${name} up to ${at}.`);
    return lines.join("\n");
  }
  const rows = res.transitions.map((t) => [formatTime(t.at, options), t.fromState || "-", t.toState || "-", t.event || "-", t.reason || ""]);
  const [head, ...table] = columns([timeHeader(options), "FROM", "TO", "EVENT", "REASON"], rows);
  lines.push("", c.bold(head!), ...table);
  return lines.join("\n");
}
