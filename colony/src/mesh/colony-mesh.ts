// The colony's side of the WireGuard mesh: its wireguard-go interface at
// 10.42.0.1 / fd42::1, the enrolled agents as peers (restored from DuckDB at
// start), enrollment with persistent addresses, revocation, peer stats, ping.
import { connect } from "node:net";
import { meshEnrollDigest } from "@coral/proto";
import { IdentityError, type AgentIdentities } from "../identity/identities.ts";
import { EnrollRequestError, parseEnrollRequest, type EnrollRequest } from "./enroll-request.ts";
import { WireguardInterface, interfaceNameFor, type EnrollResponseJson, type PeerState } from "@coral/common/wireguard";
import type { ColonyStore } from "../store/index.ts";
import { allocateMeshPeer, getMeshPeer, listMeshPeers, revokeMeshPeer, type MeshPeerRow } from "../store/mesh-peers.ts";

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
  /** Enrolls from the bootstrap endpoint's JSON body, whatever it holds (checked here). */
  enroll(body: unknown, connectPort: number): Promise<EnrollResponseJson>;
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

const peerConfig = (row: MeshPeerRow) => ({ publicKey: row.publicKey, allowedIps: [`${row.meshIpv4}/32`, `${row.meshIpv6}/128`] });

export async function startColonyMesh(options: {
  colonyId: string;
  projectDir: string;
  privateKey: string;
  /** Enrollment is an agent identity's first registration (see ../identity). */
  identities: AgentIdentities;
  /** The colony's identity key, returned for the agent to check against its token. */
  identityPubkey: string;
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

    async enroll(body, connectPort) {
      let req: EnrollRequest;
      try {
        req = parseEnrollRequest(body);
      } catch (err) {
        if (err instanceof EnrollRequestError) throw new MeshRequestError(400, err.message);
        throw err;
      }
      const now = Date.now();
      try {
        await options.identities.authenticate(
          {
            agentId: req.agentId,
            agentPubkey: req.agentPubkey,
            timestampMs: req.timestampMs,
            nonce: req.nonce,
            signature: req.signature,
            digestHex: await meshEnrollDigest(req.agentId, req.wireguardPubkey),
            invitation: req.invitation,
          },
          now,
        );
      } catch (err) {
        if (err instanceof IdentityError) throw new MeshRequestError(err.kind === "invalid" ? 400 : err.kind === "unauthenticated" ? 401 : err.kind === "unavailable" ? 503 : 403, err.message);
        throw err;
      }
      const previous = await store.read((c) => getMeshPeer(c, req.agentId));
      if (previous?.revokedAt) throw new MeshRequestError(403, `agent ${req.agentId} was revoked from this mesh at ${previous.revokedAt.toISOString()}`);
      const row = await store.write((c) => allocateMeshPeer(c, { agentId: req.agentId, publicKey: req.wireguardPubkey, at: new Date(now), addressFor, maxHost: MAX_HOST }));
      if (previous && previous.publicKey !== row.publicKey) await iface.removePeer(previous.publicKey).catch(() => undefined);
      await iface.setPeer(peerConfig(row));
      await store.appendAudit({ at: new Date(now), actor: `agent:${req.agentId}`, action: "mesh.enroll", target: row.meshIpv4, details: { public_key: row.publicKey, new_key: previous ? previous.publicKey !== row.publicKey : true } });
      log.info({ agent_id: req.agentId, mesh_ip: row.meshIpv4 }, "Agent enrolled in the mesh");
      return {
        colony_id: options.colonyId,
        mesh_ipv4: row.meshIpv4,
        mesh_ipv6: row.meshIpv6,
        colony_pubkey: iface.publicKey,
        colony_identity_pubkey: options.identityPubkey,
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
