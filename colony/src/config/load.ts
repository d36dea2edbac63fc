// Reading and writing .coral/config.yaml.
//
//   loadColonyConfig    file + environment overrides → ColonyConfig (paths absolute, *_ms)
//   readColonyConfigFile  file only → ColonyConfigFile (as written, defaults filled), for edit + write
//   writeColonyConfig   validates and writes a commented file
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import YAML from "yaml";
import { ConfigError, isPlainObject, parseYaml, toConfigIssues } from "./errors.ts";
import { parseDuration } from "@coral/common/duration";
import { resolveControlConfig } from "./control-schema.ts";
import { colonyConfigSchema, type ColonyConfig, type ColonyConfigFile, type ColonyConfigInput, type RetentionMs } from "./schema.ts";

export const CONFIG_FILE = ".coral/config.yaml";

export function configPath(projectDir: string): string {
  return join(resolve(projectDir), ".coral", "config.yaml");
}

/** Environment variables that override config keys (they win over the file). */
export const envOverrides = [
  { env: "CORAL_PUBLIC_ENDPOINT", path: ["colony", "mesh", "public_endpoint"], kind: "string" },
  { env: "CORAL_DISCOVERY_URL", path: ["discovery", "endpoint"], kind: "string" },
  { env: "CORAL_NATS_URL", path: ["nats", "url"], kind: "string" },
  { env: "CORAL_API_PORT", path: ["colony", "api", "port"], kind: "number" },
  // For containers: listen beyond loopback, and tell agents where NATS is.
  { env: "CORAL_API_HOST", path: ["colony", "api", "host"], kind: "string" },
  { env: "CORAL_NATS_PORT", path: ["nats", "port"], kind: "number" },
  { env: "CORAL_NATS_HOST", path: ["nats", "host"], kind: "string" },
  { env: "CORAL_NATS_ADVERTISE_URL", path: ["nats", "advertise_url"], kind: "string" },
  { env: "CORAL_API_ADVERTISE_URL", path: ["colony", "api", "advertise_url"], kind: "string" },
  { env: "CORAL_MESH_MODE", path: ["colony", "mesh", "mode"], kind: "string" },
] as const;

export interface LoadOptions {
  /** Environment to read overrides from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

async function readRaw(file: string, projectDir: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT")
      throw new ConfigError(file, [{ path: "", message: `not found in ${projectDir}; create it with: coral init --app <name> --env dev` }]);
    throw new ConfigError(file, [{ path: "", message: `cannot be read: ${(err as Error).message}` }]);
  }
  const raw = parseYaml(text, file);
  if (raw === undefined || raw === null) return {};
  if (!isPlainObject(raw))
    throw new ConfigError(file, [{ path: "", message: `must be a YAML mapping with colony, discovery and nats sections (got ${Array.isArray(raw) ? "a list" : JSON.stringify(raw)})` }]);
  return raw;
}

function validate(raw: unknown, file: string, sources: Record<string, string> = {}): ColonyConfigFile {
  const result = colonyConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(file, toConfigIssues(result.error.issues, raw, colonyConfigSchema, sources));
  return result.data;
}

/** Sets the overridden keys in `raw` (a parsed file) and returns which variable set which path. */
export function applyEnvOverrides(raw: Record<string, unknown>, env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const override of envOverrides) {
    const text = env[override.env]?.trim();
    if (!text) continue;
    let node: Record<string, unknown> = raw;
    let reachable = true;
    for (const key of override.path.slice(0, -1)) {
      if (node[key] === undefined) node[key] = {};
      const next = node[key];
      if (!isPlainObject(next)) {
        reachable = false; // the file's structure is wrong; validation reports it
        break;
      }
      node = next;
    }
    if (!reachable) continue;
    node[override.path[override.path.length - 1]!] = override.kind === "number" && /^\d+$/.test(text) ? Number(text) : text;
    sources[override.path.join(".")] = override.env;
  }
  return sources;
}

function durationMs(text: string): number {
  const parsed = parseDuration(text);
  if ("error" in parsed) throw new Error(`unreachable: validated duration ${text}: ${parsed.error}`);
  return parsed.ms;
}

/** Turns a validated file into the loaded form: absolute paths, durations in ms. */
export function resolveColonyConfig(file: ColonyConfigFile, projectDir: string): ColonyConfig {
  const dir = resolve(projectDir);
  const { colony, discovery, nats, control } = file;
  const retention = Object.fromEntries(
    Object.entries(colony.storage.retention).map(([key, value]) => [key, value === undefined ? undefined : durationMs(value)]),
  ) as RetentionMs;
  return {
    project_dir: dir,
    config_path: configPath(dir),
    colony: {
      ...colony,
      storage: { path: resolve(dir, colony.storage.path), retention, memory_limit: colony.storage.memory_limit },
      api: {
        host: colony.api.host,
        port: colony.api.port,
        tls: colony.api.tls ? { cert: resolve(dir, colony.api.tls.cert), key: resolve(dir, colony.api.tls.key) } : undefined,
      },
      heartbeat_interval_ms: durationMs(colony.heartbeat_interval),
      agent_offline_after_ms: durationMs(colony.agent_offline_after),
      agent_expire_after_ms: durationMs(colony.agent_expire_after),
    },
    discovery: { ...discovery, register_interval_ms: durationMs(discovery.register_interval), ttl_ms: durationMs(discovery.ttl) },
    nats: { ...nats },
    ...(file.mcp ? { mcp: file.mcp } : {}),
    control: resolveControlConfig(control),
  };
}

