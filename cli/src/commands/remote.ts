// Where the CLI finds its colony and with which token:
//   1. --colony-url / --token flags
//   2. CORAL_COLONY_URL / CORAL_TOKEN
//   3. the current local colony (coral colony use), its API port and its
//      .coral/local.token, which the colony accepts from loopback callers only.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Command, Option } from "commander";
import { isAlive, readPidFile } from "@coral/colony/pid-file";
import { UsageError } from "./options.ts";

export interface RemoteOptions {
  colonyUrl?: string;
  token?: string;
  json?: boolean;
}

export interface ColonyTarget {
  url: string;
  token: string | undefined;
  /** Where the target came from, for error messages. */
  source: string;
}

/** Adds --colony-url, --token and --json to a read command. */
export function withRemoteOptions(command: Command): Command {
  return command
    .addOption(new Option("--colony-url <url>", "colony API to talk to").env("CORAL_COLONY_URL"))
    .addOption(new Option("--token <token>", "API token for a remote colony").env("CORAL_TOKEN"))
    .option("--json", "print JSON");
}

export async function resolveTarget(options: RemoteOptions, projectDir = process.cwd()): Promise<ColonyTarget> {
  if (options.colonyUrl) {
    let url: URL;
    try {
      url = new URL(options.colonyUrl);
    } catch {
      throw new UsageError(`--colony-url: "${options.colonyUrl}" is not a URL; use e.g. https://colony.example.com:9000`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError("--colony-url: must be http:// or https://");
    // This folder's own colony, named by its URL: its local token (never sent anywhere else).
    const local = options.token ? undefined : await localTokenFor(url, projectDir);
    if (local) return { url: url.origin, token: local.token, source: `--colony-url (colony ${local.colonyId}, local token)` };
    return { url: url.origin, token: options.token, source: "--colony-url" };
  }
  const dir = await localColonyDir(projectDir);
  if (!dir)
    throw new Error(
      "no colony here: run this in a project with .coral/config.yaml (coral init), pick one with coral colony use <id>, or pass --colony-url",
    );
  const tokenPath = join(dir, ".coral", "local.token");
  const token = options.token ?? (existsSync(tokenPath) ? (await readFile(tokenPath, "utf8")).trim() : undefined);
  // A running colony says where its API listens, so a read command need not
  // load the configuration (YAML and its schema) at all. In wireguard mode the
  // API listens on the mesh address only: the pid file is the one source of
  // it, even when the colony's pid is not ours to see (another pid namespace).
  const running = await readPidFile(dir);
  if (running && typeof running.url === "string" && (running.mesh_mode === "wireguard" || isAlive(running.pid)))
    return { url: running.url, token, source: `colony ${running.colony_id}` };
  // Not running (or a stale pid file): where the configuration says it listens.
  const { loadColonyConfig } = await import("@coral/colony");
  const config = await loadColonyConfig(dir);
  const host = config.colony.api.host === "0.0.0.0" || config.colony.api.host === "::" ? "127.0.0.1" : config.colony.api.host;
  const scheme = config.colony.api.tls ? "https" : "http";
  return { url: `${scheme}://${host}:${config.colony.api.port}`, token, source: `colony ${config.colony.colony_id}` };
}

const isLoopbackHost = (host: string) => host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);

/**
 * The local token for `url` when it is the colony of the project in
 * `projectDir` (this folder, not the "current" colony elsewhere): the URL is
 * loopback, the colony's pid file names the same URL, its process runs, and
 * (where /proc shows it) that process is the one listening on the port. The
 * local token is admin: it goes to no other colony and off no loopback.
 */
export async function localTokenFor(url: URL, projectDir: string): Promise<{ token: string; colonyId: string } | undefined> {
  if (!isLoopbackHost(url.hostname)) return undefined;
  const tokenPath = join(projectDir, ".coral", "local.token");
  if (!existsSync(join(projectDir, ".coral", "config.yaml")) || !existsSync(tokenPath)) return undefined;
  const running = await readPidFile(projectDir);
  if (!running || typeof running.url !== "string" || !isAlive(running.pid)) return undefined;
  let runningUrl: URL;
  try {
    runningUrl = new URL(running.url);
  } catch {
    return undefined;
  }
  const port = (u: URL) => u.port || (u.protocol === "https:" ? "443" : "80");
  if (runningUrl.protocol !== url.protocol || !isLoopbackHost(runningUrl.hostname) || port(runningUrl) !== port(url)) return undefined;
  if ((await listensOn(running.pid, Number(port(url)))) === false) return undefined;
  const token = (await readFile(tokenPath, "utf8")).trim();
  return token ? { token, colonyId: running.colony_id } : undefined;
}

/**
 * Whether `pid` holds a socket listening on TCP `port`, from /proc (the
 * LISTEN rows of /proc/<pid>/net/tcp{,6}, and the process's fds); undefined
 * where /proc cannot tell (not Linux, or the process is not ours to see).
 */
async function listensOn(pid: number, port: number): Promise<boolean | undefined> {
  const { readdir, readlink } = await import("node:fs/promises");
  const inodes = new Set<string>();
  try {
    for (const table of ["tcp", "tcp6"]) {
      const text = await readFile(`/proc/${pid}/net/${table}`, "utf8").catch(() => "");
      for (const line of text.split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the 10th field.
        if (f.length > 9 && f[3] === "0A" && parseInt(f[1]!.split(":")[1] ?? "", 16) === port) inodes.add(f[9]!);
      }
    }
    const fds = await readdir(`/proc/${pid}/fd`);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(m[1]!)) return true;
    }
    return false;
  } catch {
    return undefined;
  }
}

/** The project folder of the local colony: the working folder's, else the current colony's. */
export async function localColonyDir(projectDir: string): Promise<string | undefined> {
  if (existsSync(join(projectDir, ".coral", "config.yaml"))) return projectDir;
  const { currentColony } = await import("@coral/colony");
  const current = await currentColony();
  return current?.project_dir;
}

function bearer(token: string | undefined): Interceptor {
  return (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** A client of one of the colony's services, sending the target's token. */
export function serviceClient<S extends DescService>(service: S, target: ColonyTarget): Client<S> {
  const transport = createConnectTransport({ baseUrl: target.url, httpVersion: "1.1", interceptors: [bearer(target.token)] });
  return createClient(service, transport);
}

export function colonyClient(target: ColonyTarget): Client<typeof ColonyService> {
  return serviceClient(ColonyService, target);
}

/** Turns transport failures into messages a person can act on. */
export function explainError(err: unknown, target: ColonyTarget): Error {
  if (err instanceof UsageError) return err;
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unavailable || ce.code === Code.Unknown && /ECONNREFUSED|fetch failed|connect/i.test(ce.message))
    return new Error(`colony not reachable at ${target.url} (${target.source}): is it running? Start it with: coral colony start`);
  if (ce.code === Code.Unauthenticated) return new Error(`not authenticated: ${ce.rawMessage}`);
  if (ce.code === Code.PermissionDenied) return new Error(`permission denied: ${ce.rawMessage}`);
  // The colony refused a value the user gave, or a name it does not know: a usage error, exit 2.
  if (ce.code === Code.InvalidArgument || ce.code === Code.NotFound) return new UsageError(ce.rawMessage);
  return new Error(ce.rawMessage);
}
