// The coral CLI. Each command group lives in its own module.
import { Command, CommanderError } from "commander";
import { coralVersion } from "../version.ts";
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
  program.addCommand(upCommand());
  return program;
}

/** Runs the CLI and returns the exit code scripts can trust. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildCli().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    console.error(`Error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
