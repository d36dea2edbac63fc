// coral insights [--all] [--service <name>] [--json]
// coral insights dismiss <id>
import { DismissInsightResponseSchema, ListInsightsResponseSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Command, InvalidArgumentError } from "commander";
import { formatInsights } from "../format/insights.ts";
import { printJson, useColor, withColony } from "./read.ts";
import { withRemoteOptions, type RemoteOptions } from "./remote.ts";

function insightId(value: string): bigint {
  const match = /^(?:insight-)?(\d{1,15})$/.exec(value.trim());
  if (!match || BigInt(match[1]!) === 0n) throw new InvalidArgumentError("must be an insight id as coral insights shows it, e.g. 12");
  return BigInt(match[1]!);
}

function limitOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError("must be 1 to 1000");
  return n;
}

type ListOptions = RemoteOptions & { all?: boolean; service?: string; limit: number };

export function insightsCommand(): Command {
  const insights = withRemoteOptions(
    new Command("insights").description("what the colony noticed: metric shifts, restart loops, flapping health, changes after deploys"),
  )
    .option("--all", "also dismissed and expired insights")
    .option("--service <name>", "only insights affecting this component")
    .option("--limit <n>", "at most this many", limitOption, 50)
    .action(async (opts: ListOptions) => {
      await withColony(opts, async (client) => {
        const res = await client.listInsights({ status: opts.all ? "all" : "active", service: opts.service ?? "", limit: opts.limit });
        if (opts.json) printJson(ListInsightsResponseSchema, res);
        else console.log(formatInsights(res, { color: useColor(), all: opts.all }));
      });
    });

  insights.addCommand(
    withRemoteOptions(new Command("dismiss").description("dismiss an insight: it is not raised again while its condition lasts"))
      .argument("<id>", "insight id, from coral insights", insightId)
      .action(async (id: bigint, _opts: RemoteOptions, command: Command) => {
        // --colony-url/--token/--json may come before or after "dismiss".
        const opts = command.optsWithGlobals<RemoteOptions>();
        await withColony(opts, async (client) => {
          const res = await client.dismissInsight({ id });
          if (opts.json) printJson(DismissInsightResponseSchema, res);
          else {
            console.log(`✓ Dismissed insight ${id}: ${res.insight?.title ?? ""}`);
            console.log("  It will not be raised again while its condition lasts.");
          }
        });
      }),
  );
  return insights;
}
