// Two network namespaces joined by a veth pair, a wireguard-go interface in
// each, configured as each other's peer over UAPI; traffic must cross the tunnel.
import { spawn, execFile } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollUntil } from "../async.ts";
import { generateKeyPair } from "./keys.ts";
import { WireguardInterface, WireguardSetupError, wireguardUnavailableReason } from "./interface.ts";
import type { PeerState } from "./uapi.ts";

const unavailable = wireguardUnavailableReason();
if (unavailable) console.warn(`[wireguard mesh tests] skipped: ${unavailable}`);

const id = `${process.pid % 100000}`;
const NS_A = `cwg${id}a`;
const NS_B = `cwg${id}b`;
const VETH_A = `cwv${id}a`;
const VETH_B = `cwv${id}b`;
const WG_A = `cwg${id}a0`;
const WG_B = `cwg${id}b0`;
const UNDERLAY_A = "10.231.0.1";
const UNDERLAY_B = "10.231.0.2";
const MESH_A = "10.42.0.1";
const MESH_B = "10.42.0.2";
const MESH6_A = "fd42::1";
const MESH6_B = "fd42::2";
const WG_PORT = 41820;
const TCP_PORT = 7000;

function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

// An echo server bound to the mesh addresses of namespace B.
const SERVER = `
const net = require("node:net");
const hosts = JSON.parse(process.env.HOSTS);
let ready = 0;
for (const host of hosts) {
  const srv = net.createServer((s) => s.pipe(s));
  srv.listen(Number(process.env.PORT), host, () => { if (++ready === hosts.length) console.log("ready"); });
}
`;

// Connects, sends a line, expects it echoed; exit 0 on success.
const CLIENT = `
const net = require("node:net");
const s = net.connect({ host: process.env.HOST, port: Number(process.env.PORT) });
const t = setTimeout(() => { console.error("timeout"); process.exit(2); }, Number(process.env.TIMEOUT_MS));
let got = "";
s.on("connect", () => s.write("hello over wireguard\\n"));
s.on("data", (d) => { got += d; if (got.includes("\\n")) { clearTimeout(t); console.log(got.trim()); process.exit(got.trim() === "hello over wireguard" ? 0 : 3); } });
s.on("error", (e) => { console.error(e.message); process.exit(1); });
`;

function tcpEcho(ns: string, host: string, timeoutMs: number) {
  return new Promise<{ ok: boolean; detail: string }>((resolve) => {
    execFile(
      "ip",
      ["netns", "exec", ns, process.execPath, "-e", CLIENT],
      { env: { ...process.env, HOST: host, PORT: String(TCP_PORT), TIMEOUT_MS: String(timeoutMs) }, timeout: timeoutMs + 10_000, encoding: "utf8" },
      (err, stdout, stderr) => resolve({ ok: !err, detail: `${stdout}${stderr}`.trim() }),
    );
  });
}

/** Repeats fn (back to back: each try waits for its own answer) until it returns true or the deadline passes. */
async function until(what: string, timeoutMs: number, fn: () => Promise<boolean>): Promise<void> {
  await pollUntil(async () => ((await fn()) ? true : undefined), { what, timeoutMs, intervalMs: 0, onError: "throw" });
}

