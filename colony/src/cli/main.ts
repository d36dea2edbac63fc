// The coral CLI. Each command group lives in its own module.
import { Command, CommanderError } from "commander";
import { coralVersion } from "../version.ts";
import { askCommand } from "./ask.ts";
import { colonyCommand } from "./colony-commands.ts";
import { connectCommand } from "./connect.ts";
import { debugCommand } from "./debug.ts";
import { initCommand } from "./init.ts";
import { insightsCommand } from "./insights.ts";
import { mcpCommand } from "./mcp.ts";
import { eventsCommand, historyCommand, metricsCommand, statusCommand, topologyCommand } from "./read-commands.ts";
import { tokenCommand } from "./token-commands.ts";
import { UsageError } from "./options.ts";
import { upCommand } from "./up.ts";

export function buildCli(): Command {
  const program = new Command("coral")
    .description("Coral: observe and debug a running application from one place")
    .version(coralVersion, "-v, --version")
    .showHelpAfterError()
    .exitOverride();
  program
    .command("version")
    .description("show the version")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      console.log(opts.json ? JSON.stringify({ version: coralVersion, node: process.version }) : `coral ${coralVersion} (node ${process.version})`);
    });
  for (const command of [
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
    debugCommand(),
  ])
    program.addCommand(command);
  // Subcommands inherit the exit override, so usage errors return codes too.
  const inherit = (command: Command) => {
    command.exitOverride().showHelpAfterError();
    command.commands.forEach(inherit);
  };
  program.commands.forEach(inherit);
  return program;
}

/** Runs the CLI and returns the exit code scripts can trust. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildCli().parseAsync(argv);
    // A command may set a specific code (e.g. colony status: 3 = not running).
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    // Usage errors (bad flags or arguments) exit 2, failures 1, --help 0.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n(see coral --help)`);
      return 2;
    }
    console.error(`Error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
