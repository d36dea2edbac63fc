// coral token create | revoke | list
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ListTokensResponseSchema, TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { parseDuration } from "@coral/common/duration";
import { Command, InvalidArgumentError, Option } from "commander";
import { formatTokens } from "../format/index.ts";
import { printJson, useColor, withColony } from "./read.ts";
import { withRemoteOptions, type RemoteOptions } from "./remote.ts";

/** What --ttl asks for: a lifetime in seconds, or none. */
export type TokenTtl = { seconds: number } | { never: true };

const maxTtlDays = 3650;

/** Parses --ttl: a duration from 1m to 3650d (e.g. 90d, 12h), or "never". */
export function parseTtl(value: string): TokenTtl {
  if (value.trim().toLowerCase() === "never") return { never: true };
  const parsed = parseDuration(value);
  if ("error" in parsed) throw new InvalidArgumentError(`${parsed.error}; use e.g. 90d, 12h, or never`);
  if (parsed.ms < 60_000 || parsed.ms > maxTtlDays * 86_400_000)
    throw new InvalidArgumentError(`must be from 1m to ${maxTtlDays}d (or never), got ${value}`);
  return { seconds: Math.round(parsed.ms / 1000) };
}

interface CreateOptions extends RemoteOptions {
  name: string;
  scope: "read" | "admin" | "exec";
  ttl: TokenTtl;
}

export function tokenCommand(): Command {
  const token = new Command("token").description("manage API tokens for remote CLI access");
  token.addCommand(
    withRemoteOptions(new Command("create").description("create a token (shown once)"))
      .requiredOption("--name <name>", "a name to recognise it by, e.g. laptop")
      .addOption(new Option("--scope <scope>", "what it may do: read; admin (tokens, flags, rollbacks, debugging); exec (read, plus coral exec: commands beside services)").choices(["read", "admin", "exec"]).default("read"))
      .addOption(new Option("--ttl <duration>", "how long it works, e.g. 30d, 12h, or never").argParser(parseTtl).default({ seconds: 90 * 86_400 }, "90d"))
      .action(async (opts: CreateOptions) => {
        await withColony(opts, async (client) => {
          const res = await client.createToken({
            name: opts.name,
            scope: opts.scope === "admin" ? TokenScope.ADMIN : opts.scope === "exec" ? TokenScope.EXEC : TokenScope.READ,
            ...("never" in opts.ttl ? { neverExpires: true } : { ttlSeconds: BigInt(opts.ttl.seconds) }),
          });
          const expiresAt = res.expiresAt ? timestampDate(res.expiresAt) : null;
          if (opts.json) {
            console.log(JSON.stringify({ name: res.name, scope: opts.scope, token: res.token, expires_at: expiresAt?.toISOString() ?? null }));
            return;
          }
          const expiry = expiresAt ? `expires ${expiresAt.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")}` : "never expires";
          console.log(`✓ Token created: ${res.name} (${opts.scope}, ${expiry})`);
          console.log(`  ${res.token}`);
          console.log("  Shown once; the colony keeps only its hash. Use it with --token or CORAL_TOKEN.");
          if (!expiresAt) console.log("  It never expires: revoke it when it is no longer needed (coral token revoke <name>).");
        });
      }),
  );
  token.addCommand(
    withRemoteOptions(new Command("revoke").description("revoke a token"))
      .argument("<name>", "token name")
      .action(async (name: string, opts: RemoteOptions) => {
        await withColony(opts, async (client) => {
          await client.revokeToken({ name });
          if (opts.json) console.log(JSON.stringify({ name, revoked: true }));
          else console.log(`✓ Token revoked: ${name}`);
        });
      }),
  );
  token.addCommand(
    withRemoteOptions(new Command("list").description("list tokens")).action(async (opts: RemoteOptions) => {
      await withColony(opts, async (client) => {
        const res = await client.listTokens({});
        if (opts.json) printJson(ListTokensResponseSchema, res);
        else console.log(formatTokens(res, { color: useColor() }));
      });
    }),
  );
  return token;
}
