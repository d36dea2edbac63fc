// coral colony invite | invitations: who may join. An invitation is
// single-use and expires (1 h by default); the colony keeps only a key
// derived from its secret, and the join token is shown once.
import { IdentityService, ListInvitationsResponseSchema, RevokeInvitationResponseSchema } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Command, InvalidArgumentError } from "commander";
import { chmod, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseDuration } from "@coral/colony";
import { formatInvitations } from "../format/index.ts";
import { printJson, useColor } from "./read.ts";
import { durationFlag } from "./options.ts";
import { explainError, resolveTarget, serviceClient, withRemoteOptions, type RemoteOptions } from "./remote.ts";

function ttlOption(value: string): number {
  const parsed = parseDuration(value);
  if ("error" in parsed) throw new InvalidArgumentError(`${parsed.error}; use e.g. 10m, 1h, 7d`);
  if (parsed.ms < 60_000 || parsed.ms > 30 * 86_400_000) throw new InvalidArgumentError("must be from 1m to 30d");
  return Math.round(parsed.ms / 1000);
}

function usesOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError("must be a whole number from 1 to 1000");
  return n;
}

type DirOptions = RemoteOptions & { dir?: string };

async function withIdentity<T>(opts: DirOptions, run: (client: ReturnType<typeof serviceClient<typeof IdentityService>>) => Promise<T>): Promise<T> {
  const target = await resolveTarget(opts, resolve(opts.dir ?? process.cwd()));
  try {
    return await run(serviceClient(IdentityService, target));
  } catch (err) {
    throw explainError(err, target);
  }
}

export function inviteCommand(): Command {
  return withRemoteOptions(new Command("invite").description("make a join token for agents: single-use and expiring, shown once"))
    .addOption(durationFlag("--ttl <duration>", "how long it can be used (1m to 30d)", ttlOption, 3600, 1000))
    .option("--uses <n>", "how many agents may join with it (1 to 1000)", usesOption, 1)
    .option("--note <text>", "what it is for, e.g. api on host-3", "")
    .option("-o, --output <file>", "write the token to this file (mode 0600) instead of printing it")
    .option("--dir <path>", "project folder of the local colony")
    .action(async (opts: DirOptions & { ttl: number; uses: number; note: string; output?: string }) => {
      await withIdentity(opts, async (client) => {
        const res = await client.createInvitation({ ttlSeconds: opts.ttl, maxUses: opts.uses, note: opts.note });
        const inv = res.invitation!;
        const expires = inv.expiresAt ? timestampDate(inv.expiresAt).toISOString() : "never";
        if (opts.output) {
          await writeFile(opts.output, res.joinToken + "\n", { mode: 0o600 });
          await chmod(opts.output, 0o600);
        }
        if (opts.json) {
          console.log(JSON.stringify({ invitation_id: inv.invitationId, expires_at: expires, max_uses: inv.maxUses, ...(opts.output ? { file: opts.output } : { token: res.joinToken }) }));
          return;
        }
        console.log(`✓ Invitation ${inv.invitationId}: ${inv.maxUses === 1 ? "one agent" : `${inv.maxUses} agents`}, until ${expires}`);
        if (opts.output) console.log(`  Join token written to ${opts.output} (0600)`);
        else console.log(`\n  ${res.joinToken}\n`);
        console.log("Connect an agent with (the token file keeps it out of ps and shell history):");
        console.log(`  coral connect <service> --port <port> --join-file ${opts.output ?? "<file with the token>"}`);
        console.log("  or set CORAL_JOIN_TOKEN in the agent's environment. Revoke it with: coral colony invitations revoke " + inv.invitationId);
      });
    });
}

export function invitationsCommand(): Command {
  const list = withRemoteOptions(new Command("invitations").description("list invitations (join tokens): state, uses, expiry"))
    .option("--dir <path>", "project folder of the local colony")
    .action(async (opts: DirOptions) => {
    await withIdentity(opts, async (client) => {
      const res = await client.listInvitations({});
      if (opts.json) printJson(ListInvitationsResponseSchema, res);
      else console.log(formatInvitations(res, { color: useColor() }));
    });
  });
  list.addCommand(
    withRemoteOptions(new Command("revoke").description("revoke an invitation: its join token stops working (agents that joined stay)"))
      .argument("<invitation-id>")
      .option("--dir <path>", "project folder of the local colony")
      .action(async (id: string, opts: DirOptions) => {
        await withIdentity(opts, async (client) => {
          const res = await client.revokeInvitation({ invitationId: id });
          if (opts.json) printJson(RevokeInvitationResponseSchema, res);
          else console.log(`✓ Invitation ${id} revoked`);
        });
      }),
  );
  return list;
}
