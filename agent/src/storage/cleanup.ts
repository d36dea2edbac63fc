// The periodic retention run of the agent's store (see startPeriodic).
import { startPeriodic, type PeriodicLoop } from "@coral/common/async";
import type { StorageLogger } from "./types.ts";

export type Loop = PeriodicLoop;

export function startLoop(intervalMs: number, run: () => Promise<void>, logger: StorageLogger | undefined): Loop {
  return startPeriodic(intervalMs, run, (err) => logger?.("error", "agent storage cleanup failed", { err: err.message }));
}
