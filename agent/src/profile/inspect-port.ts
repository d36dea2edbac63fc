// Why SIGUSR1 opened no inspector, when the reason is the usual one: the
// port the process opens it on (9229 unless --inspect-port/--inspect said
// otherwise, on the command line or in NODE_OPTIONS) is already held, most
// often by a second Node service on the host whose inspector is open.
import { readFile, readlink } from "node:fs/promises";
import { listPids, socketInodes } from "../observe/procfs.ts";
import { TCP_LISTEN, readTcpTables } from "../observe/procnet.ts";

/** The inspect port a Node process's flags name (9229 by default); 0 when it asked for a random one. */
export function inspectPortFromArgs(args: readonly string[]): number {
  let port = 9229;
  for (const a of args) {
    const m = /^--inspect(?:-brk|-port|-wait)?=(?:(?:\[[^\]]*\]|[^:]*):)?(\d+)$/.exec(a);
    if (m) port = Number(m[1]);
  }
  return port;
}

async function argsOf(pid: number): Promise<string[]> {
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
  let nodeOptions: string[] = [];
  try {
    const env = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
    const v = env.find((e) => e.startsWith("NODE_OPTIONS="));
    if (v) nodeOptions = v.slice("NODE_OPTIONS=".length).split(/\s+/).filter(Boolean);
  } catch {
    // another user's process: its environment is not readable
  }
  // NODE_OPTIONS first: flags on the command line win.
  return [...nodeOptions, ...cmdline];
}

/** The process (pid and command) listening on `port` in the network namespace of `pid`, if another one does. */
async function holderOf(pid: number, port: number): Promise<{ pid: number; command: string } | undefined> {
  const listeners = (await readTcpTables(`/proc/${pid}/net`)).filter((e) => e.stateCode === TCP_LISTEN && e.localPort === port);
  if (listeners.length === 0) return undefined;
  const inodes = new Set(listeners.map((e) => e.inode));
  const ns = await readlink(`/proc/${pid}/ns/net`).catch(() => "");
  for (const other of await listPids()) {
    if (other === pid) continue;
    if ((await readlink(`/proc/${other}/ns/net`).catch(() => "")) !== ns) continue;
    const own = await socketInodes(other);
    if (!own || ![...inodes].some((i) => own.has(i))) continue;
    const command = (await readFile(`/proc/${other}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean).join(" ");
    return { pid: other, command: command.length > 80 ? `${command.slice(0, 79)}…` : command };
  }
  return { pid: 0, command: "" };
}

/** A sentence saying that the process's inspect port is held and by whom, with what to do; undefined when it is not held. */
export async function inspectPortProblem(pid: number): Promise<string | undefined> {
  try {
    const port = inspectPortFromArgs(await argsOf(pid));
    if (port === 0) return undefined;
    const holder = await holderOf(pid, port);
    if (!holder) return undefined;
    const who = holder.pid ? `process ${holder.pid} (${holder.command})` : "another process";
    return `its inspect port ${port} is already held by ${who}; start process ${pid} with --inspect-port=0 (a free port, still loopback only) or another free port, or give each Node service on the host its own --inspect-port`;
  } catch {
    return undefined;
  }
}
