// Runs a commander program and turns its outcome into an exit code scripts can
// trust: 0 ok (or --help), 1 failure, 2 usage error, or the code a command set.
import { Command, CommanderError } from "commander";
import { coralVersion } from "@coral/common/version";
import { UsageError } from "./commands/options.ts";

/** The root `coral` program with the given commands, usage errors as exit codes. */
export function coralProgram(commands: readonly Command[]): Command {
  const program = new Command("coral")
    .description("Coral: observe and debug a running application from one place")
    .version(coralVersion, "-v, --version")
    .showHelpAfterError()
    .exitOverride();
  for (const command of commands) program.addCommand(command);
  // Subcommands inherit the exit override, so usage errors return codes too.
  const inherit = (command: Command) => {
    command.exitOverride().showHelpAfterError();
    command.commands.forEach(inherit);
  };
  program.commands.forEach(inherit);
  return program;
}

export async function runProgram(program: Command, argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    // A command may set a specific code (e.g. colony status: 3 = not running).
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n(see coral --help)`);
      return 2;
    }
    console.error(`Error: ${err instanceof Error ? err.message : String(err)}`);
    // An error may carry its own code (e.g. 2: an agent of that name already runs here).
    const code = (err as { exitCode?: unknown } | null)?.exitCode;
    return typeof code === "number" && Number.isInteger(code) && code > 0 && code < 126 ? code : 1;
  }
}
