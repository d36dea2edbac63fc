// The entry the `coral` bin runs for `coral connect`: the same program
// main.ts builds for it (one command, same options, help and exit codes), but
// `npm run build` bundles this file with esbuild, minified, into
// dist/bundle-connect/connect.js with a chunk per dynamic import (scripts/build.mjs).
// The agent runs for months beside the services it observes: V8 keeps every
// loaded module's source for lazy compilation, and ~600 unminified modules
// cost it ~13 MB of resident memory that one minified bundle does not
// (bench/BENCHMARKS.md, agent footprint). Every other command runs dist/main.js.
import { connectCommand } from "./commands/connect.ts";
import { coralProgram, runProgram } from "./run.ts";

export async function main(argv: string[]): Promise<number> {
  return runProgram(coralProgram([connectCommand()]), argv);
}
