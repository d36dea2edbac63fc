// The always-on CPU profiler's windows: aggregated, symbolized stacks of the
// service's process set over one interval, kept for the raw-retention window
// like the other raw data (the colony keeps its per-minute rollups longer).
// Frames and stacks are one JSON document per window: written once, read whole.
import { checkDate, checkLimit, date, marks, num, str, ts, Where, newestPage, type Conn, type Row } from "./sql.ts";
import type { ProfileWindowInput, ProfileWindowQuery, QueryPage, StoredProfileWindow } from "./types.ts";

const columns = "window_start, duration_ms, hz, total_samples, other_samples, stacks";

function toWindow(r: Row): StoredProfileWindow {
  const doc = JSON.parse(str(r.stacks)) as Pick<StoredProfileWindow, "frames" | "stacks">;
  return {
    start: date(r.window_start),
    durationMs: num(r.duration_ms),
    hz: num(r.hz),
    totalSamples: num(r.total_samples),
    otherSamples: num(r.other_samples),
    frames: doc.frames,
    stacks: doc.stacks,
  };
}

/** Throws a TypeError naming what is wrong with `w`; nothing is written then. */
export function checkProfileWindow(w: ProfileWindowInput): void {
  checkDate(w.start, "profile window start");
  for (const key of ["durationMs", "hz", "totalSamples", "otherSamples"] as const)
    if (!Number.isSafeInteger(w[key]) || w[key] < 0) throw new TypeError(`profile window ${key} must be a non-negative integer, got ${String(w[key])}`);
  for (const s of w.stacks)
    for (const id of s.frameIds) if (!Number.isInteger(id) || id < 0 || id >= w.frames.length) throw new TypeError(`profile window stack refers to frame ${id} of ${w.frames.length}`);
}

export function recordProfileWindow(conn: Conn, w: ProfileWindowInput): void {
  checkProfileWindow(w);
  conn.run(`INSERT INTO profile_windows (${columns}) VALUES (${marks(6)})`, [
    ts(w.start),
    w.durationMs,
    w.hz,
    w.totalSamples,
    w.otherSamples,
    JSON.stringify({ frames: w.frames, stacks: w.stacks }),
  ]);
}

/** Windows starting in [since, until), oldest first; the newest `limit` when there are more. */
export function queryProfileWindows(conn: Conn, q: ProfileWindowQuery): QueryPage<StoredProfileWindow> {
  const limit = checkLimit(q.limit);
  const where = new Where().range("window_start", q.since, q.until);
  const rows = conn.all(`SELECT ${columns} FROM profile_windows ${where} ORDER BY window_start DESC LIMIT ?`, [...where.params, limit + 1]);
  return newestPage(rows.map(toWindow), limit);
}
