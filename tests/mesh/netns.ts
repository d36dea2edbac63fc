// A small network of namespaces for the mesh tests and benchmark: one
// "internet" namespace holding a bridge (and discovery), and member
// namespaces each with one veth into it and its own address. Members reach
// each other only across that underlay; the colony's services listen on its
// mesh address, so agents reach them only through WireGuard.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { coralBin } from "../helpers/cli.ts";

export interface Sh {
  code: number;
  stdout: string;
  stderr: string;
}

export function sh(cmd: string, args: string[], options: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {}): Promise<Sh> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", ...options.env }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Why namespaces with WireGuard cannot run here, or null. */
export function meshTestUnavailableReason(): string | null {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "needs root (network namespaces, TUN devices)";
  if (!existsSync("/dev/net/tun")) return "needs /dev/net/tun";
  return null;
}

export interface Member {
  ns: string;
  address: string;
}

export interface Underlay {
  hub: Member;
  members: Record<string, Member>;
  destroy(): Promise<void>;
}

/**
 * Creates `<prefix>hub` with a bridge at 10.<subnet>.0.1/24 and one namespace
 * per name at .2, .3, … Names of links are prefixed too (other engineers
 * create namespaces on this machine at the same time).
 */
export async function createUnderlay(prefix: string, names: string[], subnet: number): Promise<Underlay> {
  const hub = { ns: `${prefix}hub`, address: `10.${subnet}.0.1` };
  const all = [hub.ns, ...names.map((n) => `${prefix}${n}`)];
  const destroy = async () => {
    for (const ns of all) {
      // Processes we started inside (and their wireguard-go children) go first.
      const pids = (await sh("ip", ["netns", "pids", ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await sh("ip", ["netns", "del", ns]);
    }
    // UAPI sockets live in the host's /var/run/wireguard whatever the namespace.
    for (const file of await readdir("/var/run/wireguard").catch(() => [] as string[]))
      if (file.startsWith(prefix) && file.endsWith(".sock")) await rm(join("/var/run/wireguard", file), { force: true });
  };
  await destroy(); // leftovers of an earlier run with the same prefix
  try {
    await must("ip", ["netns", "add", hub.ns]);
    await must("ip", ["-n", hub.ns, "link", "set", "lo", "up"]);
    await must("ip", ["-n", hub.ns, "link", "add", `${prefix}br`, "type", "bridge"]);
    await must("ip", ["-n", hub.ns, "addr", "add", `${hub.address}/24`, "dev", `${prefix}br`]);
    await must("ip", ["-n", hub.ns, "link", "set", `${prefix}br`, "up"]);
    const members: Record<string, Member> = {};
    for (const [i, name] of names.entries()) {
      const ns = `${prefix}${name}`;
      const address = `10.${subnet}.0.${i + 2}`;
      await must("ip", ["netns", "add", ns]);
      await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
      await must("ip", ["link", "add", `${prefix}v${name}`, "netns", ns, "type", "veth", "peer", "name", `${prefix}p${name}`, "netns", hub.ns]);
      await must("ip", ["-n", hub.ns, "link", "set", `${prefix}p${name}`, "master", `${prefix}br`, "up"]);
      await must("ip", ["-n", ns, "addr", "add", `${address}/24`, "dev", `${prefix}v${name}`]);
      await must("ip", ["-n", ns, "link", "set", `${prefix}v${name}`, "up"]);
      members[name] = { ns, address };
    }
    return { hub, members, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** Runs the coral CLI inside a namespace and waits for it. */
export function coralIn(ns: string, args: string[], options: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {}): Promise<Sh> {
  return sh("ip", ["netns", "exec", ns, process.execPath, coralBin, ...args], options);
}

export interface Spawned {
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after a grace period; resolves once exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a long-running command inside a namespace, collecting its output. */
export function spawnIn(ns: string, command: string[], env: Record<string, string | undefined> = {}): Spawned {
  const child = spawn("ip", ["netns", "exec", ns, ...command], { env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  return {
    child,
    output: () => out,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Spawns `coral …` inside a namespace. */
export function spawnCoralIn(ns: string, args: string[], env: Record<string, string | undefined> = {}): Spawned {
  return spawnIn(ns, [process.execPath, coralBin, ...args], env);
}

/** A TCP connect from inside a namespace: true when it connects within timeoutMs. */
export async function tcpReaches(ns: string, host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  const script = `const s=require("node:net").connect({host:${JSON.stringify(host)},port:${port}});const t=setTimeout(()=>process.exit(2),${timeoutMs});s.on("connect",()=>{clearTimeout(t);process.exit(0)});s.on("error",()=>process.exit(1));`;
  return (await sh("ip", ["netns", "exec", ns, process.execPath, "-e", script], { timeoutMs: timeoutMs + 10_000 })).code === 0;
}

/** An HTTP server on 127.0.0.1:port inside a namespace: the "app" an agent watches. */
export function startApp(ns: string, port: number): Spawned {
  return spawnIn(ns, [process.execPath, "-e", `require("node:http").createServer((q,s)=>s.end("ok")).listen(${port},"127.0.0.1")`]);
}
