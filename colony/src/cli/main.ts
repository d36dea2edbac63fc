// The coral CLI. Each command group lives in its own module.
import { Command } from "commander";
import { coralVersion } from "../version.ts";
import { askCommand } from "./ask.ts";
import { colonyCommand } from "./colony-commands.ts";
import { connectCommand } from "./connect.ts";
import { debugCommand } from "./debug.ts";
import { initCommand } from "./init.ts";
import { insightsCommand } from "./insights.ts";
import { mcpCommand } from "./mcp.ts";
import { meshCommand, proxyCommand } from "./mesh-commands.ts";
import { eventsCommand, historyCommand, metricsCommand, statusCommand, topologyCommand } from "./read-commands.ts";
import { tokenCommand } from "./token-commands.ts";
import { flagsCommand } from "./flags.ts";
import { rollbackCommand } from "./rollback.ts";
import { coralProgram, runProgram } from "./run.ts";
import { upCommand } from "./up.ts";

export function buildCli(): Command {
  const version = new Command("version")
    .description("show the version")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      console.log(opts.json ? JSON.stringify({ version: coralVersion, node: process.version }) : `coral ${coralVersion} (node ${process.version})`);
    });
  return coralProgram([
    version,
    upCommand(),
    initCommand(),
    colonyCommand(),
    connectCommand(),
    statusCommand(),
    topologyCommand(),
    eventsCommand(),
    metricsCommand(),
    historyCommand(),
    tokenCommand(),
    insightsCommand(),
    mcpCommand(),
    askCommand(),
    meshCommand(),
    proxyCommand(),
    flagsCommand(),
    rollbackCommand(),
    debugCommand(),
  ]);
}

/** Runs the CLI and returns the exit code scripts can trust. */
export function main(argv: string[]): Promise<number> {
  return runProgram(buildCli(), argv);
}
