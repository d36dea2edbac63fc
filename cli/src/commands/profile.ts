// coral profile cpu: a CPU profile of a component's processes, sampled by its
// agent (eBPF, user and kernel stacks) through the colony; printed as the
// hottest functions, or written as pprof, a flame graph or folded stacks.
// coral profile heap lives in profile-heap.ts.
import { writeFile } from "node:fs/promises";
import { extname } from "node:path";
import { ProfileCpuResponseSchema, ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { Command, Option } from "commander";
import { foldedStacks } from "../profile/analyze.ts";
import { flameGraphSvg } from "../profile/flamegraph.ts";
import { formatProfile } from "../profile/format.ts";
import { toPprof } from "../profile/pprof.ts";
import { agentWordCodes, cancellableProfile } from "./profile-call.ts";
import { durationRangeOption, intOption, UsageError } from "./options.ts";
import { profileHeapCommand } from "./profile-heap.ts";
import { agoOption, storedCpuProfile } from "./profile-stored.ts";
import { printJson, useColor } from "./read.ts";
import { resolveTarget, serviceClient, withRemoteOptions, type RemoteOptions } from "./remote.ts";

interface CpuOptions extends RemoteOptions {
  since?: number;
  until?: number;
  compare?: number;
  duration: number;
  hz: number;
  top: number;
  folded?: boolean;
  output?: string;
}

/** What -o writes, from the file's name. */
export function outputKind(file: string): "pprof" | "svg" | "folded" {
  const lower = file.toLowerCase();
  if (lower.endsWith(".pb.gz") || lower.endsWith(".pprof") || lower.endsWith(".pb")) return "pprof";
  if (extname(lower) === ".svg") return "svg";
  if (lower.endsWith(".folded") || extname(lower) === ".txt") return "folded";
  throw new UsageError(`-o ${file}: say what to write by the name's ending: .pb.gz (pprof), .svg (flame graph) or .folded (folded stacks)`);
}

const durationOption = durationRangeOption(300_000, "must be from 1s to 5m", "10s, 2m");

async function profileCpu(service: string, opts: CpuOptions, cmd: Command): Promise<void> {
  const kind = opts.output ? outputKind(opts.output) : undefined; // a bad name fails before the profile, not after
  if (opts.json && opts.folded) throw new UsageError("--json and --folded: pick one");
  if (opts.since === undefined) {
    for (const flag of ["until", "compare"] as const) if (opts[flag] !== undefined) throw new UsageError(`--${flag} needs --since (it reads the always-on profiler's stored stacks)`);
  } else {
    // Stored stacks were sampled already: how long and how often are not ours to pick.
    for (const flag of ["duration", "hz"] as const) if (cmd.getOptionValueSource(flag) === "cli") throw new UsageError(`--${flag} and --since: pick one (--since reads what the always-on profiler stored)`);
    return storedCpuProfile(service, { ...opts, since: opts.since }, kind);
  }
  const target = await resolveTarget(opts);
  const client = serviceClient(ProfileService, target);
  const seconds = Math.round(opts.duration / 1000);
  const progress = process.stderr.isTTY && !opts.json && !opts.folded;
  if (progress) process.stderr.write(`Profiling ${service} for ${seconds}s at ${opts.hz} Hz (Ctrl-C to cancel)…\n`);
  let tick: NodeJS.Timeout | undefined;
  const started = Date.now();
  if (progress)
    tick = setInterval(() => {
      const left = Math.max(0, seconds - Math.round((Date.now() - started) / 1000));
      process.stderr.write(`\r  ${left > 0 ? `${left}s left` : "symbolizing…"}   `);
    }, 1000);
  const res = await cancellableProfile((signal) => client.profileCpu({ serviceName: service, durationMs: opts.duration, hz: opts.hz }, { signal, timeoutMs: opts.duration + 120_000 }), {
    target,
    cancelled: "cancelled: the profile was stopped on the agent",
    agentWords: agentWordCodes,
    done: () => {
      clearInterval(tick);
      if (progress) process.stderr.write("\r\x1b[K");
    },
  });
  const profile = res.profile!;
  if (kind && opts.output) {
    const body = kind === "pprof" ? toPprof(profile) : kind === "svg" ? flameGraphSvg(profile, { title: `CPU: ${service} (${seconds}s at ${profile.hz} Hz)` }) : foldedStacks(profile);
    await writeFile(opts.output, body, { mode: 0o644 });
  }
  if (opts.json) return printJson(ProfileCpuResponseSchema, res);
  if (opts.folded) return void process.stdout.write(foldedStacks(profile));
  console.log(formatProfile(res, { top: opts.top, color: useColor(), width: process.stdout.columns }));
  if (kind && opts.output) {
    const how = { pprof: "pprof: go tool pprof -http=: " + opts.output, svg: "flame graph: open it in a browser", folded: "folded stacks: flamegraph.pl, Speedscope or inferno read them" }[kind];
    console.log(`\n📄 Saved ${opts.output} (${how})`);
  }
}

export function profileCommand(): Command {
  const profile = new Command("profile").description("CPU and heap profiles of a component's processes, without a restart or SSH");
  profile.addCommand(
    withRemoteOptions(new Command("cpu").description("sample where a component spends its CPU (user and kernel stacks; needs an admin token), or read the always-on profiler's stacks (--since)"))
      .argument("<service>", "the component, as coral status names it")
      .addOption(new Option("--duration <time>", "how long to sample, at most 5m").argParser(durationOption).default(30_000, "30s"))
      .option("--hz <n>", "samples per second per CPU, 1 to 1000", intOption(1, 1000), 99)
      .option("--since <duration>", "read the always-on profiler's stored stacks from this long ago (read token; at most 31d)", agoOption)
      .option("--until <duration>", "with --since: the window ends this long ago (default: now)", agoOption)
      .option("--compare <offset>", "with --since: compare with the same window this much earlier (e.g. 1d)", agoOption)
      .option("--top <n>", "show this many functions", intOption(1, 10_000), 20)
      .option("--folded", "print folded stacks (flamegraph.pl, Speedscope, inferno) instead of the table")
      .option("-o, --output <file>", "also write the profile: .pb.gz (pprof), .svg (flame graph) or .folded")
      .addHelpText(
        "after",
        `
Examples:
  coral profile cpu api                          # 30s at 99 Hz, the hottest functions
  coral profile cpu api --duration 10s -o api.svg
  coral profile cpu api -o api.pb.gz && go tool pprof -top api.pb.gz
  coral profile cpu api --folded > api.folded
  coral profile cpu api --since 1h               # the always-on profiler's last hour, no new profile
  coral profile cpu api --since 2h --until 1h -o api.svg
  coral profile cpu api --since 15m --compare 1d -o diff.svg   # what got hotter since yesterday`,
      )
      .action((service: string, opts: CpuOptions, cmd: Command) => profileCpu(service, opts, cmd)),
  );
  profile.addCommand(profileHeapCommand());
  return profile;
}
