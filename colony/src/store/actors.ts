// Persisted actor snapshots (versioned, to detect lost updates) and the
// append-only transitions history.
import { all, clampLimit, date, exec, num, str, transaction, ts, type Conn, type Params, type Row } from "./sql.ts";
import type { ActorSnapshotRow, TransitionRow, TransitionsQuery } from "./types.ts";

/** Thrown when a snapshot's version is not the stored version + 1 (someone else wrote, or a write was lost). */
export class SnapshotVersionError extends Error {
  constructor(
    readonly actorId: string,
    readonly storedVersion: number,
    readonly attemptedVersion: number,
  ) {
    super(
      `actor ${actorId}: snapshot version ${attemptedVersion} refused, the stored version is ${storedVersion} ` +
        `(expected ${storedVersion + 1}); a concurrent or lost update`,
    );
    this.name = "SnapshotVersionError";
  }
}

function toSnapshot(r: Row): ActorSnapshotRow {
  return {
    actorId: str(r.actor_id),
    kind: str(r.kind),
    version: num(r.version),
    state: str(r.state),
    snapshot: str(r.snapshot),
    updatedAt: date(r.updated_at),
  };
}

function toTransition(r: Row): TransitionRow {
  return {
    actorId: str(r.actor_id),
    kind: str(r.kind),
    at: date(r.at),
    fromState: str(r.from_state),
    toState: str(r.to_state),
    event: str(r.event),
    reason: str(r.reason),
    version: num(r.version),
  };
}

/**
 * Stores the snapshot (and the transition that led to it) in one transaction.
 * The first snapshot of an actor has version 1; each later one exactly the
 * stored version + 1, otherwise SnapshotVersionError and nothing is written.
 */
export async function saveActorSnapshot(conn: Conn, row: ActorSnapshotRow, transition?: TransitionRow): Promise<void> {
  if (!row.actorId) throw new Error("saveActorSnapshot: actorId is required");
  if (!Number.isInteger(row.version)) throw new Error(`saveActorSnapshot ${row.actorId}: version must be an integer`);
  if (transition && transition.actorId !== row.actorId) {
    throw new Error(`saveActorSnapshot ${row.actorId}: the transition is for actor ${transition.actorId}`);
  }
  await transaction(conn, async () => {
    const rows = await all(conn, "SELECT version FROM actor_snapshots WHERE actor_id = $1", [row.actorId]);
    const stored = rows[0] ? num(rows[0].version) : 0;
    if (row.version !== stored + 1) throw new SnapshotVersionError(row.actorId, stored, row.version);
    const values: Params = [row.actorId, row.kind, row.version, row.state, row.snapshot, ts(row.updatedAt)];
    if (stored === 0) {
      await exec(
        conn,
        `INSERT INTO actor_snapshots (actor_id, kind, version, state, snapshot, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        values,
      );
    } else {
      await exec(
        conn,
        `UPDATE actor_snapshots SET kind = $2, version = $3, state = $4, snapshot = $5, updated_at = $6
         WHERE actor_id = $1`,
        values,
      );
    }
    if (transition) {
      await exec(
        conn,
        `INSERT INTO actor_transitions (actor_id, kind, "at", from_state, to_state, event, reason, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          transition.actorId,
          transition.kind,
          ts(transition.at),
          transition.fromState,
          transition.toState,
          transition.event,
          transition.reason,
          transition.version,
        ],
      );
    }
  });
}

export async function loadActorSnapshots(conn: Conn, kind?: string): Promise<ActorSnapshotRow[]> {
  const rows =
    kind === undefined
      ? await all(conn, "SELECT * FROM actor_snapshots ORDER BY kind, actor_id")
      : await all(conn, "SELECT * FROM actor_snapshots WHERE kind = $1 ORDER BY actor_id", [kind]);
  return rows.map(toSnapshot);
}

/** Newest first. */
export async function transitionsFor(conn: Conn, actorId: string, q: TransitionsQuery): Promise<TransitionRow[]> {
  const params: Params = [actorId];
  let where = "actor_id = $1";
  if (q.until) {
    params.push(ts(q.until));
    where += ` AND "at" <= $${params.length}`;
  }
  const rows = await all(
    conn,
    `SELECT * FROM actor_transitions WHERE ${where} ORDER BY "at" DESC, version DESC LIMIT ${clampLimit(q.limit)}`,
    params,
  );
  return rows.map(toTransition);
}

/** The state the actor was in at `at` (the target of its last transition at or before it), or null. */
export async function stateAt(conn: Conn, actorId: string, at: Date): Promise<string | null> {
  const [last] = await transitionsFor(conn, actorId, { until: at, limit: 1 });
  return last ? last.toState : null;
}
