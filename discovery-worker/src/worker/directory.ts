// The directory keeps, per mesh object, how many live registrations it holds,
// so Health can answer without visiting every mesh. A reporter is a mesh (one
// object per mesh) or a bucket of meshes (`bucket:<n>`, its meshes summed);
// the column keeps its old name, mesh_id. Reports carry absolute counts,
// which makes them idempotent: a retried alarm can report twice harmlessly.
import { DurableObject } from "cloudflare:workers";

export interface DirectoryCounts {
  colonies: number;
  agents: number;
  startedAtMs: number;
}

export class Directory extends DurableObject<DiscoveryEnv> {
  private readonly counts = new Map<string, { colonies: number; agents: number }>();
  private readonly startedAtMs = Date.now();

  constructor(ctx: DurableObjectState, env: DiscoveryEnv) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        "CREATE TABLE IF NOT EXISTS mesh_counts (mesh_id TEXT PRIMARY KEY, colonies INTEGER NOT NULL, agents INTEGER NOT NULL)",
      );
      for (const row of ctx.storage.sql.exec<{ mesh_id: string; colonies: number; agents: number }>(
        "SELECT mesh_id, colonies, agents FROM mesh_counts",
      )) {
        this.counts.set(row.mesh_id, { colonies: row.colonies, agents: row.agents });
      }
    });
  }

  /** `reporter`: the name of the object that holds the registrations (a mesh id, or `bucket:<n>`). */
  report(reporter: string, colonies: number, agents: number): void {
    if (colonies === 0 && agents === 0) {
      this.counts.delete(reporter);
      this.ctx.storage.sql.exec("DELETE FROM mesh_counts WHERE mesh_id = ?", reporter);
      return;
    }
    this.counts.set(reporter, { colonies, agents });
    this.ctx.storage.sql.exec(
      "INSERT INTO mesh_counts (mesh_id, colonies, agents) VALUES (?, ?, ?) ON CONFLICT(mesh_id) DO UPDATE SET colonies = excluded.colonies, agents = excluded.agents",
      reporter,
      colonies,
      agents,
    );
  }

  totals(): DirectoryCounts {
    let colonies = 0;
    let agents = 0;
    for (const c of this.counts.values()) {
      colonies += c.colonies;
      agents += c.agents;
    }
    return { colonies, agents, startedAtMs: this.startedAtMs };
  }
}
