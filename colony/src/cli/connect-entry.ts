// `coral connect` without the rest of the CLI: an agent runs for weeks beside
// the app, so it loads only its own command (no colony runtime, no miniflare),
// which keeps its resident memory about 100 MB lower (bench/agent-footprint).
import { connectCommand } from "./connect.ts";
import { coralProgram, runProgram } from "./run.ts";

export function main(argv: string[]): Promise<number> {
  return runProgram(coralProgram([connectCommand()]), argv);
}
