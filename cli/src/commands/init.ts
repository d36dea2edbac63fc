// coral init: creates a colony for the project in the current folder (or --dir):
//   .coral/              owner-only (0700): keys, tokens and data
//   .coral/config.yaml   the colony's configuration (see ../config/schema.ts)
//   .coral/keys/         identity and WireGuard key (0700 / 0600)
//   .coral/local.token   the CLI's admin token, accepted from loopback only
// and registers it in $CORAL_HOME/colonies.yaml as the current colony.
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import type { Readable, Writable } from "node:stream";
import { Command } from "commander";
import {
  configPath,
  createColonyKeys,
  createLocalToken,
  keysDir,
  listColonies,
  nameProblem,
  newColonyId,
  registerColony,
  slugify,
  unregisterColony,
  writeColonyConfig,
  type ColonyEntry,
} from "@coral/colony";
import { UsageError } from "./options.ts";

export interface InitOptions {
  app?: string;
  env?: string;
  discovery?: string;
  yes?: boolean;
  dir?: string;
  force?: boolean;
  json?: boolean;
}

export interface InitIo {
  input: Readable;
  output: Writable;
  /** Whether to prompt (stdin is a terminal). */
  interactive: boolean;
}

export interface InitResult {
  colonyId: string;
  appName: string;
  environment: string;
  projectDir: string;
  configPath: string;
  keysDir: string;
  localTokenPath: string;
  discovery: string | undefined;
  identityPublicKey: string;
  wireguardPublicKey: string;
}

const defaultEnv = "dev";

function checkName(value: string, kind: "app" | "env", source: string): string {
  const problem = nameProblem(value, kind);
  if (problem) throw new UsageError(`${source}: ${problem}`);
  return value;
}

function checkDiscovery(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--discovery: "${value}" is not a URL; use e.g. https://discovery.example.com or http://localhost:8080`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--discovery: "${value}" must start with http:// or https://`);
  return value.replace(/\/+$/, "");
}

interface Prompt {
  ask(question: string): Promise<string>;
  close(): void;
}

/** Line prompts that fail (instead of waiting forever) when the input ends. */
function prompt(io: InitIo): Prompt {
  const rl = createInterface({ input: io.input, output: io.output, terminal: false });
  let closed = false;
  const ended = new Promise<never>((_, reject) =>
    rl.once("close", () => {
      closed = true;
      reject(new Error("init cancelled (input ended); pass --app and --env, or --yes for the defaults"));
    }),
  );
  ended.catch(() => undefined);
  return {
    ask: (question) => (closed ? ended : Promise.race([rl.question(question), ended])),
    close: () => rl.close(),
  };
}

/** Asks until the answer is a valid name; an empty answer takes the default. */
async function ask(rl: Prompt, output: Writable, question: string, fallback: string, kind: "app" | "env"): Promise<string> {
  for (;;) {
    const answer = (await rl.ask(`${question} (${fallback}): `)).trim();
    const value = answer || fallback;
    const problem = nameProblem(value, kind);
    if (!problem) return value;
    output.write(`  ${problem}\n`);
  }
}

