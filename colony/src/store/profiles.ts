// The always-on CPU profiler's windows, rolled up per service and minute
// (tables: migration 10). Written inside ingestion's transaction, so a batch's
// windows are stored exactly once with the batch; read by QueryCpuProfile.
import { createHash } from "node:crypto";
import { DuckDBTimestampValue } from "@duckdb/node-api";
import type { ProfileWindow, TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { withAppender } from "@coral/common/duckdb";
import { all, exec, ts, type Conn } from "./sql.ts";

/** Stacks kept per service and minute; the samples of the rest go to other_samples. */
export const profileStacksPerMinute = 500;

/** A frame as stored: [function, module, kernel]. */
export type StoredFrame = [string, string, boolean];

export const profileStagingDdl = `
CREATE TEMP TABLE IF NOT EXISTS stage_profile_frames (stack_key TEXT, frames TEXT);
CREATE TEMP TABLE IF NOT EXISTS stage_profile_stacks (service_name TEXT, minute TIMESTAMP, stack_key TEXT, samples BIGINT);
CREATE TEMP TABLE IF NOT EXISTS stage_profile_minutes (service_name TEXT, minute TIMESTAMP, total_samples BIGINT, other_samples BIGINT, hz INTEGER);
CREATE TEMP TABLE IF NOT EXISTS stage_profile_dropped (service_name TEXT, minute TIMESTAMP, stack_key TEXT, samples BIGINT);
`;

interface MinuteSums {
  service: string;
  minute: bigint;
  total: bigint;
  other: bigint;
  hz: number;
}

interface StackSums {
  service: string;
  minute: bigint;
  key: string;
  samples: bigint;
}

/** What a call's windows add, summed in JS first: one statement may not update a row twice. */
interface ProfileRollup {
  frames: Map<string, string>;
  stacks: Map<string, StackSums>;
  minutes: Map<string, MinuteSums>;
}

const minuteMicros = 60_000_000n;

function minuteOf(w: ProfileWindow): bigint {
  const micros = (w.timestamp?.seconds ?? 0n) * 1_000_000n;
  return micros - (((micros % minuteMicros) + minuteMicros) % minuteMicros);
}

/** Names a stack by its frames (not by the window's frame ids, which differ per window). */
function stackKey(framesJson: string): string {
  return createHash("sha256").update(framesJson).digest("hex").slice(0, 32);
}

function rollUp(batches: readonly TelemetryBatch[], service: (b: TelemetryBatch) => string): ProfileRollup {
  const out: ProfileRollup = { frames: new Map(), stacks: new Map(), minutes: new Map() };
  for (const b of batches) {
    const s = service(b);
    for (const w of b.profiles) {
      const minute = minuteOf(w);
      const mk = `${s}\u0000${minute}`;
      const m = out.minutes.get(mk);
      if (m) {
        m.total += w.totalSamples;
        m.other += w.otherSamples;
        m.hz = Math.max(m.hz, w.hz);
      } else out.minutes.set(mk, { service: s, minute, total: w.totalSamples, other: w.otherSamples, hz: w.hz });
      const frameText = w.frames.map((f) => [f.function, f.module, f.kernel] satisfies StoredFrame);
      for (const st of w.stacks) {
        // The validator checked the frame ids; a stack with no samples adds nothing.
        if (st.samples === 0n) continue;
        const json = JSON.stringify(st.frameIds.map((id) => frameText[id]!));
        const key = stackKey(json);
        out.frames.set(key, json);
        const sk = `${mk}\u0000${key}`;
        const sum = out.stacks.get(sk);
        if (sum) sum.samples += st.samples;
        else out.stacks.set(sk, { service: s, minute, key, samples: st.samples });
      }
    }
  }
  return out;
}

/**
 * Adds the batches' profile windows to the per-minute rollup (on the writer,
 * inside ingestion's transaction), then keeps the top stacks of each minute
 * it touched. Returns the windows stored.
 */
export async function ingestProfiles(conn: Conn, batches: readonly TelemetryBatch[], service: (b: TelemetryBatch) => string): Promise<number> {
  const windows = batches.reduce((n, b) => n + b.profiles.length, 0);
  if (windows === 0) return 0;
  const r = rollUp(batches, service);
  const minuteTs = (m: bigint) => new DuckDBTimestampValue(m);
  await withAppender(conn, "stage_profile_minutes", (a) => {
    for (const m of r.minutes.values()) {
      a.appendVarchar(m.service);
      a.appendTimestamp(minuteTs(m.minute));
      a.appendBigInt(m.total);
      a.appendBigInt(m.other);
      a.appendInteger(m.hz);
      a.endRow();
    }
  });
  if (r.stacks.size > 0) {
    await withAppender(conn, "stage_profile_frames", (a) => {
      for (const [key, json] of r.frames) {
        a.appendVarchar(key);
        a.appendVarchar(json);
        a.endRow();
      }
    });
    await withAppender(conn, "stage_profile_stacks", (a) => {
      for (const st of r.stacks.values()) {
        a.appendVarchar(st.service);
        a.appendTimestamp(minuteTs(st.minute));
        a.appendVarchar(st.key);
        a.appendBigInt(st.samples);
        a.endRow();
      }
    });
  }
  await exec(conn, "INSERT INTO profile_stack_frames SELECT stack_key, frames::JSON FROM stage_profile_frames ON CONFLICT DO NOTHING");
  await exec(
    conn,
    `INSERT INTO profile_stacks SELECT service_name, minute, stack_key, samples FROM stage_profile_stacks
     ON CONFLICT DO UPDATE SET samples = samples + EXCLUDED.samples`,
  );
  // Two agents of one service (or a late window) in the same minute add up.
  await exec(
    conn,
    `INSERT INTO profile_minutes SELECT service_name, minute, total_samples, other_samples, hz FROM stage_profile_minutes
     ON CONFLICT DO UPDATE SET total_samples = total_samples + EXCLUDED.total_samples,
       other_samples = other_samples + EXCLUDED.other_samples, hz = greatest(hz, EXCLUDED.hz)`,
  );
  await keepTopStacks(conn);
  await exec(conn, "DELETE FROM stage_profile_frames; DELETE FROM stage_profile_stacks; DELETE FROM stage_profile_minutes; DELETE FROM stage_profile_dropped");
  return windows;
}

/** Bounds a minute's rows whatever the agents send: the smallest stacks of the touched minutes are folded into other_samples. */
async function keepTopStacks(conn: Conn): Promise<void> {
  const dropped = await exec(
    conn,
    `INSERT INTO stage_profile_dropped
     SELECT service_name, minute, stack_key, samples FROM (
       SELECT p.service_name, p.minute, p.stack_key, p.samples,
              row_number() OVER (PARTITION BY p.service_name, p.minute ORDER BY p.samples DESC, p.stack_key) AS rank
       FROM profile_stacks p JOIN (SELECT DISTINCT service_name, minute FROM stage_profile_minutes) t
         ON p.service_name = t.service_name AND p.minute = t.minute
     ) WHERE rank > $1`,
    [profileStacksPerMinute],
  );
  if (dropped === 0) return;
  await exec(
    conn,
    `UPDATE profile_minutes SET other_samples = other_samples + d.samples
     FROM (SELECT service_name, minute, sum(samples)::BIGINT AS samples FROM stage_profile_dropped GROUP BY ALL) d
     WHERE profile_minutes.service_name = d.service_name AND profile_minutes.minute = d.minute`,
  );
  await exec(
    conn,
    `DELETE FROM profile_stacks USING stage_profile_dropped d
     WHERE profile_stacks.service_name = d.service_name AND profile_stacks.minute = d.minute AND profile_stacks.stack_key = d.stack_key`,
  );
}

/** Frames no stored minute uses any more (run by retention, after the minutes went). */
export const deleteUnusedStackFrames = `DELETE FROM profile_stack_frames f
  WHERE NOT EXISTS (SELECT 1 FROM profile_stacks p WHERE p.stack_key = f.stack_key)`;

export interface StoredProfileWindow {
  /** Minutes of the window that had data. */
  minutes: number;
  firstMinute: Date | null;
  totalSamples: bigint;
  otherSamples: bigint;
  /** The sampling rates seen, most minutes first. */
  hz: number[];
  stacks: { frames: StoredFrame[]; samples: bigint }[];
}

/** A service's stacks over the minutes that start in [from, until), summed per stack, largest first. */
export async function readProfileWindow(conn: Conn, service: string, from: Date, until: Date): Promise<StoredProfileWindow> {
  const params = [service, ts(from), ts(until)];
  const where = "service_name = $1 AND minute >= $2 AND minute < $3";
  const [totals] = await all(
    conn,
    `SELECT count(*) AS minutes, min(minute) AS first, sum(total_samples) AS total, sum(other_samples) AS other
     FROM profile_minutes WHERE ${where}`,
    params,
  );
  const hzRows = await all(conn, `SELECT hz, count(*) AS n FROM profile_minutes WHERE ${where} GROUP BY hz ORDER BY n DESC, hz DESC`, params);
  const stackRows = await all(
    conn,
    `SELECT any_value(f.frames)::TEXT AS frames, sum(s.samples) AS samples
     FROM profile_stacks s JOIN profile_stack_frames f ON f.stack_key = s.stack_key
     WHERE s.service_name = $1 AND s.minute >= $2 AND s.minute < $3
     GROUP BY s.stack_key ORDER BY samples DESC, s.stack_key`,
    params,
  );
  return {
    minutes: Number(totals?.minutes ?? 0),
    firstMinute: totals?.first instanceof Date ? totals.first : null,
    totalSamples: BigInt((totals?.total as bigint | null) ?? 0n),
    otherSamples: BigInt((totals?.other as bigint | null) ?? 0n),
    hz: hzRows.map((r) => Number(r.hz)),
    stacks: stackRows.map((r) => ({ frames: JSON.parse(String(r.frames)) as StoredFrame[], samples: BigInt(r.samples as bigint) })),
  };
}

/** Whether the colony knows the service: an agent registered it, or stored profiles name it. */
export async function profileServiceKnown(conn: Conn, service: string): Promise<boolean> {
  const [row] = await all(
    conn,
    `SELECT EXISTS (SELECT 1 FROM agents WHERE service_name = $1) OR EXISTS (SELECT 1 FROM profile_minutes WHERE service_name = $1) AS known`,
    [service],
  );
  return row?.known === true;
}
