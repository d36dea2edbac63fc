// The colonies this machine knows: $CORAL_HOME/colonies.yaml (default
// ~/.coral). `coral init` registers a colony and makes it current; CLI
// commands run outside a project folder use the current one.
//
//   current: my-shop-dev-a1b2c3
//   colonies:
//     - colony_id: my-shop-dev-a1b2c3
//       app_name: my-shop
//       environment: dev
//       project_dir: /home/me/src/my-shop
//       created_at: 2026-01-05T10:00:00.000Z
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { ConfigError, isPlainObject, parseYaml, toConfigIssues } from "./errors.ts";

export interface ColonyEntry {
  colony_id: string;
  app_name: string;
  environment: string;
  /** Absolute project folder (holding .coral/config.yaml). */
  project_dir: string;
  /** ISO 8601. */
  created_at: string;
}

export interface RegistryOptions {
  /** The Coral home folder (default: coralHome()). */
  home?: string;
}

const entrySchema = z.strictObject({
  colony_id: z.string().min(1),
  app_name: z.string().min(1),
  environment: z.string().min(1),
  project_dir: z.string().min(1),
  created_at: z.string().min(1),
});

const registrySchema = z.strictObject({
  current: z.string().optional(),
  colonies: z.array(entrySchema).default([]),
});

type Registry = z.output<typeof registrySchema>;

/** $CORAL_HOME, or ~/.coral. */
export function coralHome(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return resolve(env.CORAL_HOME?.trim() || join(homedir(), ".coral"));
}

export function registryPath(options: RegistryOptions = {}): string {
  return join(options.home ?? coralHome(), "colonies.yaml");
}

async function readRegistry(options: RegistryOptions): Promise<Registry> {
  const file = registryPath(options);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { colonies: [] };
    throw err;
  }
  const raw = parseYaml(text, file) ?? {};
  if (!isPlainObject(raw)) throw new ConfigError(file, [{ path: "", message: "must be a YAML mapping with current and colonies" }]);
  const result = registrySchema.safeParse(raw);
  if (!result.success) throw new ConfigError(file, toConfigIssues(result.error.issues, raw, registrySchema));
  return result.data;
}

async function writeRegistry(registry: Registry, options: RegistryOptions): Promise<void> {
  const file = registryPath(options);
  await mkdir(options.home ?? coralHome(), { recursive: true, mode: 0o700 });
  const doc = new YAML.Document(registry);
  doc.commentBefore = " Colonies known on this machine (coral init adds them; coral colony use <id> picks the current one).";
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, doc.toString(), { mode: 0o644 });
  await rename(tmp, file);
}

/** Adds or replaces (by colony_id) a colony; `makeCurrent` also makes it the current one. */
export async function registerColony(entry: ColonyEntry, options: RegistryOptions & { makeCurrent?: boolean } = {}): Promise<void> {
  const registry = await readRegistry(options);
  const clean = entrySchema.parse({ ...entry, project_dir: resolve(entry.project_dir) });
  const colonies = registry.colonies.filter((c) => c.colony_id !== entry.colony_id);
  colonies.push(clean);
  await writeRegistry({ current: options.makeCurrent ? entry.colony_id : registry.current, colonies }, options);
}

/** Removes a colony from the list (its files stay); true when it was there. */
export async function unregisterColony(id: string, options: RegistryOptions = {}): Promise<boolean> {
  const registry = await readRegistry(options);
  const colonies = registry.colonies.filter((c) => c.colony_id !== id);
  if (colonies.length === registry.colonies.length) return false;
  await writeRegistry({ current: registry.current === id ? undefined : registry.current, colonies }, options);
  return true;
}

/** Known colonies, oldest first. */
export async function listColonies(options: RegistryOptions = {}): Promise<ColonyEntry[]> {
  return (await readRegistry(options)).colonies;
}

/** Makes `id` the current colony; the error lists the known ids when it is unknown. */
export async function useColony(id: string, options: RegistryOptions = {}): Promise<ColonyEntry> {
  const registry = await readRegistry(options);
  const entry = registry.colonies.find((c) => c.colony_id === id);
  if (!entry) {
    const known = registry.colonies.map((c) => c.colony_id);
    throw new Error(
      known.length === 0
        ? `unknown colony "${id}": no colonies registered yet; create one with: coral init --app <name> --env dev`
        : `unknown colony "${id}"; known colonies: ${known.join(", ")}`,
    );
  }
  await writeRegistry({ ...registry, current: id }, options);
  return entry;
}

/** The current colony, or undefined when none is set (or it was removed). */
export async function currentColony(options: RegistryOptions = {}): Promise<ColonyEntry | undefined> {
  const registry = await readRegistry(options);
  return registry.current === undefined ? undefined : registry.colonies.find((c) => c.colony_id === registry.current);
}
