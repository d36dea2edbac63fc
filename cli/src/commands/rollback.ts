// coral rollback <service> [--to VERSION] [--strategy auto|sdk|systemd|kubernetes] [--dry-run] [--no-wait]
// coral rollback status <id> [--json]
// coral rollback history|list [service] [--limit N] [--json]
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  GetRollbackResponseSchema,
  ListRollbacksResponseSchema,
  RollbackSchema,
  StartRollbackResponseSchema,
  type Rollback,
} from "@coral/proto/gen/coral/control/v1/control_pb";
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { Command, InvalidArgumentError, Option } from "commander";
import { colors, columns, type Colors } from "../format/text.ts";
import { withControl } from "./control-client.ts";
import { printJson, useColor } from "./read.ts";
import { withRemoteOptions, type RemoteOptions } from "./remote.ts";

const strategies: Record<string, RollbackStrategy> = {
  auto: RollbackStrategy.AUTO,
  sdk: RollbackStrategy.SDK,
  systemd: RollbackStrategy.SYSTEMD,
  kubernetes: RollbackStrategy.KUBERNETES,
};
const terminal = new Set(["completed", "failed", "rolled_back"]);

function versionOption(value: string): string {
  if (!/^[^\s/]{1,128}$/.test(value)) throw new InvalidArgumentError("must be a version like 1.4.0 (no spaces or slashes)");
  return value;
}

function limitOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError("must be 1 to 1000");
  return n;
}

function stateText(c: Colors, state: string): string {
  if (state === "completed") return c.green("✓ completed");
  if (state === "failed") return c.red("✗ failed");
  if (state === "rolled_back") return c.yellow("↺ rolled back");
  return c.yellow(state);
}

function stepLine(c: Colors, s: Rollback["steps"][number]): string {
  const mark = s.outcome === "done" ? c.green("✓") : s.outcome === "failed" ? c.red("✗") : c.yellow("…");
  return `  ${mark} ${s.description}`;
}

function describe(r: Rollback, c: Colors): string[] {
  const lines = [
    `Rollback ${r.rollbackId}: ${r.service} ${r.fromVersion || "?"} → ${r.targetVersion || "previous"} (${r.strategy}) ${stateText(c, r.state)}`,
    `  Started ${r.startedAt ? timestampDate(r.startedAt).toISOString() : "-"} by ${r.initiatedBy || "-"}${r.completedAt ? `, ended ${timestampDate(r.completedAt).toISOString()}` : ""}`,
    ...r.steps.map((s) => stepLine(c, s)),
  ];
  if (r.error) lines.push(`  Reason: ${r.error}`);
  return lines;
}

type StartOptions = RemoteOptions & { to?: string; strategy: string; dryRun?: boolean; wait: boolean };

