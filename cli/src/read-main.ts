// The entry the `coral` bin runs for --version and the read commands (status,
// topology, events, metrics, history): the same program main.ts builds for
// them (one command, same options, help and exit codes), but `npm run build`
// bundles this file with esbuild into dist/bundle/read.js (see
// scripts/build.mjs), so these commands load a few files instead of ~170
// modules of commander, protobuf and Connect, and never the colony runtime.
// Every other command runs dist/main.js.
import type { Command } from "commander";
import { coralVersion } from "@coral/common/version";

/** The command `name`, if it is one this entry serves (bin/coral.js routes the same names here). */
async function readCommand(name: string): Promise<Command | undefined> {
  const read = await import("./commands/read.ts");
  const commands: Record<string, () => Command> = {
    status: read.statusCommand,
    topology: read.topologyCommand,
    events: read.eventsCommand,
    metrics: read.metricsCommand,
    history: read.historyCommand,
  };
  return Object.hasOwn(commands, name) ? commands[name]!() : undefined;
}

export async function main(argv: string[]): Promise<number> {
  const name = argv[2];
  if (argv.length === 3 && (name === "-v" || name === "--version")) {
    // What commander's .version() prints, without loading commander.
    console.log(coralVersion);
    return 0;
  }
  const [{ coralProgram, runProgram }, command] = await Promise.all([import("./run.ts"), name === undefined ? undefined : readCommand(name)]);
  return runProgram(coralProgram(command ? [command] : []), argv);
}
