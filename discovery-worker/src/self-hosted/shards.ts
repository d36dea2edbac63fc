// Self-hosted discovery splits meshes over several workerd processes
// ("shards"), each with its own Durable Object storage, so SQLite memory is
// divided and every core can run a worker thread. A mesh lives in the shard
// that a stable hash of its id names. The count is persisted in the data
// folder: with another count, meshes would be looked for in the wrong shard,
// so a restart with a different explicit --shards is refused.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const maxShards = 64;
const layoutFile = "shards.json";
const hashName = "fnv1a-32(utf8 mesh id) mod shards";

/** FNV-1a, 32 bit, over the UTF-8 bytes: stable across processes and versions. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

export function shardOf(meshId: string, shards: number): number {
  return shards <= 1 ? 0 : fnv1a32(meshId) % shards;
}

/** Shard 0 keeps the single-process layout's folder, so older data dirs are shard 0 of 1. */
export function shardStorageDir(dataDir: string, shard: number): string {
  return join(dataDir, shard === 0 ? "durable-objects" : `durable-objects-${shard}`);
}

export class ShardCountError extends Error {}

/**
 * Decides the shard count for `dataDir` and records it there.
 * `requested` is an explicit choice (refused if it contradicts the data);
 * `fallback` applies to a new data folder.
 */
export async function resolveShardCount(dataDir: string, requested: number | undefined, fallback: number): Promise<number> {
  const path = join(dataDir, layoutFile);
  let persisted: number | undefined;
  if (existsSync(path)) {
    const parsed = JSON.parse(await readFile(path, "utf8")) as { shards?: unknown };
    if (typeof parsed.shards !== "number" || !Number.isInteger(parsed.shards) || parsed.shards < 1)
      throw new ShardCountError(`${path} is damaged: "shards" must be a whole number of at least 1`);
    persisted = parsed.shards;
  } else if (existsSync(shardStorageDir(dataDir, 0))) {
    persisted = 1; // written before sharding existed: everything is in one process
  }
  if (persisted !== undefined && requested !== undefined && requested !== persisted)
    throw new ShardCountError(
      `data dir ${dataDir} holds meshes split over ${persisted} shard(s); start with --shards ${persisted} ` +
        `(or leave --shards out), or use a new --data-dir. Changing the count would look meshes up in the wrong shard.`,
    );
  const shards = persisted ?? requested ?? fallback;
  if (!Number.isInteger(shards) || shards < 1 || shards > maxShards)
    throw new ShardCountError(`shards must be a whole number from 1 to ${maxShards} (got ${shards})`);
  if (!existsSync(path)) {
    await mkdir(dataDir, { recursive: true });
    await writeFile(path, JSON.stringify({ shards, hash: hashName }) + "\n");
  }
  return shards;
}
