// MeshAdminService: the CLI's view of the WireGuard mesh (peers, revoke, ping).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { MeshAdminService, PeerSchema, type Peer } from "@coral/proto/gen/coral/mesh/v1/peers_pb";
import { MeshRequestError, type ColonyMesh, type PeerView } from "./colony-mesh.ts";
import type { ApiDeps } from "../api/deps.ts";

function toPeer(p: PeerView): Peer {
  return create(PeerSchema, {
    agentId: p.agentId,
    publicKey: p.publicKey,
    meshIpv4: p.meshIpv4,
    meshIpv6: p.meshIpv6,
    endpoint: p.endpoint,
    lastHandshake: p.lastHandshake ? timestampFromDate(p.lastHandshake) : undefined,
    rxBytes: BigInt(p.rxBytes),
    txBytes: BigInt(p.txBytes),
    enrolledAt: timestampFromDate(p.enrolledAt),
    revokedAt: p.revokedAt ? timestampFromDate(p.revokedAt) : undefined,
  });
}

const statusCodes: Record<MeshRequestError["status"], Code> = { 400: Code.InvalidArgument, 401: Code.Unauthenticated, 403: Code.PermissionDenied, 404: Code.NotFound, 503: Code.Unavailable };

function meshOf(deps: ApiDeps): ColonyMesh {
  if (!deps.mesh)
    throw new ConnectError(`the colony runs in ${deps.meshMode} mesh mode: there are no WireGuard peers (start it with coral colony start --mesh wireguard)`, Code.FailedPrecondition);
  return deps.mesh;
}

function checkAgentId(agentId: string): void {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(agentId)) throw new ConnectError(`agent_id: "${agentId.slice(0, 40)}" must be 1-128 letters, digits, - or _`, Code.InvalidArgument);
}

export function meshAdminService(deps: ApiDeps): ServiceImpl<typeof MeshAdminService> {
  return {
    async listPeers() {
      if (!deps.mesh) return { meshMode: deps.meshMode, peers: [] };
      const peers = await deps.mesh.peers();
      return { meshMode: "wireguard", interfaceName: deps.mesh.interfaceName, colonyPublicKey: deps.mesh.publicKey, listenPort: deps.mesh.listenPort, peers: peers.map(toPeer) };
    },

    async revokePeer(req) {
      checkAgentId(req.agentId);
      const peer = await meshOf(deps).revoke(req.agentId);
      if (!peer) throw new ConnectError(`agent ${req.agentId} is not a mesh peer; list them with: coral mesh peers`, Code.NotFound);
      return { peer: toPeer(peer) };
    },

    async pingPeer(req) {
      checkAgentId(req.agentId);
      const count = req.count === 0 ? 3 : req.count;
      if (count > 20) throw new ConnectError("count: at most 20 probes", Code.InvalidArgument);
      const mesh = meshOf(deps);
      const agent = await deps.store.getAgent(req.agentId);
      const port = agent?.agentUrl ? Number(new URL(agent.agentUrl).port) : 0;
      if (!port) throw new ConnectError(`agent ${req.agentId} has not registered its API yet; nothing to ping`, Code.FailedPrecondition);
      try {
        const { peer, rttMs, lost } = await mesh.ping(req.agentId, port, count);
        const path = peer.endpoint ? `direct WireGuard tunnel (${mesh.interfaceName}) to ${peer.endpoint}` : `WireGuard tunnel (${mesh.interfaceName}), no handshake yet`;
        return { agentId: req.agentId, meshIp: peer.meshIpv4, rttMs, lost, path, endpoint: peer.endpoint };
      } catch (err) {
        if (err instanceof MeshRequestError) throw new ConnectError(err.message, statusCodes[err.status]);
        throw err;
      }
    },
  };
}
