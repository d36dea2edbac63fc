// coral token create | revoke | list
import { ListTokensResponseSchema, TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Command, Option } from "commander";
import { formatTokens } from "../format/index.ts";
import { printJson, useColor, withColony } from "./read.ts";
import { withRemoteOptions, type RemoteOptions } from "./remote.ts";

export function tokenCommand(): Command {
  const token = new Command("token").description("manage API tokens for remote CLI access");
  token.addCommand(
    withRemoteOptions(new Command("create").description("create a token (shown once)"))
      .requiredOption("--name <name>", "a name to recognise it by, e.g. laptop")
      .addOption(new Option("--scope <scope>", "what it may do").choices(["read", "admin"]).default("read"))
      .action(async (opts: RemoteOptions & { name: string; scope: "read" | "admin" }) => {
        await withColony(opts, async (client) => {
          const res = await client.createToken({ name: opts.name, scope: opts.scope === "admin" ? TokenScope.ADMIN : TokenScope.READ });
          if (opts.json) console.log(JSON.stringify({ name: res.name, scope: opts.scope, token: res.token }));
          else {
            console.log(`✓ Token created: ${res.name} (${opts.scope})`);
            console.log(`  ${res.token}`);
            console.log("  Shown once; the colony keeps only its hash. Use it with --token or CORAL_TOKEN.");
          }
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
