// coral mesh peers | ping | revoke, and coral proxy start: the WireGuard mesh
// from the CLI.
import { createServer, connect, type Server } from "node:net";
import { join, resolve } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { MeshAdminService, ListPeersResponseSchema, PingPeerResponseSchema } from "@coral/proto/gen/coral/mesh/v1/peers_pb";
import { IdentityService, RevokeAgentResponseSchema } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { Command, InvalidArgumentError, Option } from "commander";
import { coralHome } from "@coral/colony";
import { colors, columns, formatNumber, formatTime } from "../format/text.ts";
import { readJoinToken, withJoinOptions } from "./join-input.ts";
import { decodeMeshToken, joinMesh } from "./mesh-join.ts";
import { UsageError } from "./options.ts";
import { printJson, useColor } from "./read.ts";
import { explainError, resolveTarget, serviceClient, withRemoteOptions, type RemoteOptions } from "./remote.ts";

async function withService<S extends DescService, T>(service: S, options: RemoteOptions, run: (client: Client<S>) => Promise<T>): Promise<T> {
  const target = await resolveTarget(options);
  try {
    return await run(serviceClient(service, target));
  } catch (err) {
    throw explainError(err, target);
  }
}

const withMesh = <T>(options: RemoteOptions, run: (client: Client<typeof MeshAdminService>) => Promise<T>) => withService(MeshAdminService, options, run);

function agentIdArgument(value: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(value)) throw new InvalidArgumentError(`"${value}" is not an agent id (see coral mesh peers)`);
  return value;
}

function peersCommand(): Command {
  return withRemoteOptions(new Command("peers").description("list the mesh's peers: agent, mesh IP, last handshake, bytes")).action(async (opts: RemoteOptions) => {
    await withMesh(opts, async (client) => {
      const res = await client.listPeers({});
      if (opts.json) return printJson(ListPeersResponseSchema, res);
      const c = colors(useColor());
      if (res.meshMode !== "wireguard") {
        console.log(`Mesh mode: ${res.meshMode} (no WireGuard peers; start the colony with --mesh wireguard)`);
        return;
      }
      console.log(`Mesh: ${res.interfaceName}, UDP ${res.listenPort}, key ${res.colonyPublicKey}`);
      if (res.peers.length === 0) {
        console.log("No peers yet. Connect an agent with: coral connect <service> --port <port> --join <token> --mesh wireguard");
        return;
      }
      const rows = res.peers.map((p) => [
        p.agentId,
        p.meshIpv4,
        p.endpoint || "-",
        p.revokedAt ? c.red("revoked") : p.lastHandshake ? formatTime(p.lastHandshake) : "never",
        formatNumber(p.rxBytes),
        formatNumber(p.txBytes),
      ]);
      const [head, ...lines] = columns(["AGENT", "MESH IP", "ENDPOINT", "LAST HANDSHAKE", "RX BYTES", "TX BYTES"], rows);
      console.log([c.bold(head!), ...lines].join("\n"));
    });
  });
}

function pingCommand(): Command {
  return withRemoteOptions(new Command("ping").description("measure the round trip to an agent over the tunnel, and the path it took"))
    .argument("<agent>", "agent id (see coral mesh peers)", agentIdArgument)
    .option("--count <n>", "probes (1-20)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 20) throw new InvalidArgumentError("must be 1 to 20");
      return n;
    }, 3)
    .action(async (agent: string, opts: RemoteOptions & { count: number }) => {
      await withMesh(opts, async (client) => {
        const res = await client.pingPeer({ agentId: agent, count: opts.count });
        if (opts.json) return printJson(PingPeerResponseSchema, res);
        for (const rtt of res.rttMs) console.log(`reply from ${res.meshIp}: time=${rtt.toFixed(2)} ms`);
        const sent = res.rttMs.length + res.lost;
        const avg = res.rttMs.length ? res.rttMs.reduce((a, b) => a + b, 0) / res.rttMs.length : 0;
        console.log(`${sent} probes, ${res.rttMs.length} replies, ${res.lost} lost${res.rttMs.length ? `, avg ${avg.toFixed(2)} ms` : ""}`);
        console.log(`Path: ${res.path}`);
        if (res.rttMs.length === 0) process.exitCode = 1;
      });
    });
}