async function existingColonyId(file: string): Promise<string | undefined> {
  try {
    return /^\s*colony_id:\s*["']?([^"'\s#]+)/m.exec(await readFile(file, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Does the work of `coral init` and returns what it made. Throws an Error
 * with a message for the user when the input is wrong or the colony exists.
 */
export async function runInit(options: InitOptions, io: InitIo): Promise<InitResult> {
  const projectDir = resolve(options.dir ?? process.cwd());
  const file = configPath(projectDir);
  if (existsSync(file) && !options.force) {
    const id = await existingColonyId(file);
    throw new Error(
      `a colony is already initialized in ${projectDir}${id ? ` (${id})` : ""}: ${file} exists. ` +
        "Pass --force to replace it (new keys: agents that joined must join again), or start it with: coral colony start",
    );
  }

  const folderName = slugify(basename(projectDir)).slice(0, 40).replace(/-+$/, "");
  const defaultApp = folderName && !nameProblem(folderName, "app") ? folderName : "my-app";
  let app = options.app !== undefined ? checkName(options.app, "app", "--app") : undefined;
  let env = options.env !== undefined ? checkName(options.env, "env", "--env") : undefined;
  const discovery = options.discovery !== undefined ? checkDiscovery(options.discovery) : undefined;

  if (options.yes) {
    app ??= defaultApp;
    env ??= defaultEnv;
  } else if (app === undefined && !io.interactive) {
    throw new UsageError(
      "no application name: pass --app <name> --env <env> (e.g. coral init --app my-shop --env dev), " +
        `or --yes to use the defaults (app "${defaultApp}", env "${defaultEnv}")`,
    );
  } else if (io.interactive && (app === undefined || env === undefined)) {
    const rl = prompt(io);
    try {
      app ??= await ask(rl, io.output, "Application name", defaultApp, "app");
      env ??= await ask(rl, io.output, "Environment", defaultEnv, "env");
    } finally {
      rl.close();
    }
  }
  app ??= defaultApp;
  env ??= defaultEnv;

  const colonyId = newColonyId(app, env);
  // Keys, tokens and data live here: owner-only (an existing folder too).
  await mkdir(join(projectDir, ".coral"), { recursive: true, mode: 0o700 });
  await chmod(join(projectDir, ".coral"), 0o700);
  // Keys without a config belong to no colony (an interrupted init): replace them.
  const overwrite = Boolean(options.force) || !existsSync(file);
  const keys = await createColonyKeys(projectDir, { overwrite });
  await createLocalToken(projectDir, { overwrite });
  const ignore = join(projectDir, ".coral", ".gitignore");
  if (!existsSync(ignore))
    await writeFile(ignore, "# Written by coral init: keys, tokens and data stay out of version control.\n*\n!.gitignore\n!config.yaml\n");
  const written = await writeColonyConfig(
    projectDir,
    { colony: { app_name: app, environment: env, colony_id: colonyId }, discovery: discovery ? { endpoint: discovery } : {} },
    { overwrite: Boolean(options.force) },
  );

  // A replaced colony no longer lives here: forget it.
  for (const old of await listColonies()) if (old.project_dir === projectDir) await unregisterColony(old.colony_id);
  const entry: ColonyEntry = { colony_id: colonyId, app_name: app, environment: env, project_dir: projectDir, created_at: new Date().toISOString() };
  await registerColony(entry, { makeCurrent: true });

  return {
    colonyId,
    appName: app,
    environment: env,
    projectDir,
    configPath: written,
    keysDir: keysDir(projectDir),
    localTokenPath: join(projectDir, ".coral", "local.token"),
    discovery,
    identityPublicKey: keys.identityPublicKey,
    wireguardPublicKey: keys.wireguardPublicKey,
  };
}

/** The lines `coral init` prints, like the design docs show. */
export function initSummary(result: InitResult): string[] {
  return [
    `✓ Colony initialized: ${result.colonyId}`,
    `  Config: ${result.configPath}`,
    `  Keys: ${result.keysDir} (private: back them up, never commit them)`,
    `  Discovery: ${result.discovery ?? "none (local only; add one with --discovery <url> or CORAL_DISCOVERY_URL)"}`,
    `  Current colony: ${result.colonyId}`,
    "",
    "Next: start it with",
    "  coral colony start",
  ];
}

export function initCommand(): Command {
  return new Command("init")
    .description("create a colony for this project: .coral/config.yaml, keys and a local CLI token")
    .option("--app <name>", "application name: lowercase letters, digits and hyphens (default: the folder name)")
    .option("--env <name>", `environment, e.g. dev, staging, prod (default: ${defaultEnv})`)
    .option("--discovery <url>", "discovery service the colony registers with, e.g. http://localhost:8080")
    .option("-y, --yes", "do not prompt; use the defaults for what is not given")
    .option("--dir <path>", "project folder (default: the current folder)")
    .option("--force", "replace an existing colony here (new id and keys)")
    .option("--json", "print JSON")
    .action(async (opts: InitOptions) => {
      const result = await runInit(opts, {
        input: process.stdin,
        output: process.stdout,
        interactive: Boolean(process.stdin.isTTY) && !opts.json,
      });
      if (opts.json)
        console.log(
          JSON.stringify({
            colony_id: result.colonyId,
            app_name: result.appName,
            environment: result.environment,
            project_dir: result.projectDir,
            config: result.configPath,
            keys: result.keysDir,
            discovery: result.discovery ?? null,
            identity_public_key: result.identityPublicKey,
            wireguard_public_key: result.wireguardPublicKey,
          }),
        );
      else console.log(initSummary(result).join("\n"));
    });
}