describe.skipIf(unavailable !== null)("wireguard-go mesh between two network namespaces", () => {
  const keysA = generateKeyPair();
  const keysB = generateKeyPair();
  let a: WireguardInterface | undefined;
  let b: WireguardInterface | undefined;
  let server: ChildProcess | undefined;
  const started = Date.now();

  beforeAll(async () => {
    for (const ns of [NS_A, NS_B]) await sh("ip", ["netns", "del", ns]); // leftovers of an earlier run with the same pid
    await must("ip", ["netns", "add", NS_A]);
    await must("ip", ["netns", "add", NS_B]);
    await must("ip", ["link", "add", VETH_A, "netns", NS_A, "type", "veth", "peer", "name", VETH_B, "netns", NS_B]);
    await must("ip", ["-n", NS_A, "addr", "add", `${UNDERLAY_A}/24`, "dev", VETH_A]);
    await must("ip", ["-n", NS_B, "addr", "add", `${UNDERLAY_B}/24`, "dev", VETH_B]);
    for (const [ns, veth] of [[NS_A, VETH_A], [NS_B, VETH_B]] as const) {
      await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
      await must("ip", ["-n", ns, "link", "set", veth, "up"]);
    }
    a = await WireguardInterface.create({ name: WG_A, netns: NS_A, addressV4: `${MESH_A}/16`, addressV6: `${MESH6_A}/64`, listenPort: WG_PORT, privateKey: keysA.privateKey });
    b = await WireguardInterface.create({ name: WG_B, netns: NS_B, addressV4: `${MESH_B}/16`, addressV6: `${MESH6_B}/64`, listenPort: WG_PORT, privateKey: keysB.privateKey });

    server = spawn("ip", ["netns", "exec", NS_B, process.execPath, "-e", SERVER], {
      env: { ...process.env, HOSTS: JSON.stringify([MESH_B, MESH6_B]), PORT: String(TCP_PORT) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let serverOut = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`echo server in ${NS_B} did not start: ${serverOut}`)), 15_000);
      const onData = (d: Buffer) => {
        serverOut += d.toString();
        if (serverOut.includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      };
      server!.stdout!.on("data", onData);
      server!.stderr!.on("data", onData);
      server!.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`echo server exited with ${code}: ${serverOut}`));
      });
    });
  });

  afterAll(async () => {
    server?.kill("SIGKILL");
    await a?.close().catch((e: unknown) => console.error(e));
    await b?.close().catch((e: unknown) => console.error(e));
    for (const ns of [NS_A, NS_B]) await sh("ip", ["netns", "del", ns]);
  });

  it("reports its public key and listen port over UAPI", async () => {
    const state = await a!.state();
    expect(state).toMatchObject({ hasPrivateKey: true, publicKey: keysA.publicKey, listenPort: WG_PORT, peers: [] });
    expect(a!.publicKey).toBe(keysA.publicKey);
  });

  it("has no path between the mesh addresses before peers are configured", async () => {
    const r = await tcpEcho(NS_A, MESH_B, 1500);
    expect(r.ok).toBe(false);
  });

  it("carries TCP over the tunnel once each side has the other as peer", async () => {
    await a!.setPeer({ publicKey: keysB.publicKey, endpoint: `${UNDERLAY_B}:${WG_PORT}`, allowedIps: [`${MESH_B}/32`, `${MESH6_B}/128`] });
    await b!.setPeer({ publicKey: keysA.publicKey, endpoint: `${UNDERLAY_A}:${WG_PORT}`, allowedIps: [`${MESH_A}/32`, `${MESH6_A}/128`], persistentKeepalive: 25 });

    let last = "";
    await until(`TCP echo ${NS_A} → ${MESH_B}:${TCP_PORT} over ${WG_A}`, 20_000, async () => {
      const r = await tcpEcho(NS_A, MESH_B, 3000);
      last = r.detail;
      return r.ok;
    }).catch((e: Error) => {
      throw new Error(`${e.message}; last attempt: ${last}; ${WG_A}: ${a!.recentOutput()}`);
    });
    const v6 = await tcpEcho(NS_A, MESH6_B, 5000);
    expect(v6, `IPv6 echo over the tunnel: ${v6.detail}`).toMatchObject({ ok: true });

    for (const [iface, peerKey, endpoint] of [[a!, keysB.publicKey, `${UNDERLAY_B}:${WG_PORT}`], [b!, keysA.publicKey, `${UNDERLAY_A}:${WG_PORT}`]] as const) {
      const state = await iface.state();
      expect(state.peers).toHaveLength(1);
      const peer = state.peers[0] as PeerState;
      expect(peer.publicKey).toBe(peerKey);
      expect(peer.endpoint).toBe(endpoint);
      expect(peer.lastHandshake).not.toBeNull();
      expect(peer.lastHandshake!.getTime()).toBeGreaterThanOrEqual(started - 1000);
      expect(peer.lastHandshake!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
      expect(peer.rxBytes).toBeGreaterThan(0);
      expect(peer.txBytes).toBeGreaterThan(0);
    }
    const bState = await b!.state();
    expect(bState.peers[0]?.persistentKeepaliveInterval).toBe(25);
    expect(bState.peers[0]?.allowedIps.sort()).toEqual([`${MESH_A}/32`, `${MESH6_A}/128`].sort());
  });

  it("stops carrying traffic when the peer is removed, and resumes when it is added back", async () => {
    await a!.removePeer(keysB.publicKey);
    expect((await a!.state()).peers).toEqual([]);
    const fromA = await tcpEcho(NS_A, MESH_B, 2000);
    expect(fromA.ok, `A → B after removal: ${fromA.detail}`).toBe(false);
    const fromB = await tcpEcho(NS_B, MESH_A, 2000);
    expect(fromB.ok, `B → A after removal: ${fromB.detail}`).toBe(false);

    await a!.setPeer({ publicKey: keysB.publicKey, endpoint: `${UNDERLAY_B}:${WG_PORT}`, allowedIps: [`${MESH_B}/32`] });
    await until("TCP echo after the peer is added back", 20_000, async () => (await tcpEcho(NS_A, MESH_B, 3000)).ok);
  });

  it("refuses a second interface with the same name, or on a port in use, saying so", async () => {
    const privateKey = generateKeyPair().privateKey;
    await expect(WireguardInterface.create({ name: WG_A, netns: NS_A, addressV4: "10.43.0.1/16", listenPort: 0, privateKey })).rejects.toMatchObject({
      code: "name-in-use",
      message: expect.stringMatching(/already runs/),
    });
    const err = await WireguardInterface.create({ name: `cwg${id}a1`, netns: NS_A, addressV4: "10.43.0.1/16", listenPort: WG_PORT, privateKey }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WireguardSetupError);
    expect(err).toMatchObject({ code: "port-in-use", message: expect.stringMatching(/UDP port 41820 is already in use/) });
    await expect(WireguardInterface.create({ name: `cwg${id}a2`, netns: `${NS_A}-missing`, addressV4: "10.43.0.1/16", listenPort: 0, privateKey })).rejects.toMatchObject({
      code: "no-netns",
    });
    // The failed attempts left nothing behind.
    const links = await must("ip", ["-n", NS_A, "-o", "link", "show"]);
    expect(links).not.toContain(`cwg${id}a1`);
  });

  it("close() is idempotent and removes the interface", async () => {
    const extra = await WireguardInterface.create({ name: `cwg${id}a3`, netns: NS_A, addressV4: "10.44.0.1/16", listenPort: 0, privateKey: generateKeyPair().privateKey });
    expect(extra.listenPort).toBeGreaterThan(0);
    expect(await must("ip", ["-n", NS_A, "-o", "link", "show"])).toContain(`cwg${id}a3`);
    await Promise.all([extra.close(), extra.close()]);
    await extra.close();
    expect(extra.running).toBe(false);
    expect(await must("ip", ["-n", NS_A, "-o", "link", "show"])).not.toContain(`cwg${id}a3`);
    await expect(extra.state()).rejects.toThrow(/no UAPI socket/);
  });
});