/**
 * Loads `<projectDir>/.coral/config.yaml`, applies the environment overrides
 * (CORAL_PUBLIC_ENDPOINT, CORAL_DISCOVERY_URL, CORAL_NATS_URL, CORAL_API_PORT)
 * and validates the result. Throws ConfigError naming the file, key and problem.
 */
export async function loadColonyConfig(projectDir: string, options: LoadOptions = {}): Promise<ColonyConfig> {
  const dir = resolve(projectDir);
  const file = configPath(dir);
  const raw = (await readRaw(file, dir)) as Record<string, unknown>;
  const sources = applyEnvOverrides(raw, options.env ?? process.env);
  return resolveColonyConfig(validate(raw, file, sources), dir);
}

/** The file as written (validated, defaults filled, no environment overrides), e.g. to change and write back. */
export async function readColonyConfigFile(projectDir: string): Promise<ColonyConfigFile> {
  const dir = resolve(projectDir);
  const file = configPath(dir);
  return validate(await readRaw(file, dir), file);
}

/** Validates `input` as a config file would be; throws ConfigError naming the file. */
export function parseColonyConfig(input: unknown, file = CONFIG_FILE): ColonyConfigFile {
  return validate(input, resolve(file));
}

const keyComments: ReadonlyArray<{ path: string[]; comment: string }> = [
  { path: ["colony", "colony_id"], comment: " <app>-<env>-<random>: also the mesh id agents and discovery know this colony by" },
  { path: ["colony", "storage"], comment: " One DuckDB file; paths are relative to the project folder. Retention: how long each table keeps rows. memory_limit: DuckDB's memory (default 1GB)." },
  { path: ["colony", "api"], comment: " The Connect API for the coral CLI, dashboard and agents.\n tls: { cert: path, key: path } serves HTTPS (do this when host is not loopback)." },
  {
    path: ["colony", "mesh"],
    comment:
      " mode: loopback (one machine, no root) or wireguard (needs root or CAP_NET_ADMIN).\n public_endpoint: host:port agents on other machines reach the mesh at (or set CORAL_PUBLIC_ENDPOINT).",
  },
  { path: ["colony", "heartbeat_interval"], comment: " Agents heartbeat this often; offline after agent_offline_after without one, forgotten after agent_expire_after." },
  { path: ["discovery"], comment: " endpoint: discovery service URL, e.g. https://discovery.example.com (or CORAL_DISCOVERY_URL); none: no registration." },
  {
    path: ["nats"],
    comment:
      " url: an existing NATS server (or CORAL_NATS_URL); without one the colony starts its own on host:port.\n advertise_url: the NATS URL agents are given when they cannot use host:port (e.g. in a container).",
  },
];

function renderConfig(config: ColonyConfigFile): string {
  const doc = new YAML.Document(config);
  doc.commentBefore =
    " Coral colony configuration (written by coral init; edit freely).\n" +
    " Durations: 30s, 5m, 1h, 7d, 1y. Environment overrides: CORAL_PUBLIC_ENDPOINT,\n" +
    " CORAL_DISCOVERY_URL, CORAL_NATS_URL, CORAL_API_PORT, CORAL_API_HOST, CORAL_NATS_PORT,\n" +
    " CORAL_NATS_HOST, CORAL_NATS_ADVERTISE_URL, CORAL_API_ADVERTISE_URL, CORAL_MESH_MODE.";
  for (const { path, comment } of keyComments) {
    const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
    if (!YAML.isMap(parent)) continue;
    const pair = parent.items.find((item) => YAML.isScalar(item.key) && item.key.value === path[path.length - 1]);
    if (pair && YAML.isScalar(pair.key)) {
      pair.key.commentBefore = comment;
      pair.key.spaceBefore = true;
    }
  }
  return doc.toString({ lineWidth: 0 });
}

export interface WriteOptions {
  /** Replace an existing file (default true); false fails when it exists. */
  overwrite?: boolean;
}

/**
 * Validates `config` (throws ConfigError naming the file) and writes it with
 * every default spelled out and comments, atomically. Returns the file's path.
 */
export async function writeColonyConfig(projectDir: string, config: ColonyConfigInput, options: WriteOptions = {}): Promise<string> {
  const file = configPath(projectDir);
  const valid = validate(config, file);
  await mkdir(dirname(file), { recursive: true });
  const text = renderConfig(valid);
  if (options.overwrite === false) {
    try {
      await writeFile(file, text, { flag: "wx", mode: 0o644 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST")
        throw new ConfigError(file, [{ path: "", message: "already exists; pass --force to replace it" }]);
      throw err;
    }
    return file;
  }
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, file);
  return file;
}
