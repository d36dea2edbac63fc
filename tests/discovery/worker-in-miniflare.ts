// The discovery worker in Miniflare on its own, without the self-hosted
// front: as it runs hosted (FRONT_SECRET unset) unless a test sets it.
import { bundleWorker } from "@coral/discovery-worker";
import { Miniflare } from "miniflare";

export interface WorkerOptions {
  /** Default: the discovery worker's bundle. */
  script?: string;
  bindings?: Record<string, string>;
  durableObjectsPersist?: string;
}

export async function workerInMiniflare(options: WorkerOptions = {}): Promise<Miniflare> {
  return new Miniflare({
    modules: true,
    script: options.script ?? (await bundleWorker()),
    compatibilityDate: "2025-09-01",
    cf: false,
    durableObjects: {
      MESHES: { className: "MeshRegistry", useSQLite: true },
      DIRECTORY: { className: "Directory", useSQLite: true },
      RATE_LIMITER: { className: "RateLimiter", useSQLite: true },
    },
    bindings: options.bindings ?? {},
    ...(options.durableObjectsPersist === undefined ? {} : { durableObjectsPersist: options.durableObjectsPersist }),
  });
}
