// The colony's side of the WireGuard mesh: its wireguard-go interface at
// 10.42.0.1 / fd42::1, the enrolled agents as peers (restored from DuckDB at
// start), enrollment with persistent addresses, revocation, peer stats, ping.
import { connect } from "node:net";
import { checkSecretProof } from "@coral/proto";
import { WireguardInterface, interfaceNameFor, isKey, type EnrollRequestJson, type EnrollResponseJson, type PeerState } from "@coral/common/wireguard";
import type { ColonyStore } from "../store/index.ts";
import { allocateMeshPeer, getMeshPeer, listMeshPeers, revokeMeshPeer, type MeshPeerRow } from "../store/mesh-peers.ts";

const PROOF_WINDOW_MS = 5 * 60_000;
// 10.42.0.0/16: hosts .0.2 up to .255.254; fd42::/64 gets the same host number.
const MAX_HOST = 255 * 256 + 254;

export class MeshRequestError extends Error {
  override name = "MeshRequestError";
  constructor(readonly status: 400 | 401 | 403 | 404 | 503, message: string) {
    super(message);
  }
}

export interface PeerView extends MeshPeerRow {
  endpoint: string;
  lastHandshake: Date | null;
  rxBytes: number;
  txBytes: number;
}

export interface ColonyMesh {
  readonly interfaceName: string;
  readonly publicKey: string;
  readonly listenPort: number;
  readonly meshIpv4: string;
  readonly meshIpv6: string;
  enroll(request: EnrollRequestJson, connectPort: number): Promise<EnrollResponseJson>;
  revoke(agentId: string): Promise<PeerView | null>;
  peers(): Promise<PeerView[]>;
  ping(agentId: string, port: number, count: number): Promise<{ peer: PeerView; rttMs: number[]; lost: number }>;
  close(): Promise<void>;
}

function hostAddresses(meshIpv4: string, meshIpv6: string) {
  const [a, b] = meshIpv4.split(".");
  const v6prefix = meshIpv6.slice(0, meshIpv6.lastIndexOf(":") + 1);
  return (host: number) => ({ ipv4: `${a}.${b}.${Math.floor(host / 256)}.${host % 256}`, ipv6: `${v6prefix}${host.toString(16)}` });
}

class NonceLedger {
  private readonly seen = new Map<string, number>();
  claim(nonce: string, now: number): boolean {
    for (const [n, at] of this.seen) if (at < now - 2 * PROOF_WINDOW_MS) this.seen.delete(n);
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, now);
    return true;
  }
}

const peerConfig = (row: MeshPeerRow) => ({ publicKey: row.publicKey, allowedIps: [`${row.meshIpv4}/32`, `${row.meshIpv6}/128`] });

