import { describe, expect, it } from "vitest";
import { parseMeshBuckets } from "./config.ts";
import { fnv1a32, meshBucket, meshObjectName } from "./mesh-hash.ts";

describe("mesh hashes", () => {
  it("never change: data dirs depend on them", () => {
    // FNV-1a's published test vectors, then values of the bucket hash as first released.
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
    expect(meshBucket("shop-dev-a1b2c3", 32)).toBe(13);
    expect(meshBucket("shop-dev-a1b2c3", 4096)).toBe(813);
    expect(meshObjectName("shop-dev-a1b2c3", 32)).toBe("bucket:13");
    expect(meshObjectName("shop-dev-a1b2c3", 0)).toBe("shop-dev-a1b2c3");
    expect(meshBucket("shop-dev-a1b2c3", 1)).toBe(0);
  });

  it.each([2, 3, 4])("spreads the meshes of each of %i shards over all of its buckets", (shards) => {
    const buckets = 16;
    const seen = Array.from({ length: shards }, () => new Map<number, number>());
    for (let i = 0; i < 20_000; i++) {
      const id = `mesh-${i.toString(36)}`;
      const inShard = seen[fnv1a32(id) % shards]!;
      const b = meshBucket(id, buckets);
      inShard.set(b, (inShard.get(b) ?? 0) + 1);
    }
    for (const inShard of seen) {
      expect(inShard.size).toBe(buckets);
      const counts = [...inShard.values()];
      // Within 25 % of an even split.
      expect(Math.min(...counts) / Math.max(...counts)).toBeGreaterThan(0.75);
    }
  });
});

describe("MESH_BUCKETS", () => {
  it.each([
    [undefined, 0],
    ["", 0],
    ["0", 0],
    ["1", 1],
    ["32", 32],
    ["4096", 4096],
  ])("reads %j as %i", (value, buckets) => {
    expect(parseMeshBuckets(value)).toEqual({ buckets });
  });

  it.each(["-1", "4097", "1.5", "lots", "0x10", "1e3", " "])("refuses %j, naming the variable and the range", (value) => {
    expect(parseMeshBuckets(value)).toEqual({
      error: `MESH_BUCKETS must be a whole number from 0 to 4096 (0: one Durable Object per mesh; N: meshes share N objects) (got "${value}")`,
    });
  });
});
