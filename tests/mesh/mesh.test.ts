// The WireGuard mesh across network namespaces: discovery in one, the colony
// in another, two agents in two more, each with its own underlay address.
// The colony's NATS and Connect API listen on its mesh address only, so the
// agents reach them through WireGuard or not at all. Everything is real:
// coral-discovery (workerd), the colony with its nats-server and DuckDB,
// wireguard-go, `coral connect` agents, iptables for the outage.
import { readFile } from "node:fs/promises";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { decodeJoinToken, encodeJoinToken, generateIdentityKey } from "@coral/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInit } from "@coral/cli/init";
import { waitFor } from "../helpers/wait.ts";
import { coralIn, createUnderlay, meshTestUnavailableReason, sh, spawnCoralIn, spawnIn, startApp, tcpReaches, type Spawned, type Underlay } from "./netns.ts";
import { parseDocument } from "yaml";
import { writeFile } from "node:fs/promises";

const unavailable = meshTestUnavailableReason();
if (unavailable) console.warn(`[mesh tests] skipped: ${unavailable}`);

const id = `c5${process.pid % 10000}`;
const DISCOVERY_PORT = 8080;
const API_PORT = 9000;
const NATS_PORT = 4333;
const WG_PORT = 41820;
const APP_PORT = 8080;
const discoveryBin = join(import.meta.dirname, "../../discovery-worker/bin/coral-discovery.js");

interface Peers {
  meshMode: string;
  interfaceName: string;
  peers: Array<{ agentId: string; meshIpv4: string; endpoint?: string; lastHandshake?: string; rxBytes?: string; txBytes?: string; revokedAt?: string }>;
}