export async function startColonyMesh(options: {
  colonyId: string;
  projectDir: string;
  privateKey: string;
  secret: string;
  listenPort: number;
  meshIpv4: string;
  meshIpv6: string;
  store: ColonyStore;
  /** Interface name; default derived from the project folder (CORAL_WG_INTERFACE overrides). */
  interfaceName?: string;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}): Promise<ColonyMesh> {
  const name = options.interfaceName ?? process.env.CORAL_WG_INTERFACE ?? interfaceNameFor("coral", `${options.projectDir}:${options.colonyId}`);
  const iface = await WireguardInterface.create({
    name,
    addressV4: `${options.meshIpv4}/16`,
    addressV6: `${options.meshIpv6}/64`,
    listenPort: options.listenPort,
    privateKey: options.privateKey,
  });
  const { store, log } = options;
  const addressFor = hostAddresses(options.meshIpv4, options.meshIpv6);
  const nonces = new NonceLedger();

  try {
    const rows = (await store.read((c) => listMeshPeers(c))).filter((r) => !r.revokedAt);
    for (const row of rows) await iface.setPeer(peerConfig(row));
    log.info({ interface: name, port: iface.listenPort, peers: rows.length, address: options.meshIpv4 }, "WireGuard mesh up");
  } catch (err) {
    await iface.close();
    throw err;
  }

  const withStats = (row: MeshPeerRow, states: PeerState[]): PeerView => {
    const state = states.find((s) => s.publicKey === row.publicKey && !row.revokedAt);
    return { ...row, endpoint: state?.endpoint ?? "", lastHandshake: state?.lastHandshake ?? null, rxBytes: state?.rxBytes ?? 0, txBytes: state?.txBytes ?? 0 };
  };

  const mesh: ColonyMesh = {
    interfaceName: name,
    publicKey: iface.publicKey,
    listenPort: iface.listenPort,
    meshIpv4: options.meshIpv4,
    meshIpv6: options.meshIpv6,

    async enroll(req, connectPort) {
      if (typeof req?.agent_id !== "string" || !/^[A-Za-z0-9_-]{1,128}$/.test(req.agent_id))
        throw new MeshRequestError(400, "agent_id: must be 1-128 letters, digits, - or _");
      if (!isKey(req.wireguard_pubkey)) throw new MeshRequestError(400, "wireguard_pubkey: must be a WireGuard public key (44 characters of base64)");
      const p = req.proof;
      if (!p || typeof p.timestamp_ms !== "string" || !/^\d{1,16}$/.test(p.timestamp_ms) || typeof p.nonce !== "string" || !/^[0-9a-f]{32,64}$/.test(p.nonce) || typeof p.hmac !== "string")
        throw new MeshRequestError(400, "proof: must have timestamp_ms, nonce and hmac (sign with the colony secret from the join token)");
      const now = Date.now();
      const proof = { timestampMs: BigInt(p.timestamp_ms), nonce: p.nonce, hmac: p.hmac };
      if (Math.abs(Number(proof.timestampMs) - now) > PROOF_WINDOW_MS)
        throw new MeshRequestError(401, "proof timestamp is more than 5 minutes from the colony's clock; check the agent's clock");
      if (!(await checkSecretProof(options.secret, req.agent_id, proof)))
        throw new MeshRequestError(401, "proof does not match the colony secret; is the join token for this colony?");
      if (!nonces.claim(proof.nonce, now)) throw new MeshRequestError(401, "proof was already used (replay); sign again");
      const previous = await store.read((c) => getMeshPeer(c, req.agent_id));
      if (previous?.revokedAt) throw new MeshRequestError(403, `agent ${req.agent_id} was revoked from this mesh at ${previous.revokedAt.toISOString()}`);
      const row = await store.write((c) => allocateMeshPeer(c, { agentId: req.agent_id, publicKey: req.wireguard_pubkey, at: new Date(now), addressFor, maxHost: MAX_HOST }));
      if (previous && previous.publicKey !== row.publicKey) await iface.removePeer(previous.publicKey).catch(() => undefined);
      await iface.setPeer(peerConfig(row));
      await store.appendAudit({ at: new Date(now), actor: `agent:${req.agent_id}`, action: "mesh.enroll", target: row.meshIpv4, details: { public_key: row.publicKey, new_key: previous ? previous.publicKey !== row.publicKey : true } });
      log.info({ agent_id: req.agent_id, mesh_ip: row.meshIpv4 }, "Agent enrolled in the mesh");
      return {
        colony_id: options.colonyId,
        mesh_ipv4: row.meshIpv4,
        mesh_ipv6: row.meshIpv6,
        colony_pubkey: iface.publicKey,
        colony_mesh_ipv4: options.meshIpv4,
        colony_mesh_ipv6: options.meshIpv6,
        connect_port: connectPort,
      };
    },

    async revoke(agentId) {
      const row = await store.write((c) => revokeMeshPeer(c, agentId, new Date()));
      if (!row) return null;
      await iface.removePeer(row.publicKey);
      await store.appendAudit({ at: new Date(), actor: "colony", action: "mesh.revoke", target: agentId, details: { mesh_ip: row.meshIpv4 } });
      log.info({ agent_id: agentId }, "Agent revoked from the mesh");
      return withStats(row, []);
    },

    async peers() {
      const [rows, state] = await Promise.all([store.read((c) => listMeshPeers(c)), iface.state()]);
      return rows.map((r) => withStats(r, state.peers));
    },

    async ping(agentId, port, count) {
      const row = await store.read((c) => getMeshPeer(c, agentId));
      if (!row) throw new MeshRequestError(404, `agent ${agentId} is not a mesh peer; list them with: coral mesh peers`);
      if (row.revokedAt) throw new MeshRequestError(403, `agent ${agentId} was revoked`);
      const rttMs: number[] = [];
      let lost = 0;
      for (let i = 0; i < count; i++) {
        const rtt = await tcpRoundTrip(row.meshIpv4, port, 3000);
        if (rtt === null) lost++;
        else rttMs.push(rtt);
      }
      const state = await iface.state();
      return { peer: withStats(row, state.peers), rttMs, lost };
    },

    close: () => iface.close(),
  };
  return mesh;
}

/** One TCP handshake (SYN → SYN-ACK) to host:port, in ms; null on failure. */
function tcpRoundTrip(host: string, port: number, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once("connect", () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      socket.destroy();
      resolve(ms);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(null);
    });
    socket.once("error", () => resolve(null));
  });
}