export function rollbackCommand(): Command {
  const rollback = withRemoteOptions(new Command("rollback").description("roll a component back to an earlier version, tracked by the colony to the end"))
    .argument("[service]", "the component to roll back, e.g. api")
    .option("--to <version>", "version to go back to (default: the one it ran before)", versionOption)
    .addOption(new Option("--strategy <strategy>", "how: the app's SDK handler, systemctl, kubectl, or auto").choices(Object.keys(strategies)).default("auto"))
    .option("--dry-run", "show the plan and change nothing")
    .option("--no-wait", "start it and return (follow with coral rollback status <id>)")
    .action(async (service: string | undefined, opts: StartOptions, cmd: Command) => {
      if (!service) {
        cmd.help({ error: true });
        return;
      }
      const c = colors(useColor());
      await withControl(opts, async (client) => {
        const res = await client.startRollback({ service, targetVersion: opts.to ?? "", strategy: strategies[opts.strategy], dryRun: Boolean(opts.dryRun) });
        const r = res.rollback!;
        if (res.dryRun) {
          if (opts.json) return printJson(StartRollbackResponseSchema, res);
          console.log(`Dry run: roll ${r.service} back from ${r.fromVersion || "?"} to ${r.targetVersion || "the previous revision"} with the ${r.strategy} strategy`);
          if (r.strategy === "sdk") console.log("  1. the app's rollback handler runs (coral.init onRollback)");
          if (r.recordRevision) console.log(`  first: ${r.recordRevision} (records the live revision for an undo)`);
          r.plan.forEach((p, i) => console.log(`  ${i + 1}. ${p}`));
          if (r.undoPlan.length > 0) {
            console.log(`  if a step fails, undo it:`);
            r.undoPlan.forEach((p, i) => console.log(`    ${i + 1}. ${p}`));
          }
          console.log(`  then: wait until ${r.service} reports ${r.targetVersion ? `version ${r.targetVersion} and ` : ""}healthy`);
          console.log("Nothing was changed.");
          return;
        }
        if (!opts.wait) {
          if (opts.json) printJson(RollbackSchema, r);
          else console.log(`Started rollback ${r.rollbackId} (follow it with: coral rollback status ${r.rollbackId})`);
          return;
        }
        if (!opts.json) console.log(`Rolling back ${r.service} ${r.fromVersion || "?"} → ${r.targetVersion || "previous"} (${r.strategy}), rollback ${r.rollbackId}`);
        // Each step as it starts, and again with its outcome.
        const shown = new Set<string>();
        let last = r;
        for await (const update of client.watchRollback({ rollbackId: r.rollbackId })) {
          last = update.rollback!;
          if (opts.json) continue;
          last.steps.forEach((s, i) => {
            const key = `${i}:${s.outcome}`;
            if (shown.has(key)) return;
            shown.add(key);
            console.log(stepLine(c, s));
          });
        }
        if (opts.json) printJson(RollbackSchema, last);
        else {
          console.log(`${stateText(c, last.state)}${last.error ? `: ${last.error}` : ""}`);
        }
        if (last.state !== "completed") process.exitCode = 1;
      });
    });

  rollback.addCommand(
    withRemoteOptions(new Command("status").description("show one rollback and its steps"))
      .argument("<id>", "rollback id, e.g. rb-1a2b3c4d5e6f")
      .action(async (id: string, _o: unknown, cmd: Command) => {
        const opts = cmd.optsWithGlobals<RemoteOptions>();
        await withControl(opts, async (client) => {
          const res = await client.getRollback({ rollbackId: id });
          if (opts.json) printJson(GetRollbackResponseSchema, res);
          else console.log(describe(res.rollback!, colors(useColor())).join("\n"));
        });
      }),
  );

  rollback.addCommand(
    withRemoteOptions(new Command("history").alias("list").description("past and running rollbacks, newest first"))
      .argument("[service]", "only this component's")
      .option("--limit <n>", "at most this many", limitOption, 20)
      .action(async (service: string | undefined, _o: unknown, cmd: Command) => {
        const opts = cmd.optsWithGlobals<RemoteOptions & { limit: number }>();
        await withControl(opts, async (client) => {
          const res = await client.listRollbacks({ service: service ?? "", limit: opts.limit });
          if (opts.json) return printJson(ListRollbacksResponseSchema, res);
          if (res.rollbacks.length === 0) return console.log(`No rollbacks${service ? ` of ${service}` : ""} yet.`);
          const c = colors(useColor());
          const rows = res.rollbacks.map((r) => [
            r.rollbackId,
            r.service,
            `${r.fromVersion || "?"} → ${r.targetVersion || "previous"}`,
            r.strategy,
            terminal.has(r.state) ? stateText(c, r.state) : c.yellow(r.state),
            r.startedAt ? timestampDate(r.startedAt).toISOString().replace("T", " ").slice(0, 19) : "-",
            r.initiatedBy,
            r.error.slice(0, 60),
          ]);
          const [head, ...lines] = columns(["ID", "SERVICE", "VERSIONS", "STRATEGY", "STATE", "STARTED (UTC)", "BY", "ERROR"], rows);
          console.log([c.bold(head!), ...lines].join("\n"));
        });
      }),
  );
  return rollback;
}