// CLI runs take 5-20 s each on a loaded 2-core machine: generous per-test time.
describe.skipIf(unavailable !== null)("WireGuard mesh across network namespaces", { timeout: 240_000 }, () => {
  let net: Underlay;
  let work: string;
  let projectDir: string;
  let token: string;
  const processes: Spawned[] = [];
  const agents: Record<"a" | "b", { proc?: Spawned; dataDir: string; agentId: string; service: string }> = {
    a: { dataDir: "", agentId: "", service: "api" },
    b: { dataDir: "", agentId: "", service: "store" },
  };
  let colony: Spawned;
  const env = () => ({ CORAL_HOME: join(work, "home") });

  // Run from the project folder, so the CLI finds this colony (and its local token).
  const coral = (ns: string, args: string[]) => coralIn(ns, args, { env: env(), timeoutMs: 90_000, cwd: projectDir });
  const colonyNs = () => net.members.colony!.ns;
  const peers = async (): Promise<Peers> => {
    const r = await coral(colonyNs(), ["mesh", "peers", "--json"]);
    if (r.code !== 0) throw new Error(`coral mesh peers failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Peers;
  };

  const startAgent = async (which: "a" | "b", extraEnv: Record<string, string> = {}) => {
    const agent = agents[which];
    const proc = spawnCoralIn(
      net.members[which]!.ns,
      ["connect", agent.service, "--port", String(APP_PORT), "--join", token, "--mesh", "wireguard", "--data-dir", agent.dataDir, "--sample-interval", "500ms", "--summary-interval", "1s"],
      { ...env(), CORAL_WG_INTERFACE: `${id}w${which}`, ...extraEnv },
    );
    processes.push(proc);
    agent.proc = proc;
    await waitFor(`agent ${which} to connect over the mesh`, () => {
      if (proc.child.exitCode !== null) throw new Error(`agent ${which} exited: ${proc.output()}`);
      return proc.output().includes(`✓ Connected: ${agent.service}`);
    }, { timeoutMs: 120_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}\n--- agent ${which} output:\n${proc.output()}\n--- colony output:\n${colony.output().slice(-3000)}`);
    });
    agent.agentId = (await readFile(join(agent.dataDir, "agent-id"), "utf8")).trim();
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "coral-mesh-"));
    net = await createUnderlay(id, ["colony", "a", "b"], 200 + (process.pid % 50));
    // Discovery in the hub namespace, at the underlay's .1.
    const discovery = spawnIn(net.hub.ns, [process.execPath, discoveryBin, "--port", String(DISCOVERY_PORT), "--host", "0.0.0.0", "--data-dir", join(work, "discovery"), "--rate-limit", "0"]);
    processes.push(discovery);
    await waitFor("discovery to listen", () => {
      if (discovery.child.exitCode !== null) throw new Error(`discovery exited: ${discovery.output()}`);
      return /listening/i.test(discovery.output());
    }, { timeoutMs: 60_000 });

    projectDir = join(work, "project");
    process.env.CORAL_HOME = join(work, "home");
    await runInit({ app: "shop", env: "dev", yes: true, dir: projectDir }, { input: new PassThrough(), output: new PassThrough(), interactive: false });
    const file = join(projectDir, ".coral", "config.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    doc.setIn(["discovery", "endpoint"], `http://${net.hub.address}:${DISCOVERY_PORT}`);
    doc.setIn(["colony", "api", "port"], API_PORT);
    doc.setIn(["nats", "port"], NATS_PORT);
    doc.setIn(["colony", "heartbeat_interval"], "2s");
    doc.setIn(["colony", "agent_offline_after"], "30s");
    await writeFile(file, doc.toString());

    colony = spawnCoralIn(colonyNs(), ["colony", "start", "--dir", projectDir, "--mesh", "wireguard", "--log-level", "info"], {
      ...env(),
      CORAL_PUBLIC_ENDPOINT: `${net.members.colony!.address}:${WG_PORT}`,
      CORAL_WG_INTERFACE: `${id}wc`,
    });
    processes.push(colony);
    await waitFor("the colony to start in wireguard mode", async () => {
      if (colony.child.exitCode !== null) throw new Error(`colony exited: ${colony.output()}`);
      return colony.output().includes("Colony started successfully");
    }, { timeoutMs: 120_000, intervalMs: 250 });

    // On the colony's machine (its namespace), where the API listens on the mesh address: one invitation for both agents.
    const invite = await coral(colonyNs(), ["colony", "invite", "--dir", projectDir, "--json", "--uses", "2"]);
    expect(invite.code, invite.stderr).toBe(0);
    token = (JSON.parse(invite.stdout) as { token: string }).token;

    for (const which of ["a", "b"] as const) {
      agents[which].dataDir = join(work, `agent-${which}`);
      processes.push(startApp(net.members[which]!.ns, APP_PORT));
    }
    await Promise.all([startAgent("a"), startAgent("b")]);
  }, 400_000);

  afterAll(async () => {
    for (const p of processes.reverse()) await p.stop(10_000).catch(() => undefined);
    await net?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it("lets only WireGuard and the bootstrap endpoint listen on the colony's public address", async () => {
    const listening = await sh("ip", ["netns", "exec", colonyNs(), "ss", "-Htlnu"]);
    expect(listening.code, listening.stderr).toBe(0);
    const sockets = listening.stdout.trim().split("\n").map((l) => {
      const cols = l.trim().split(/\s+/);
      return { proto: cols[0]!, local: cols[4]! };
    });
    const tcp = sockets.filter((s) => s.proto === "tcp").map((s) => s.local);
    expect(tcp).toContain(`10.42.0.1:${API_PORT}`);
    expect(tcp).toContain(`10.42.0.1:${NATS_PORT}`);
    // Every other TCP listener is the bootstrap endpoint or loopback-only.
    for (const local of tcp) expect(local, `unexpected TCP listener ${local}`).toMatch(new RegExp(`^(10\\.42\\.0\\.1:\\d+|0\\.0\\.0\\.0:${WG_PORT}|\\*:${WG_PORT}|127\\.0\\.0\\.1:\\d+|\\[::1\\]:\\d+)$`));
    expect(sockets.some((s) => s.proto === "udp" && s.local.endsWith(`:${WG_PORT}`))).toBe(true);
    // From an agent's namespace the colony's underlay address offers nothing but those two.
    expect(await tcpReaches(net.members.a!.ns, net.members.colony!.address, API_PORT)).toBe(false);
    expect(await tcpReaches(net.members.a!.ns, net.members.colony!.address, NATS_PORT)).toBe(false);
    expect(await tcpReaches(net.members.a!.ns, "10.42.0.1", API_PORT)).toBe(true);
  });

  it("has both agents as peers with handshakes and traffic, on persistent mesh IPs", async () => {
    const res = await waitFor("both peers to have handshakes", async () => {
      const p = await peers();
      return p.peers.length === 2 && p.peers.every((x) => x.lastHandshake && Number(x.rxBytes ?? 0) > 0 && Number(x.txBytes ?? 0) > 0) ? p : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    expect(res.meshMode).toBe("wireguard");
    expect(res.interfaceName).toBe(`${id}wc`);
    const byId = new Map(res.peers.map((p) => [p.agentId, p]));
    expect([...byId.keys()].sort()).toEqual([agents.a.agentId, agents.b.agentId].sort());
    expect(byId.get(agents.a.agentId)!.endpoint).toMatch(new RegExp(`^${net.members.a!.address.replaceAll(".", "\\.")}:\\d+$`));
    expect(byId.get(agents.b.agentId)!.endpoint).toMatch(new RegExp(`^${net.members.b!.address.replaceAll(".", "\\.")}:\\d+$`));
    const ips = res.peers.map((p) => p.meshIpv4);
    for (const ip of ips) expect(ip).toMatch(/^10\.42\.\d+\.\d+$/);
    expect(new Set(ips).size).toBe(2);
    // wg itself (over the same UAPI socket) sees the handshakes.
    const wg = await sh("ip", ["netns", "exec", colonyNs(), "wg", "show", `${id}wc`, "latest-handshakes"]);
    expect(wg.code, wg.stderr).toBe(0);
    const stamps = wg.stdout.trim().split("\n").map((l) => Number(l.split(/\s+/)[1]));
    expect(stamps).toHaveLength(2);
    for (const s of stamps) expect(s).toBeGreaterThan(Date.now() / 1000 - 600);
    // The agent kept its enrollment in its state folder.
    const saved = JSON.parse(await readFile(join(agents.a.dataDir, "mesh.json"), "utf8")) as { meshIpv4: string; publicKey: string };
    expect(saved.meshIpv4).toBe(byId.get(agents.a.agentId)!.meshIpv4);
  });

  it("receives the agents' telemetry through NATS over the tunnel", async () => {
    for (const which of ["a", "b"] as const) {
      const service = agents[which].service;
      const points = await waitFor(`${service} summaries in the colony`, async () => {
        const r = await coral(colonyNs(), ["metrics", service, "cpu_percent", "--since", "10m", "--json"]);
        if (r.code !== 0) throw new Error(r.stderr);
        const res = JSON.parse(r.stdout) as { series?: Array<{ points?: unknown[] }> };
        const n = res.series?.[0]?.points?.length ?? 0;
        return n >= 2 ? n : undefined;
      }, { timeoutMs: 60_000, intervalMs: 1000 });
      expect(points).toBeGreaterThanOrEqual(2);
    }
    const status = await coral(colonyNs(), ["status", "--json"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(agents.a.agentId);
    expect(status.stdout).toContain(agents.b.agentId);
  });

  it("pings an agent over the tunnel and says which path it took", async () => {
    const r = await coral(colonyNs(), ["mesh", "ping", agents.a.agentId, "--count", "3", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { rttMs: number[]; path: string; meshIp: string; lost?: number };
    expect(res.rttMs).toHaveLength(3);
    for (const rtt of res.rttMs) expect(rtt).toBeGreaterThan(0);
    expect(res.path).toContain(net.members.a!.address);
    expect(res.meshIp).toMatch(/^10\.42\./);
    const text = await coral(colonyNs(), ["mesh", "ping", agents.a.agentId, "--count", "1"]);
    expect(text.stdout).toMatch(/reply from 10\.42\.\d+\.\d+: time=[\d.]+ ms/);
    expect(text.stdout).toMatch(/Path: direct WireGuard tunnel/);
  });

  it("keeps an agent's key and mesh IP across a restart", async () => {
    const before = JSON.parse(await readFile(join(agents.a.dataDir, "mesh.json"), "utf8")) as { meshIpv4: string; publicKey: string; enrolledAt: string };
    await agents.a.proc!.stop();
    await startAgent("a");
    const after = JSON.parse(await readFile(join(agents.a.dataDir, "mesh.json"), "utf8")) as { meshIpv4: string; publicKey: string; enrolledAt: string };
    expect(after).toMatchObject({ meshIpv4: before.meshIpv4, publicKey: before.publicKey, enrolledAt: before.enrolledAt });
    const p = await peers();
    expect(p.peers.filter((x) => x.agentId === agents.a.agentId)).toHaveLength(1);
    expect(p.peers.find((x) => x.agentId === agents.a.agentId)!.meshIpv4).toBe(before.meshIpv4);
  });

  it("lets nothing reach the colony while the tunnel's UDP is dropped, and drains the outbox after", async () => {
    const ns = net.members.a!.ns;
    const service = agents.a.service;
    const rule = ["-p", "udp", "--dport", String(WG_PORT), "-j", "DROP"];
    const ruleIn = ["-p", "udp", "--sport", String(WG_PORT), "-j", "DROP"];
    const summaries = async (sinceSeconds: number) => {
      const r = await coral(colonyNs(), ["metrics", service, "cpu_percent", "--since", `${sinceSeconds}s`, "--json"]);
      if (r.code !== 0) throw new Error(r.stderr);
      const res = JSON.parse(r.stdout) as { series?: Array<{ points?: Array<{ timestamp: string }> }> };
      return (res.series?.[0]?.points ?? []).map((p) => new Date(p.timestamp).getTime());
    };
    const down = Date.now();
    await sh("ip", ["netns", "exec", ns, "iptables", "-I", "OUTPUT", ...rule]).then((r) => expect(r.code, r.stderr).toBe(0));
    await sh("ip", ["netns", "exec", ns, "iptables", "-I", "INPUT", ...ruleIn]).then((r) => expect(r.code, r.stderr).toBe(0));
    let up = 0;
    try {
      // With the tunnel down nothing gets through to the colony's mesh address.
      await waitFor("the colony to become unreachable from agent a", async () => !(await tcpReaches(ns, "10.42.0.1", API_PORT, 1500)), { timeoutMs: 30_000 });
      // Keep it down a while; summaries are made every second meanwhile.
      const downFor = 12_000;
      await waitFor("the outage to last", () => Date.now() - down > downFor, { timeoutMs: downFor + 5000, intervalMs: 500 });
      const during = await summaries(Math.ceil((Date.now() - down) / 1000));
      // Nothing made after the drop (plus what was in flight) reached the colony.
      expect(during.filter((t) => t > down + 3000)).toEqual([]);
    } finally {
      await sh("ip", ["netns", "exec", ns, "iptables", "-D", "OUTPUT", ...rule]);
      await sh("ip", ["netns", "exec", ns, "iptables", "-D", "INPUT", ...ruleIn]);
      up = Date.now();
    }
    // After it returns the outbox drains: every one-second window of the outage arrives.
    const stamps = await waitFor("the outage's summaries to arrive", async () => {
      const all = (await summaries(120)).sort((x, y) => x - y);
      const covered = all.filter((t) => t >= down - 3000 && t <= up + 3000);
      return covered.some((t) => t >= up) ? covered : undefined;
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!);
    expect(Math.max(...gaps), `gaps between summary windows: ${gaps.join(",")}`).toBeLessThan(2600);
    expect(stamps.length).toBeGreaterThanOrEqual(Math.floor((up - down) / 1000) - 2);
  }, 240_000);

  it("refuses a discovery answer that does not verify against the token's colony key, and a bootstrap certificate that is not pinned", async () => {
    const decoded = decodeJoinToken(token);
    if ("error" in decoded) throw new Error(decoded.error);
    const otherKey = (await generateIdentityKey()).publicKey;
    const forged = encodeJoinToken({ ...decoded.token, colonyPubkey: otherKey });
    const r = await coral(net.members.b!.ns, ["connect", "store", "--port", String(APP_PORT), "--join", forged, "--mesh", "wireguard", "--data-dir", join(work, "forged")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to connect: .*not signed by the pinned key/);

    const wrongCa = encodeJoinToken({ ...decoded.token, caFingerprint: `sha256:${"ab".repeat(32)}` });
    const r2 = await coral(net.members.b!.ns, ["connect", "store", "--port", String(APP_PORT), "--join", wrongCa, "--mesh", "wireguard", "--data-dir", join(work, "wrong-ca")], );
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/not from the colony CA pinned in the join token.*refusing to enroll/);
  });

  it("cuts a revoked agent off at once and refuses its enrollment", async () => {
    const ns = net.members.b!.ns;
    expect(await tcpReaches(ns, "10.42.0.1", API_PORT)).toBe(true);
    const r = await coral(colonyNs(), ["mesh", "revoke", agents.b.agentId]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Revoked ${agents.b.agentId}`);
    await waitFor("the revoked agent to lose the colony", async () => !(await tcpReaches(ns, "10.42.0.1", API_PORT, 1500)), { timeoutMs: 20_000 });
    const p = await peers();
    expect(p.peers.find((x) => x.agentId === agents.b.agentId)?.revokedAt).toBeTruthy();
    // Restarting it does not bring it back: the colony refuses the enrollment.
    await agents.b.proc!.stop();
    const again = await coral(ns, ["connect", "store", "--port", String(APP_PORT), "--join", token, "--mesh", "wireguard", "--data-dir", agents.b.dataDir], );
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/refused the enrollment: agent .* was revoked/);
    // Agent a is unaffected.
    expect(await tcpReaches(net.members.a!.ns, "10.42.0.1", API_PORT)).toBe(true);
  });

  it("coral proxy start gives a CLI outside the mesh a local endpoint to the colony", async () => {
    // Agent b's namespace, its agent stopped and revoked: a machine outside the mesh.
    const ns = net.members.b!.ns;
    const created = await coral(colonyNs(), ["token", "create", "--name", "proxy-user", "--scope", "read", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    const readToken = (JSON.parse(created.stdout) as { token: string }).token;
    const colonyId = decodeJoinToken(token);
    if ("error" in colonyId) throw new Error(colonyId.error);
    // Revoking b revoked the invitation it joined with: the proxy needs its own.
    const invite = await coral(colonyNs(), ["colony", "invite", "--dir", projectDir, "--json", "--note", "proxy"]);
    expect(invite.code, invite.stderr).toBe(0);
    const proxyToken = (JSON.parse(invite.stdout) as { token: string }).token;
    const proxy = spawnCoralIn(ns, ["proxy", "start", colonyId.token.colonyId, "--listen", "127.0.0.1:8000", "--data-dir", join(work, "proxy")], {
      ...env(),
      CORAL_WG_INTERFACE: `${id}wp`,
      CORAL_JOIN_TOKEN: proxyToken,
    });
    processes.push(proxy);
    await waitFor("the proxy to listen", () => {
      if (proxy.child.exitCode !== null) throw new Error(`proxy exited: ${proxy.output()}`);
      return proxy.output().includes("✓ Proxy: http://127.0.0.1:8000");
    }, { timeoutMs: 90_000, intervalMs: 250 });
    const status = await coral(ns, ["status", "--json", "--colony-url", "http://127.0.0.1:8000", "--token", readToken]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(agents.a.agentId);
    // The proxy is a peer like any other.
    expect((await peers()).peers.some((p) => p.agentId.startsWith("proxy-"))).toBe(true);
    await proxy.stop();
    expect(await tcpReaches(ns, "127.0.0.1", 8000)).toBe(false);
  }, 180_000);
});
