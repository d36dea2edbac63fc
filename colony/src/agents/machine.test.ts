// The agent chart, driven through ActorHost with a simple in-memory
// persistence; tests/colony covers the same host on real DuckDB.
import { pollUntil } from "@coral/common/async";
import { describe, expect, it } from "vitest";
import type { ActorSnapshotRow, TransitionRow } from "../store/types.ts";
import type { ActorPersistence } from "../store/actor-host.ts";
import { AgentActors } from "./actors.ts";

class MemoryPersistence implements ActorPersistence {
  rows = new Map<string, ActorSnapshotRow>();
  transitions: TransitionRow[] = [];
  async saveActorSnapshot(row: ActorSnapshotRow, transition?: TransitionRow) {
    const previous = this.rows.get(row.actorId)?.version ?? 0;
    if (row.version !== previous + 1) throw new Error(`version gap: ${previous} → ${row.version}`);
    this.rows.set(row.actorId, row);
    if (transition) this.transitions.push(transition);
  }
  async loadActorSnapshots() {
    return [...this.rows.values()];
  }
}

function actors(persistence: ActorPersistence, now: () => number) {
  return new AgentActors({ persistence, offlineAfterMs: 90_000, expireAfterMs: 3_600_000, now });
}

describe("agent actor", () => {
  it("goes registering → online ⇄ degraded → offline → expired on events and deadlines", async () => {
    const store = new MemoryPersistence();
    let clock = 1_000_000;
    const a = actors(store, () => clock);
    const reg = await a.send("api-1", { type: "register", atMs: clock, tokenHash: "h", serviceName: "api" }, "api");
    expect(reg.state).toBe("online");
    expect(reg.deadlineMs).toBe(clock + 90_000);
    expect((await a.send("api-1", { type: "heartbeat", atMs: clock + 1000, health: "degraded" })).state).toBe("degraded");
    expect((await a.send("api-1", { type: "heartbeat", atMs: clock + 2000, health: "healthy" })).state).toBe("online");
    // A deadline event before the deadline changes nothing.
    expect((await a.send("api-1", { type: "deadline", atMs: clock + 3000 })).state).toBe("online");
    clock += 2000 + 90_000;
    const offline = await a.send("api-1", { type: "deadline", atMs: clock });
    expect(offline.state).toBe("offline");
    expect(offline.reason).toBe("no heartbeat for 90s");
    clock += 3_600_000;
    expect((await a.send("api-1", { type: "deadline", atMs: clock })).state).toBe("expired");
    expect((await a.send("api-1", { type: "heartbeat", atMs: clock, health: "healthy" })).state).toBe("expired");
    expect((await a.send("api-1", { type: "register", atMs: clock, tokenHash: "h2", serviceName: "api" })).state).toBe("online");
    expect(store.transitions.map((t) => `${t.fromState}→${t.toState}`)).toEqual([
      "→registering",
      "registering→online",
      "online→degraded",
      "degraded→online",
      "online→offline",
      "offline→expired",
      "expired→online",
    ]);
    await a.stop();
  });

  it("restores from snapshots and fires a deadline that passed while it was down", async () => {
    const store = new MemoryPersistence();
    const start = Date.now();
    const first = new AgentActors({ persistence: store, offlineAfterMs: 50, expireAfterMs: 3_600_000 });
    await first.send("db-1", { type: "register", atMs: start, tokenHash: "h", serviceName: "db" }, "db");
    await first.stop();
    const restored = new AgentActors({ persistence: store, offlineAfterMs: 50, expireAfterMs: 3_600_000 });
    expect(await restored.restore()).toBe(1);
    await pollUntil(() => (restored.get("db-1")?.state === "offline" ? true : undefined), { what: "db-1 to go offline", timeoutMs: 10_000, intervalMs: 20 });
    expect(restored.get("db-1")?.state).toBe("offline");
    expect(store.rows.get("db-1")?.state).toBe("offline");
    await restored.stop();
  });
});
