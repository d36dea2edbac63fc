// The periodic rollups and retention of the colony's store (see startPeriodic).
import { startPeriodic, type PeriodicLoop } from "@coral/common/async";
import type { StoreLogger } from "./types.ts";

export type MaintenanceLoop = PeriodicLoop;

export function startLoop(intervalMs: number, run: () => Promise<void>, logger: StoreLogger | undefined): MaintenanceLoop {
  return startPeriodic(intervalMs, run, (err) => logger?.("error", "store maintenance failed", { err: err.message }));
}
