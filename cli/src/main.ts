// The coral CLI. Each command group lives in its own module, loaded only when
// its command runs: every module pulls in its own libraries (DuckDB, the
// Anthropic and MCP SDKs, the agent, …), and `coral status` should not wait
// for all of them. `coral --help` (or an unknown command) loads them all.
import { Command } from "commander";
import { coralVersion } from "@coral/common/version";
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
  up: async () => (await import("./commands/up.ts")).upCommand(),
  init: async () => (await import("./commands/init.ts")).initCommand(),
  colony: async () => (await import("./commands/colony.ts")).colonyCommand(),
  connect: async () => (await import("./commands/connect.ts")).connectCommand(),
  status: async () => (await import("./commands/read.ts")).statusCommand(),
  topology: async () => (await import("./commands/read.ts")).topologyCommand(),
  events: async () => (await import("./commands/read.ts")).eventsCommand(),
  metrics: async () => (await import("./commands/read.ts")).metricsCommand(),
  requests: async () => (await import("./commands/requests.ts")).requestsCommand(),
  traces: async () => (await import("./commands/traces.ts")).tracesCommand(),
  logs: async () => (await import("./commands/logs.ts")).logsCommand(),
  traffic: async () => (await import("./commands/traffic.ts")).trafficCommand(),
  history: async () => (await import("./commands/read.ts")).historyCommand(),
  query: async () => (await import("./commands/query.ts")).queryCommand(),
  exec: async () => (await import("./commands/exec.ts")).execCommand(),
  shell: async () => (await import("./commands/shell.ts")).shellCommand(),
  audit: async () => (await import("./commands/audit.ts")).auditCommand(),
  token: async () => (await import("./commands/token.ts")).tokenCommand(),
  insights: async () => (await import("./commands/insights.ts")).insightsCommand(),
  mcp: async () => (await import("./commands/mcp.ts")).mcpCommand(),
  ask: async () => (await import("./commands/ask.ts")).askCommand(),
  mesh: async () => (await import("./commands/mesh.ts")).meshCommand(),
  proxy: async () => (await import("./commands/mesh.ts")).proxyCommand(),
  flags: async () => (await import("./commands/flags.ts")).flagsCommand(),
  rollback: async () => (await import("./commands/rollback.ts")).rollbackCommand(),
  debug: async () => (await import("./commands/debug.ts")).debugCommand(),
  profile: async () => (await import("./commands/profile.ts")).profileCommand(),
  doctor: async () => (await import("./commands/doctor.ts")).doctorCommand(),
  dashboard: async () => (await import("./commands/dashboard.ts")).dashboardCommand(),
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
