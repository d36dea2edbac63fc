// Open-loop HTTP load shared by the benchmarks: requests issued on schedule
// (`rate` a second) whatever the answers do, so a slower server shows as
// fewer answers and longer latencies instead of a slower client.
import { readFileSync } from "node:fs";
import { request, type Agent } from "node:http";

export interface LoadResult {
  /** Answers a second over the run. */
  answered: number;
  sent: number;
  failed: number;
  /** Client-measured latency, ms. */
  p50: number;
  p99: number;
  /** Every latency measured, ms, in completion order. */
  latencies: number[];
  /** CPU used by `cpuPid` during the run, % of one core (NaN without it). */
  cpuPct: number;
}

export const quantile = (xs: readonly number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? NaN;

/** A process's CPU time so far (user + system), ms. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/**
 * GETs `path(i)` from 127.0.0.1:`port` at `rate`/s for `seconds`; `agent: false` opens a connection per request.
 * `port` may name each slot's server (interleaved runs), and `onAnswer` hears each answer's slot and latency.
 */
export async function openLoop(opts: {
  port: number | ((i: number) => number);
  rate: number;
  seconds: number;
  path: (i: number) => string;
  agent: Agent | false;
  cpuPid?: number;
  onAnswer?: (i: number, ms: number) => void;
}): Promise<LoadResult> {
  const latencies: number[] = [];
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const cpu0 = opts.cpuPid ? cpuMs(opts.cpuPid) : NaN;
  const t0 = performance.now();
  let sent = 0;
  while (performance.now() - t0 < opts.seconds * 1000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * opts.rate);
    for (; sent < due; sent++) {
      const t = performance.now();
      const slot = sent;
      const port = typeof opts.port === "number" ? opts.port : opts.port(slot);
      inFlight.push(
        new Promise<void>((resolve) => {
          const req = request({ host: "127.0.0.1", port, path: opts.path(slot), agent: opts.agent }, (res) => {
            res.resume();
            res.on("end", () => {
              const ms = performance.now() - t;
              latencies.push(ms);
              opts.onAnswer?.(slot, ms);
              resolve();
            });
          });
          req.on("error", () => {
            failed++;
            resolve();
          });
          req.end();
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = opts.cpuPid ? cpuMs(opts.cpuPid) - cpu0 : NaN;
  await Promise.all(inFlight);
  return { answered: latencies.length / elapsed, sent, failed, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), latencies, cpuPct: (cpu / (elapsed * 1000)) * 100 };
}
