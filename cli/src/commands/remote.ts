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
      throw new Error(`--colony-url: "${options.colonyUrl}" is not a URL; use e.g. https://colony.example.com:9000`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("--colony-url: must be http:// or https://");
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
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unavailable || ce.code === Code.Unknown && /ECONNREFUSED|fetch failed|connect/i.test(ce.message))
    return new Error(`colony not reachable at ${target.url} (${target.source}): is it running? Start it with: coral colony start`);
  if (ce.code === Code.Unauthenticated) return new Error(`not authenticated: ${ce.rawMessage}`);
  if (ce.code === Code.PermissionDenied) return new Error(`permission denied: ${ce.rawMessage}`);
  return new Error(ce.rawMessage);
}
