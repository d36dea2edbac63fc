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
  // Running totals, not a map of every reporter: hosted, a reporter is a mesh,
  // and a million meshes' counts held in memory would pass an isolate's 128 MB.
  private colonies = 0;
  private agents = 0;
  private readonly startedAtMs = Date.now();

  constructor(ctx: DurableObjectState, env: DiscoveryEnv) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        "CREATE TABLE IF NOT EXISTS mesh_counts (mesh_id TEXT PRIMARY KEY, colonies INTEGER NOT NULL, agents INTEGER NOT NULL)",
      );
      const sums = ctx.storage.sql
        .exec<{ colonies: number; agents: number }>("SELECT COALESCE(SUM(colonies), 0) AS colonies, COALESCE(SUM(agents), 0) AS agents FROM mesh_counts")
        .one();
      this.colonies = sums.colonies;
      this.agents = sums.agents;
    });
  }

  /** `reporter`: the name of the object that holds the registrations (a mesh id, or `bucket:<n>`). */
  report(reporter: string, colonies: number, agents: number): void {
    const sql = this.ctx.storage.sql;
    const before = sql.exec<{ colonies: number; agents: number }>("SELECT colonies, agents FROM mesh_counts WHERE mesh_id = ?", reporter).toArray()[0];
    this.colonies += colonies - (before?.colonies ?? 0);
    this.agents += agents - (before?.agents ?? 0);
    if (colonies === 0 && agents === 0) {
      if (before) sql.exec("DELETE FROM mesh_counts WHERE mesh_id = ?", reporter);
      return;
    }
    sql.exec(
      "INSERT INTO mesh_counts (mesh_id, colonies, agents) VALUES (?, ?, ?) ON CONFLICT(mesh_id) DO UPDATE SET colonies = excluded.colonies, agents = excluded.agents",
      reporter,
      colonies,
      agents,
    );
  }

  totals(): DirectoryCounts {
    return { colonies: this.colonies, agents: this.agents, startedAtMs: this.startedAtMs };
  }
}
