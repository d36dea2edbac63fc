// Self-hosted discovery splits meshes over several workerd processes
// ("shards"), each with its own Durable Object storage, so SQLite memory is
// divided and every core can run a worker thread. A mesh lives in the shard
// that a stable hash of its id names. Inside a shard, meshes share a fixed
// number of Durable Objects ("mesh buckets", MESH_BUCKETS): one SQLite
// database per mesh is what limited registrations (bench/BENCHMARKS.md,
// issue 26). Both counts are persisted in the data folder: with other counts,
// meshes would be looked for in the wrong shard or bucket, so a restart with
// a different explicit count is refused.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fnv1a32, maxMeshBuckets, meshBucket } from "../worker/mesh-hash.ts";

export { fnv1a32, maxMeshBuckets };
export const maxShards = 64;
const layoutFile = "shards.json";
const hashName = "fnv1a-32(utf8 mesh id) mod shards";
const bucketHashName = "murmur3-fmix32(fnv1a-32(utf8 mesh id)) mod meshBuckets";

/**
 * Shards for a new data dir on a machine with `cpus` CPUs: one per CPU but
 * one, which the front (a single Node thread that parses every request and
 * answers cached lookups) needs for itself. Since meshes share bucket
 * objects, a shard's registrations batch better the fewer shards there are:
 * on 2 CPUs one shard took 0.40-0.44 ms of workerd CPU per first
 * registration against 0.58-0.65 ms for two, registered 1,839-2,007/s
 * against 1,502-1,757/s, and held 0.9 GiB instead of 1.4 at 100,000 meshes
 * (bench/BENCHMARKS.md, issue 26).
 */
export function defaultShardCount(cpus: number): number {
  return Math.min(maxShards, Math.max(1, cpus - 1));
}

export function shardOf(meshId: string, shards: number): number {
  return shards <= 1 ? 0 : fnv1a32(meshId) % shards;
}

/** The bucket of a mesh inside its shard (as the worker picks it), for tests and tools. */
export function meshBucketOf(meshId: string, meshBuckets: number): number {
  return meshBucket(meshId, meshBuckets);
}

/** Shard 0 keeps the single-process layout's folder, so older data dirs are shard 0 of 1. */
export function shardStorageDir(dataDir: string, shard: number): string {
  return join(dataDir, shard === 0 ? "durable-objects" : `durable-objects-${shard}`);
}

export class ShardCountError extends Error {}
export class MeshBucketsError extends Error {}

export interface DataLayout {
  shards: number;
  /** Durable Objects per shard that meshes share; 0: one object per mesh. */
  meshBuckets: number;
}

/**
 * Decides the shard and mesh bucket counts for `dataDir` and records them
 * there. `requested` holds explicit choices (refused if they contradict the
 * data); `fallback` applies to a new data folder. A data dir from before mesh
 * buckets keeps one object per mesh, so its registrations stay where they are.
 */
export async function resolveLayout(
  dataDir: string,
  requested: { shards?: number | undefined; meshBuckets?: number | undefined },
  fallback: DataLayout,
): Promise<DataLayout> {
  checkLayout({ shards: requested.shards ?? 1, meshBuckets: requested.meshBuckets ?? 0 });
  const path = join(dataDir, layoutFile);
  let persisted: DataLayout | undefined;
  let recorded: Record<string, unknown> | undefined;
  if (existsSync(path)) {
    recorded = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    if (typeof recorded.shards !== "number" || !Number.isInteger(recorded.shards) || recorded.shards < 1)
      throw new ShardCountError(`${path} is damaged: "shards" must be a whole number of at least 1`);
    const buckets = recorded.meshBuckets ?? 0; // written before mesh buckets: one object per mesh
    if (typeof buckets !== "number" || !Number.isInteger(buckets) || buckets < 0 || buckets > maxMeshBuckets)
      throw new MeshBucketsError(`${path} is damaged: "meshBuckets" must be a whole number from 0 to ${maxMeshBuckets}`);
    persisted = { shards: recorded.shards, meshBuckets: buckets };
  } else if (existsSync(shardStorageDir(dataDir, 0))) {
    persisted = { shards: 1, meshBuckets: 0 }; // written before sharding existed: everything is in one process, one object per mesh
  }
  if (persisted && requested.shards !== undefined && requested.shards !== persisted.shards)
    throw new ShardCountError(
      `data dir ${dataDir} holds meshes split over ${persisted.shards} shard(s); start with --shards ${persisted.shards} ` +
        `(or leave --shards out), or use a new --data-dir. Changing the count would look meshes up in the wrong shard.`,
    );
  if (persisted && requested.meshBuckets !== undefined && requested.meshBuckets !== persisted.meshBuckets)
    throw new MeshBucketsError(
      `data dir ${dataDir} keeps ${persisted.meshBuckets === 0 ? "one Durable Object per mesh" : `its meshes in ${persisted.meshBuckets} bucket(s) per shard`}; ` +
        `start with --mesh-buckets ${persisted.meshBuckets} (or leave --mesh-buckets out), or use a new --data-dir and let colonies ` +
        `register again (they do every minute). Changing the count would look meshes up in the wrong object.`,
    );
  const layout: DataLayout = {
    shards: persisted?.shards ?? requested.shards ?? fallback.shards,
    meshBuckets: persisted?.meshBuckets ?? requested.meshBuckets ?? fallback.meshBuckets,
  };
  checkLayout(layout);
  if (!recorded || recorded.meshBuckets === undefined) {
    await mkdir(dataDir, { recursive: true });
    const file = { ...recorded, shards: layout.shards, hash: hashName, meshBuckets: layout.meshBuckets, bucketHash: bucketHashName };
    await writeFile(path, JSON.stringify(file) + "\n");
  }
  return layout;
}

function checkLayout(layout: DataLayout): void {
  if (!Number.isInteger(layout.shards) || layout.shards < 1 || layout.shards > maxShards)
    throw new ShardCountError(`shards must be a whole number from 1 to ${maxShards} (got ${layout.shards})`);
  if (!Number.isInteger(layout.meshBuckets) || layout.meshBuckets < 0 || layout.meshBuckets > maxMeshBuckets)
    throw new MeshBucketsError(
      `mesh buckets must be a whole number from 0 (one Durable Object per mesh) to ${maxMeshBuckets} (got ${layout.meshBuckets})`,
    );
}
