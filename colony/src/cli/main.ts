// The coral CLI. Each command group lives in its own module, loaded only when
// its command runs: every module pulls in its own libraries (DuckDB, the
// Anthropic and MCP SDKs, the agent, …), and `coral status` should not wait
// for all of them. `coral --help` (or an unknown command) loads them all.
import { Command } from "commander";
import { coralVersion } from "../version.ts";
import { coralProgram, runProgram } from "./run.ts";

type Loader = () => Promise<Command>;

function versionCommand(): Command {
  return new Command("version")
    .description("show the version")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      console.log(opts.json ? JSON.stringify({ version: coralVersion, node: process.version }) : `coral ${coralVersion} (node ${process.version})`);
    });
}

/** Every top-level command, in the order `coral --help` lists them. */
const commands: Record<string, Loader> = {
  version: async () => versionCommand(),
  up: async () => (await import("./up.ts")).upCommand(),
  init: async () => (await import("./init.ts")).initCommand(),
  colony: async () => (await import("./colony-commands.ts")).colonyCommand(),
  connect: async () => (await import("./connect.ts")).connectCommand(),
  status: async () => (await import("./read-commands.ts")).statusCommand(),
  topology: async () => (await import("./read-commands.ts")).topologyCommand(),
  events: async () => (await import("./read-commands.ts")).eventsCommand(),
  metrics: async () => (await import("./read-commands.ts")).metricsCommand(),
  history: async () => (await import("./read-commands.ts")).historyCommand(),
  token: async () => (await import("./token-commands.ts")).tokenCommand(),
  insights: async () => (await import("./insights.ts")).insightsCommand(),
  mcp: async () => (await import("./mcp.ts")).mcpCommand(),
  ask: async () => (await import("./ask.ts")).askCommand(),
  mesh: async () => (await import("./mesh-commands.ts")).meshCommand(),
  proxy: async () => (await import("./mesh-commands.ts")).proxyCommand(),
  flags: async () => (await import("./flags.ts")).flagsCommand(),
  rollback: async () => (await import("./rollback.ts")).rollbackCommand(),
  debug: async () => (await import("./debug.ts")).debugCommand(),
};

/** The CLI for `argv`: only the command it names, or every command when it names none. */
export async function buildCli(argv: readonly string[] = []): Promise<Command> {
  const name = argv[2];
  const loaders =
    name === "-v" || name === "--version" ? [] : name !== undefined && Object.hasOwn(commands, name) ? [commands[name]!] : Object.values(commands);
  return coralProgram(await Promise.all(loaders.map((load) => load())));
}

/** Runs the CLI and returns the exit code scripts can trust. */
export async function main(argv: string[]): Promise<number> {
  return runProgram(await buildCli(argv), argv);
}
