// Where a join token comes from. On the command line it shows in `ps` to
// every local user and lands in shell history, so the quiet ways come first:
// --join-file <path>, --join - (stdin), CORAL_JOIN_TOKEN(_FILE). A literal
// --join <token> still works, with a warning.
import { readFileSync, statSync } from "node:fs";
import { Option, type Command } from "commander";
import { UsageError } from "./options.ts";

export interface JoinOptions {
  join?: string;
  joinFile?: string;
}

/** Adds --join and --join-file to a command. */
export function withJoinOptions(command: Command): Command {
  return command
    .addOption(new Option("--join <token>", "join token from coral colony invite; '-' reads it from stdin (a token on the command line is visible in ps)"))
    .addOption(new Option("--join-file <path>", "file holding the join token (keep it 0600)").env("CORAL_JOIN_TOKEN_FILE"));
}

export interface JoinTokenSource {
  token: string;
  /** Where it came from, for messages. */
  source: string;
}

/** The join token, if any; warnings (not errors) for the ways that leak it. */
export function readJoinToken(
  options: JoinOptions,
  io: { env?: NodeJS.ProcessEnv; warn?: (message: string) => void; readStdin?: () => string } = {},
): JoinTokenSource | undefined {
  const env = io.env ?? process.env;
  const warn = io.warn ?? ((m: string) => console.error(`! ${m}`));
  if (options.join !== undefined && options.joinFile) throw new UsageError("pass either --join or --join-file, not both");
  if (options.join === "-") {
    const text = (io.readStdin ?? (() => readFileSync(0, "utf8")))().trim();
    if (!text) throw new UsageError("--join -: stdin was empty; pipe the join token in, e.g. coral connect api --port 3000 --join - < token.txt");
    return { token: text, source: "stdin" };
  }
  if (options.join !== undefined) {
    warn("--join <token> shows the token to every local user (ps) and keeps it in your shell history; prefer --join-file <path>, --join - (stdin) or CORAL_JOIN_TOKEN");
    return { token: options.join, source: "--join" };
  }
  if (options.joinFile) {
    let text: string;
    try {
      text = readFileSync(options.joinFile, "utf8").trim();
    } catch (err) {
      throw new UsageError(`--join-file: cannot read ${options.joinFile} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    if ((statSync(options.joinFile).mode & 0o077) !== 0) warn(`${options.joinFile} can be read by other users; chmod 600 it (it holds a join token)`);
    return { token: text, source: options.joinFile };
  }
  const fromEnv = env.CORAL_JOIN_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: "CORAL_JOIN_TOKEN" };
  return undefined;
}
