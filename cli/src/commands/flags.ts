// coral flags list [--service <name>] [--json]
// coral flags enable|disable <flag> --service <name>
// coral flags set <flag> --service <name> [--rollout N] [--users u1,u2] [--enabled true|false]
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ListFlagsResponseSchema, SetFlagResponseSchema, type SetFlagResponse } from "@coral/proto/gen/coral/control/v1/control_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SetFlagRequestSchema } from "@coral/proto/gen/coral/control/v1/control_pb";
import { Command, InvalidArgumentError } from "commander";
import { columns, colors } from "../format/text.ts";
import { withControl } from "./control-client.ts";
import { UsageError } from "./options.ts";
import { printJson, useColor } from "./read.ts";
import { withRemoteOptions, type RemoteOptions } from "./remote.ts";

type FlagOptions = RemoteOptions & { service?: string };

function rolloutOption(value: string): number {
  const n = Number(value.replace(/%$/, ""));
  if (!/^\d{1,3}%?$/.test(value) || n > 100) throw new InvalidArgumentError("must be a percentage from 0 to 100, e.g. 25");
  return n;
}

function usersOption(value: string): string[] {
  const users = value.split(",").map((u) => u.trim()).filter(Boolean);
  if (users.length > 1000 || users.some((u) => u.length > 128)) throw new InvalidArgumentError("at most 1000 user ids of up to 128 characters, comma separated");
  return users;
}

function boolOption(value: string): boolean {
  if (value === "true" || value === "on") return true;
  if (value === "false" || value === "off") return false;
  throw new InvalidArgumentError("must be true or false");
}

function describe(res: SetFlagResponse, service: string): string[] {
  const f = res.flag!;
  const state = f.enabled ? `enabled for ${f.rolloutPercentage}% of users` : "disabled";
  const users = f.userIds.length ? `, always on for ${f.userIds.join(", ")}` : "";
  const lines = [`✓ ${f.name} (${service}): ${state}${users}`];
  lines.push(`  Sent to ${res.agentsNotified} agent${res.agentsNotified === 1 ? "" : "s"}${res.agentsNotified === 0 ? " (agents get it when they connect)" : ""}`);
  for (const u of res.unreachable) lines.push(`  ! not reached now (will resync): ${u}`);
  return lines;
}

function changeCommand(name: string, description: string, fixed: { enabled?: boolean }, extra?: (c: Command) => Command): Command {
  let command = withRemoteOptions(new Command(name).description(description))
    .argument("<flag>", "flag name, e.g. new-checkout")
    .option("--service <name>", "the component whose flag it is (required)");
  if (extra) command = extra(command);
  return command.action(async (flag: string, _o: unknown, cmd: Command) => {
    const opts = cmd.optsWithGlobals<FlagOptions & { rollout?: number; users?: string[]; enabled?: boolean }>();
    if (!opts.service) throw new UsageError(`--service is required: coral flags ${name} ${flag} --service <component>`);
    const req: MessageInitShape<typeof SetFlagRequestSchema> = { service: opts.service, name: flag };
    if (fixed.enabled !== undefined) req.enabled = fixed.enabled;
    if (opts.rollout !== undefined) req.rolloutPercentage = opts.rollout;
    if (opts.enabled !== undefined) req.enabled = opts.enabled;
    if (opts.users !== undefined) {
      req.userIds = opts.users;
      req.setUserIds = true;
    }
    if (name === "set" && req.rolloutPercentage === undefined && req.enabled === undefined && !req.setUserIds)
      throw new UsageError("nothing to set: pass --rollout, --users or --enabled");
    await withControl(opts, async (client) => {
      const res = await client.setFlag(req);
      if (opts.json) printJson(SetFlagResponseSchema, res);
      else console.log(describe(res, opts.service!).join("\n"));
    });
  });
}

export function flagsCommand(): Command {
  const flags = new Command("flags").description("feature flags the colony keeps and pushes to apps using the Coral SDK");
  flags.addCommand(
    withRemoteOptions(new Command("list").description("list flags"))
      .option("--service <name>", "only this component's flags")
      .action(async (opts: FlagOptions) => {
        await withControl(opts, async (client) => {
          const res = await client.listFlags({ service: opts.service ?? "" });
          if (opts.json) return printJson(ListFlagsResponseSchema, res);
          if (res.flags.length === 0) return console.log("No flags yet. Create one with: coral flags enable <flag> --service <component>");
          const c = colors(useColor());
          const rows = res.flags.map((f) => [
            f.service,
            f.name,
            f.enabled ? c.green("on") : c.gray("off"),
            `${f.rolloutPercentage}%`,
            f.userIds.length ? f.userIds.slice(0, 3).join(",") + (f.userIds.length > 3 ? ` +${f.userIds.length - 3}` : "") : "-",
            f.updatedAt ? timestampDate(f.updatedAt).toISOString().replace("T", " ").slice(0, 19) : "-",
            f.updatedBy || "-",
          ]);
          const [head, ...lines] = columns(["SERVICE", "FLAG", "STATE", "ROLLOUT", "USERS", "UPDATED (UTC)", "BY"], rows);
          console.log([c.bold(head!), ...lines].join("\n"));
        });
      }),
  );
  flags.addCommand(changeCommand("enable", "turn a flag on (for everyone unless a rollout is set)", { enabled: true }, (c) => c.option("--rollout <percent>", "share of users, 0-100", rolloutOption)));
  flags.addCommand(changeCommand("disable", "turn a flag off (listed users keep it)", { enabled: false }));
  flags.addCommand(
    changeCommand("set", "change a flag's rollout, users or state", {}, (c) =>
      c
        .option("--rollout <percent>", "share of users it is on for, 0-100 (by hash of flag and user id)", rolloutOption)
        .option("--users <u1,u2>", "users it is always on for (replaces the list; \"\" clears it)", usersOption)
        .option("--enabled <true|false>", "turn it on or off", boolOption),
    ),
  );
  return flags;
}
