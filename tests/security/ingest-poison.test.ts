// Issue 17, High 1: one malformed telemetry batch stopped ingestion for every
// agent, across restarts (the whole fetch was nak'ed forever). The attack:
// several agents send a steady stream into a real colony with poison batches
// of every kind mixed in, then the colony restarts in the middle of it. Every
// good batch must be stored exactly once, every bad one set aside (dead-letter
// table, event) and counted, and `coral status` must say so.
import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { generateIdentityKey, type IdentityKey } from "@coral/proto";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { RunningColony } from "@coral/colony";
import { formatStatus } from "@coral/cli/testing";
import { GetStatusResponseSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { describe, expect, it } from "vitest";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

const minute = 60_000;
const base = Math.floor(Date.now() / minute) * minute - 20 * 60 * minute;
const ts = (ms: number) => timestampFromDate(new Date(ms));

type Poison = "bad-json" | "huge-count" | "no-timestamp" | "no-type" | "garbage" | "liar";
const kinds: Poison[] = ["bad-json", "huge-count", "no-timestamp", "no-type", "garbage", "liar"];

async function rows(colony: RunningColony, sql: string): Promise<Record<string, unknown>[]> {
  const reader = await colony.store.read((c) => c.runAndReadAll(sql));
  return reader.getRowObjectsJS() as Record<string, unknown>[];
}

async function good(agent: SyntheticAgent, n: number): Promise<string> {
  const batchId = `${agent.options.agentId}-good-${n}`;
  await agent.publish({
    batchId,
    metrics: [{ metricName: "requests", interval: "1m", timestamp: ts(base + n * minute), p50: n, p95: n, p99: n, mean: n, max: n, min: n, count: 10n }],
    events: [{ eventId: `${batchId}-e`, eventType: "tick", timestamp: ts(Date.now()), detailsJson: JSON.stringify({ n }) }],
  });
  return batchId;
}

async function poison(agent: SyntheticAgent, kind: Poison, n: number): Promise<string> {
  const batchId = `${agent.options.agentId}-poison-${kind}-${n}`;
  const now = ts(Date.now());
  switch (kind) {
    case "bad-json":
      await agent.publish({ batchId, events: [{ eventId: "x", eventType: "tick", timestamp: now, detailsJson: "{not json" }] });
      break;
    case "huge-count":
      await agent.publish({ batchId, metrics: [{ metricName: "requests", interval: "1m", timestamp: now, count: 2n ** 64n - 1n }] });
      break;
    case "no-timestamp":
      await agent.publish({ batchId, metrics: [{ metricName: "requests", interval: "1m", count: 1n }] });
      break;
    case "no-type":
      await agent.publish({ batchId, events: [{ eventId: "x", eventType: "", timestamp: now }] });
      break;
    case "garbage":
      await agent.publishRaw(new Uint8Array([0x0a, 0xff, 0x01, 0x02]), { msgId: batchId });
      break;
    case "liar": // another agent's id inside, on this agent's subject
      await agent.publishRaw(toBinary(TelemetryBatchSchema, create(TelemetryBatchSchema, { batchId, agentId: "someone-else", serviceName: "x" })), { msgId: batchId });
      break;
  }
  return batchId;
}

/** One round: every agent sends `perAgent` good batches and one poison batch among them, concurrently. */
async function round(agents: SyntheticAgent[], r: number, perAgent: number): Promise<{ good: string[]; bad: string[] }> {
  const out = { good: [] as string[], bad: [] as string[] };
  await Promise.all(
    agents.map(async (agent, a) => {
      for (let i = 0; i < perAgent; i++) {
        out.good.push(await good(agent, r * 100 + i));
        if (i === 2) out.bad.push(await poison(agent, kinds[(r * agents.length + a) % kinds.length]!, r));
      }
    }),
  );
  return out;
}

/** Three agents, enrolled with invitations the first time; after a restart (a new API port) the same keys register again. */
async function connectAgents(colony: RunningColony, keys: IdentityKey[], localToken?: string): Promise<SyntheticAgent[]> {
  const list = keys.map((key, i) => new SyntheticAgent({ colonyUrl: colony.url, ...(localToken ? { localToken } : {}), key, agentId: `steady-${i}`, serviceName: `svc-${i}`, port: 7100 + i }));
  for (const agent of list) {
    await agent.register();
    await agent.heartbeat();
    await agent.connectNats();
  }
  return list;
}

async function expectAllStoredOnce(colony: RunningColony, goodIds: string[]): Promise<void> {
  await waitFor(
    `${goodIds.length} good batches stored`,
    async () => Number((await rows(colony, "SELECT count(*) AS n FROM ingested_batches WHERE batch_id LIKE 'steady-%-good-%'"))[0]!.n) === goodIds.length,
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  const stored = (await rows(colony, "SELECT batch_id FROM ingested_batches WHERE batch_id LIKE 'steady-%'")).map((r) => String(r.batch_id)).sort();
  expect(stored).toEqual([...goodIds].sort());
  // Exactly once: one metric row and one event per good batch, no more.
  const [m] = await rows(colony, "SELECT count(*) AS n FROM metric_summaries WHERE service_id LIKE 'svc-%'");
  const [e] = await rows(colony, "SELECT count(*) AS n FROM events WHERE event_type = 'tick'");
  expect(Number(m!.n)).toBe(goodIds.length);
  expect(Number(e!.n)).toBe(goodIds.length);
}

async function expectSetAside(colony: RunningColony, badIds: string[]): Promise<void> {
  await waitFor(`${badIds.length} bad batches set aside`, async () => Number((await rows(colony, "SELECT count(*) AS n FROM dead_letters"))[0]!.n) === badIds.length, {
    timeoutMs: 120_000,
    intervalMs: 250,
  });
  const letters = await rows(colony, "SELECT batch_id, agent_id, reason FROM dead_letters ORDER BY id");
  expect(letters.map((l) => String(l.batch_id)).sort()).toEqual([...badIds].sort());
  const reasons = letters.map((l) => `${String(l.batch_id)}: ${String(l.reason)}`).join("\n");
  for (const [kind, why] of [
    ["bad-json", /details_json is not JSON/],
    ["huge-count", /more than the store holds/],
    ["no-timestamp", /has no timestamp/],
    ["no-type", /has no event_type/],
    ["garbage", /not a protobuf TelemetryBatch/],
    ["liar", /does not match the subject's agent/],
  ] as const)
    for (const l of letters.filter((x) => String(x.batch_id).includes(`-poison-${kind}-`))) expect(`${String(l.batch_id)}: ${String(l.reason)}`).toMatch(why);
  expect(reasons).not.toMatch(/steady-\d-good/);
  const [counted] = await rows(colony, "SELECT sum(total) AS n FROM dead_letter_counts");
  expect(Number(counted!.n)).toBe(badIds.length);
}

describe("ingestion that bad input cannot stop", () => {
  it("stores every good batch exactly once and sets every bad one aside, across a colony restart", async () => {
    await using project = await createTestProject();
    let colony = await project.start();
    const keys = await Promise.all([0, 1, 2].map(() => generateIdentityKey()));
    let agents = await connectAgents(colony, keys, project.localToken);
    const goodIds: string[] = [];
    const badIds: string[] = [];
    try {
      for (let r = 0; r < 4; r++) {
        const sent = await round(agents, r, 6);
        goodIds.push(...sent.good);
        badIds.push(...sent.bad);
      }
      expect(new Set(badIds.map((id) => id.replace(/^steady-\d-poison-|-\d+$/g, ""))).size).toBe(kinds.length);
      await expectAllStoredOnce(colony, goodIds);
      await expectSetAside(colony, badIds);

      // Seen in `coral status` (the same response `--json` prints) and in `coral events`.
      const api = colonyApi(colony.url, project.localToken);
      const status = await api.getStatus({});
      expect(status.ingest).toMatchObject({ batchesSetAside: BigInt(badIds.length), setAsideRecent: BigInt(badIds.length) });
      expect(status.ingest!.batchesStored).toBeGreaterThanOrEqual(BigInt(goodIds.length));
      expect(status.ingest!.lastReason).not.toBe("");
      expect(status.ingest!.lastAgentId).toMatch(/^steady-\d$/);
      const text = formatStatus(status, { color: false });
      expect(text).toMatch(new RegExp(`Ingest: ${badIds.length} telemetry batches set aside in the last hour`));
      expect(text).toContain("coral events --type ingest.dead_letter");
      // What `coral status --json` prints.
      const json = toJson(GetStatusResponseSchema, status, { alwaysEmitImplicit: true }) as { ingest: Record<string, unknown> };
      expect(json.ingest).toMatchObject({ batchesSetAside: String(badIds.length), setAsideRecent: String(badIds.length) });
      const events = await api.queryEvents({ eventType: "ingest.dead_letter" });
      expect(new Set(events.events.map((e) => e.service))).toEqual(new Set(["svc-0", "svc-1", "svc-2"]));

      // More of the same, and the colony restarts while it is in the stream.
      const before = await round(agents, 4, 6);
      goodIds.push(...before.good);
      badIds.push(...before.bad);
      await colony.close();
      for (const agent of agents) await agent[Symbol.asyncDispose]();
      colony = await project.start();
      agents = await connectAgents(colony, keys);
      const after = await round(agents, 5, 6);
      goodIds.push(...after.good);
      badIds.push(...after.bad);
      await expectAllStoredOnce(colony, goodIds);
      await expectSetAside(colony, badIds);
      const again = await colonyApi(colony.url, project.localToken).getStatus({});
      expect(again.ingest?.batchesSetAside).toBe(BigInt(badIds.length));
    } finally {
      for (const agent of agents) await agent[Symbol.asyncDispose]().catch(() => {});
    }
  }, 300_000);
});