function revokeCommand(): Command {
  return withRemoteOptions(
    new Command("revoke").description(
      "revoke an agent for good, in every mesh mode: its key, API and NATS credentials, its mesh peer and the invitation it joined with",
    ),
  )
    .argument("<agent>", "agent id (see coral status --json or coral mesh peers)", agentIdArgument)
    .action(async (agent: string, opts: RemoteOptions) => {
      await withService(IdentityService, opts, async (client) => {
        const res = await client.revokeAgent({ agentId: agent });
        if (opts.json) return printJson(RevokeAgentResponseSchema, res);
        console.log(`✓ Revoked ${agent}: it can no longer register, publish or enroll again under this id`);
        if (res.natsUserRemoved) console.log("  NATS credentials removed (its connection is cut)");
        if (res.meshPeerRemoved) console.log("  Removed from the WireGuard mesh");
        if (res.invitationRevoked) console.log(`  Invitation ${res.agent?.invitationId} revoked too (whoever holds that join token cannot use it)`);
      });
    });
}

export function meshCommand(): Command {
  const mesh = new Command("mesh").description("the WireGuard mesh: peers, ping, revoke");
  for (const sub of [peersCommand(), pingCommand(), revokeCommand()]) mesh.addCommand(sub);
  return mesh;
}

function listenOption(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(":");
  const host = colon > 0 ? value.slice(0, colon) : "localhost";
  const port = Number(colon >= 0 ? value.slice(colon + 1) : value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`"${value}" must be host:port, e.g. localhost:8000`);
  return { host, port };
}

/** Forwards every TCP connection on `listen` to host:port (the colony over the tunnel). */
function startForwarder(listen: { host: string; port: number }, to: { host: string; port: number }): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(to);
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  return new Promise((done, fail) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      fail(err.code === "EADDRINUSE" ? new Error(`--listen: ${listen.host}:${listen.port} is already in use; pick another port`) : err),
    );
    server.listen(listen.port, listen.host, () => done(server));
  });
}

export function proxyCommand(): Command {
  const start = withJoinOptions(new Command("start"))
    .description("give this machine a local endpoint that forwards to the colony's API over the mesh (joins it as a peer; needs root)")
    .argument("<colony-id>", "the colony to reach")
    .option("--listen <host:port>", "local address to listen on", listenOption, { host: "localhost", port: 8000 })
    .addOption(new Option("--data-dir <dir>", "where the proxy keeps its mesh key and enrollment"))
    .action(async (colonyId: string, opts: { listen: { host: string; port: number }; join?: string; joinFile?: string; dataDir?: string }) => {
      const token = decodeMeshToken(readJoinToken(opts));
      if (token.colonyId !== colonyId) throw new UsageError(`the join token is for colony ${token.colonyId}, not ${colonyId}`);
      const dataDir = resolve(opts.dataDir ?? join(coralHome(), "proxies", colonyId));
      const stopped = new Promise<void>((done) => {
        process.once("SIGINT", () => done());
        process.once("SIGTERM", () => done());
      });
      const mesh = await joinMesh({ token, serviceName: "proxy", dataDir });
      let server: Server;
      try {
        server = await startForwarder(opts.listen, { host: mesh.enrollment.colonyMeshIpv4, port: mesh.enrollment.connectPort });
      } catch (err) {
        await mesh.close();
        throw err;
      }
      console.log(`✓ Proxy: http://${opts.listen.host}:${opts.listen.port} → colony ${colonyId} at ${mesh.enrollment.colonyMeshIpv4}:${mesh.enrollment.connectPort} over WireGuard (${mesh.enrollment.meshIpv4})`);
      console.log(`  Use it with: coral status --colony-url http://${opts.listen.host}:${opts.listen.port} --token <token>`);
      console.log("Press Ctrl+C to stop");
      await stopped;
      await new Promise<void>((done) => server.close(() => done()));
      await mesh.close();
    });
  return new Command("proxy").description("reach a colony over its mesh from a machine outside it").addCommand(start);
}
