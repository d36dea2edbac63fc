/**
 * One resource sample of a service's process set: each member sampled on its
 * own (so CPU is over the interval wherever a member was sampled before),
 * then summed. A member that exits between two samples takes its last
 * interval with it: what a fork-per-connection child burns in under one
 * interval is not seen (its parent's cutime grows only when it reaps it).
 * A member new since the last sample counts its CPU since it started, which
 * is within the interval; cpuBasis is the listener's.
 */
import { sampleProcess, type ProcessSnapshot, type SampleState } from "./sample.ts";

export interface ProcessSetSnapshot extends ProcessSnapshot {
  /** How many processes the set had at this sample (listener included). */
  processCount: number;
  /** Their pids, the listener first. */
  pids: number[];
  /** The listener's own figures (the inherited fields are the set's sums). */
  listener: ProcessSnapshot;
}

export interface ProcessSetSample {
  snapshot: ProcessSetSnapshot;
  /** Per member, for the next call. */
  states: Map<number, SampleState>;
}

/**
 * Sums `listener` (already sampled) and the `others` of its set. Members
 * that vanished while we read are skipped. `previous` holds the states of
 * the last call.
 */
export async function sampleProcessSet(
  listener: { snapshot: ProcessSnapshot; state: SampleState },
  others: readonly number[],
  previous: ReadonlyMap<number, SampleState>,
): Promise<ProcessSetSample> {
  const states = new Map<number, SampleState>([[listener.state.pid, listener.state]]);
  const sum = { ...listener.snapshot };
  const pids = [listener.snapshot.pid];
  for (const pid of others) {
    let s;
    try {
      s = await sampleProcess(pid, previous.get(pid));
    } catch {
      continue; // a member we may not read (another user's child) is left out rather than failing the sample
    }
    if (!s) continue;
    states.set(pid, s.state);
    pids.push(pid);
    sum.cpuPercent += s.snapshot.cpuPercent;
    sum.cpuTimeMs += s.snapshot.cpuTimeMs;
    sum.rssBytes += s.snapshot.rssBytes;
    sum.threads += s.snapshot.threads;
    if (sum.fdCount !== null && s.snapshot.fdCount !== null) sum.fdCount += s.snapshot.fdCount;
  }
  return { snapshot: { ...sum, processCount: pids.length, pids, listener: listener.snapshot }, states };
}
