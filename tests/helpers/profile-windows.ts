// The always-on profiler's per-minute windows, built and published as an agent
// does (TelemetryBatch on its own NATS subject, batch id as Nats-Msg-Id), for
// tests of the colony's stored profiles and the CLI that reads them.
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type ProfileWindowSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { SyntheticAgent } from "./synthetic-agent.ts";

export type WindowInit = MessageInitShape<typeof ProfileWindowSchema>;

const minute = 60_000;
const ts = (ms: number) => timestampFromDate(new Date(ms));

/**
 * A one-minute window at 19 Hz of the given stacks ("main;handle;parse", root
 * first → samples); frame ids are the window's own; "tick" is a kernel frame.
 * `other`: samples in stacks beyond the top the agent keeps.
 */
export function profileWindow(atMs: number, stacks: Record<string, number>, other = 0): WindowInit {
  const names = [...new Set(Object.keys(stacks).flatMap((s) => s.split(";")))].reverse();
  const frames = names.map((fn) => ({ function: fn, module: fn === "tick" ? "[kernel]" : "/srv/app", kernel: fn === "tick" }));
  const entries = Object.entries(stacks).map(([s, n]) => ({ frameIds: s.split(";").map((fn) => names.indexOf(fn)), samples: BigInt(n), pid: 4242 }));
  const inStacks = Object.values(stacks).reduce((a, b) => a + b, 0);
  return { timestamp: ts(atMs), durationMs: minute, hz: 19, frames, stacks: entries, totalSamples: BigInt(inStacks + other), otherSamples: BigInt(other) };
}

/** Publishes windows like the agent: its own subject, the batch id as Nats-Msg-Id. */
export async function publishProfileWindows(agent: SyntheticAgent, batchId: string, profiles: WindowInit[]): Promise<void> {
  const batch = create(TelemetryBatchSchema, { batchId, agentId: agent.options.agentId, serviceName: agent.options.serviceName, createdAt: ts(Date.now()), profiles });
  await agent.publishRaw(toBinary(TelemetryBatchSchema, batch), { msgId: batchId });
}
