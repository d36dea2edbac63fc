// The colony's public surface: starting a colony, and the configuration API
// the CLI reads (the project's config, keys, local token, known colonies).
// The runtime (DuckDB, NATS, XState, WireGuard) loads only when a colony
// starts, so a command that only reads configuration stays light.
import type { RunningColony, StartColonyOptions } from "./runtime/colony.ts";

export * from "./config/index.ts";
export { isAlive, pidFilePath, readPidFile, type PidFile } from "./runtime/pid-file.ts";
export { weakSecretProblem } from "./identity/weak-secret.ts";
export { WeakSecretError } from "./identity/standing.ts";
export type { RunningColony, StartColonyOptions } from "./runtime/colony.ts";

/** Starts a colony in `options.projectDir` (store, NATS, ingestion, actors, API, discovery registration). */
export async function startColony(options: StartColonyOptions): Promise<RunningColony> {
  const runtime = await import("./runtime/colony.ts");
  return runtime.startColony(options);
}

/** The SHA-256 fingerprint of the colony's mesh bootstrap CA (it travels in join tokens). */
export async function bootstrapCaFingerprint(keysDir: string, colonyId: string): Promise<string> {
  const ca = await import("./mesh/bootstrap-ca.ts");
  return ca.bootstrapCaFingerprint(keysDir, colonyId);
}
