// The Durable Object that holds a mesh: its own (MESH_BUCKETS 0, hosted), or
// its bucket's (see mesh-hash.ts). Named, so callers can group meshes that
// share an object.
import { readConfig } from "./config.ts";
import { meshObjectName } from "./mesh-hash.ts";
import type { MeshRegistry } from "./mesh-registry.ts";

/** Ids of the bucket objects, by name (ids, unlike stubs, outlive a request; there are at most MESH_BUCKETS). */
const bucketIds = new Map<string, DurableObjectId>();

export function meshObject(env: DiscoveryEnv, meshId: string): { name: string; stub: DurableObjectStub<MeshRegistry> } {
  const buckets = readConfig(env).meshBuckets;
  if (buckets === 0) return { name: meshId, stub: env.MESHES.get(env.MESHES.idFromName(meshId)) };
  const name = meshObjectName(meshId, buckets);
  let id = bucketIds.get(name);
  if (!id) bucketIds.set(name, (id = env.MESHES.idFromName(name)));
  return { name, stub: env.MESHES.get(id) };
}
