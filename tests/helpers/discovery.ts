// Starts the real discovery worker in workerd (through Miniflare, as
// `coral-discovery` does) on a free port with a temporary data folder.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  DiscoveryClient,
  colonyFieldsJson,
  generateIdentityKey,
  sign,
  toBase64,
  type ColonyRegistrationFields,
  type IdentityKey,
} from "@coral/proto";
import { startDiscoveryServer, type DiscoveryServer, type DiscoveryServerOptions } from "@coral/discovery-worker";

export interface TestDiscovery extends AsyncDisposable {
  server: DiscoveryServer;
  url: string;
  dataDir: string;
  restart(): Promise<void>;
}

export async function startTestDiscovery(options: Partial<DiscoveryServerOptions> = {}): Promise<TestDiscovery> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "coral-discovery-")));
  const opts: DiscoveryServerOptions = { port: 0, rateLimitPerMinute: 0, ...options, dataDir };
  const handle: TestDiscovery = {
    server: await startDiscoveryServer(opts),
    get url() {
      return handle.server.url;
    },
    dataDir,
    async restart() {
      await handle.server.close();
      handle.server = await startDiscoveryServer({ ...opts, port: handle.server.port });
    },
    async [Symbol.asyncDispose]() {
      await handle.server.close();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}

export function transport(url: string, binary = false) {
  return createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: binary });
}

export function discoveryClient(url: string, binary = false) {
  return new DiscoveryClient({ transport: transport(url, binary), url, retry: { attempts: 2, baseDelayMs: 50 } });
}

export function randomWireguardKey(): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(32)));
}

let meshCounter = 0;
export function uniqueMeshId(prefix = "shop"): string {
  return `${prefix}-dev-${process.pid.toString(36)}${(meshCounter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export function colonyFields(meshId: string, overrides: Partial<ColonyRegistrationFields> = {}): ColonyRegistrationFields {
  return {
    meshId,
    pubkey: randomWireguardKey(),
    endpoints: ["203.0.113.42:41820", ":41820", "[2001:db8::7]:41820"],
    meshIpv4: "10.42.0.1",
    meshIpv6: "fd42::1",
    connectPort: 9000,
    metadata: { application: "shop", environment: "dev" },
    ...overrides,
  };
}

/** The seed's REST registration body (`POST /v1/mesh/:id/register`), signed by `identity`. */
export async function restColonyRegistration(fields: ColonyRegistrationFields, identity: IdentityKey): Promise<Record<string, unknown>> {
  const sig = await sign("colony-registration", colonyFieldsJson(fields), identity);
  return {
    type: "colony",
    pubkey: fields.pubkey,
    endpoints: fields.endpoints,
    mesh_ipv4: fields.meshIpv4,
    mesh_ipv6: fields.meshIpv6,
    connect_port: fields.connectPort,
    metadata: fields.metadata,
    signature: { identity_pubkey: sig.identityPubkey, signed_at_ms: sig.signedAtMs.toString(), signature: sig.signature },
  };
}

export { generateIdentityKey };
