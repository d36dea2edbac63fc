// Stable hashes of mesh ids: the self-hosted front picks a mesh's shard with
// fnv1a32, and the worker picks its bucket object with meshBucket. Both are
// fixed forever: a different hash would look meshes up in the wrong place.

/** The most bucket objects meshes can be spread over (MESH_BUCKETS, --mesh-buckets). */
export const maxMeshBuckets = 4096;

/** FNV-1a, 32 bit, over the UTF-8 bytes: stable across processes and versions. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * MurmurHash3's 32-bit finalizer. The low bits of FNV-1a depend only on the
 * low bits of the input, so `fnv1a32(id) % shards` and `fnv1a32(id) % buckets`
 * would be correlated (with 2 shards, a shard would use only half of its
 * buckets); mixed first, the bucket is independent of the shard.
 */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket (0 … buckets-1) that holds a mesh when meshes share Durable Objects. */
export function meshBucket(meshId: string, buckets: number): number {
  return buckets <= 1 ? 0 : fmix32(fnv1a32(meshId)) % buckets;
}

/**
 * The name of the Durable Object that holds a mesh: the mesh id itself when
 * every mesh has its own object (buckets = 0), else `bucket:<n>`. The colon
 * is not allowed in mesh ids, so a bucket never shares an object with a mesh.
 */
export function meshObjectName(meshId: string, buckets: number): string {
  return buckets === 0 ? meshId : `bucket:${meshBucket(meshId, buckets)}`;
}
