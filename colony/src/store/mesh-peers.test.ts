// Mesh addresses are allocated once per agent id and survive a reopen of the file.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { allocateMeshPeer, listMeshPeers, revokeMeshPeer } from "./mesh-peers.ts";
import { openStore } from "./open.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const addressFor = (host: number) => ({ ipv4: `10.42.${Math.floor(host / 256)}.${host % 256}`, ipv6: `fd42::${host.toString(16)}` });
const key = (c: string) => c.repeat(43) + "=";

describe("mesh peers", () => {
  it("give each agent the lowest free address, the same one again after a reopen or a new key, and record revocation", async () => {
    const dir = await mkdtemp(join(tmpdir(), "coral-mesh-peers-"));
    dirs.push(dir);
    const path = join(dir, "colony.duckdb");
    const at = new Date("2026-11-23T12:00:00Z");
    const s1 = await openStore(path);
    const a = await s1.write((c) => allocateMeshPeer(c, { agentId: "api-1", publicKey: key("A"), at, addressFor, maxHost: 10 }));
    const b = await s1.write((c) => allocateMeshPeer(c, { agentId: "store-1", publicKey: key("B"), at, addressFor, maxHost: 10 }));
    expect([a.meshIpv4, a.meshIpv6, b.meshIpv4]).toEqual(["10.42.0.2", "fd42::2", "10.42.0.3"]);
    await s1.close();

    const s2 = await openStore(path);
    try {
      const again = await s2.write((c) => allocateMeshPeer(c, { agentId: "api-1", publicKey: key("C"), at: new Date(at.getTime() + 1000), addressFor, maxHost: 10 }));
      expect(again).toMatchObject({ meshIpv4: "10.42.0.2", publicKey: key("C") });
      const revoked = await s2.write((c) => revokeMeshPeer(c, "store-1", new Date(at.getTime() + 2000)));
      expect(revoked?.revokedAt?.toISOString()).toBe("2026-11-23T12:00:02.000Z");
      expect(await s2.write((c) => revokeMeshPeer(c, "nobody", at))).toBeNull();
      // A revoked agent keeps its row, so its address is not handed to another agent.
      const c3 = await s2.write((c) => allocateMeshPeer(c, { agentId: "web-1", publicKey: key("D"), at, addressFor, maxHost: 10 }));
      expect(c3.meshIpv4).toBe("10.42.0.4");
      expect((await s2.read((c) => listMeshPeers(c))).map((p) => [p.agentId, p.meshIpv4, p.revokedAt !== null])).toEqual([
        ["api-1", "10.42.0.2", false],
        ["store-1", "10.42.0.3", true],
        ["web-1", "10.42.0.4", false],
      ]);
      await expect(s2.write((c) => allocateMeshPeer(c, { agentId: "x-1", publicKey: key("E"), at, addressFor, maxHost: 4 }))).rejects.toThrow(/no free address left/);
    } finally {
      await s2.close();
    }
  });
});
