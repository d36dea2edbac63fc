// coral profile cpu --since: the always-on profiler's stored minutes, merged
// by the colony (read data: no admin token, no process touched), and with
// --compare the same-length window shifted back, as a differential view.
import { writeFile } from "node:fs/promises";
import { toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CpuProfileSchema, type CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { ProfileService, QueryCpuProfileResponseSchema } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { durationToString } from "@coral/common/duration";
import { InvalidArgumentError } from "commander";
import { foldedStacks } from "../profile/analyze.ts";
import { diffProfiles } from "../profile/diff.ts";
import { flameGraphSvg } from "../profile/flamegraph.ts";
import { formatProfileDiff, formatStoredProfile } from "../profile/format.ts";
import { toPprof } from "../profile/pprof.ts";
import { UsageError } from "./options.ts";
import { printJson, sinceOption, useColor } from "./read.ts";
import { explainError, resolveTarget, serviceClient, type RemoteOptions } from "./remote.ts";

/** The colony keeps at most 31 days of windows; its retention may be shorter (it then answers no minutes). */
export const maxStoredMs = 31 * 24 * 3600_000;

/** --since, --until, --compare: a duration back from now, up to 31 days. */
export function agoOption(value: string): number {
  const ms = sinceOption(value);
  if (ms > maxStoredMs) throw new InvalidArgumentError("must be at most 31d (the colony keeps stored profiles no longer)");
  return ms;
}

export interface StoredCpuOptions extends RemoteOptions {
  since: number;
  until?: number;
  compare?: number;
  top: number;
  folded?: boolean;
  output?: string;
}

interface Window {
  from: Date;
  until: Date;
}

/** The window (now − since … now − until) and, with --compare, the same length `compare` earlier. */
export function storedWindows(opts: Pick<StoredCpuOptions, "since" | "until" | "compare">, now = Date.now()): { window: Window; baseline?: Window } {
  const until = opts.until ?? 0;
  if (until >= opts.since) throw new UsageError(`--until ${durationToString(until)} must be less than --since ${durationToString(opts.since)} (both are how long ago)`);
  const window = { from: new Date(now - opts.since), until: new Date(now - until) };
  if (opts.compare === undefined) return { window };
  return { window, baseline: { from: new Date(window.from.getTime() - opts.compare), until: new Date(window.until.getTime() - opts.compare) } };
}

/** Stored stacks carry no pid: name the one process node after the service, in flame graphs and folded stacks. */
function nameProcess(p: CpuProfile | undefined, service: string): void {
  if (p && p.processNames[0] === undefined) p.processNames[0] = service;
}

const ago = (ms: number) => durationToString(ms);

export async function storedCpuProfile(service: string, opts: StoredCpuOptions, kind: "pprof" | "svg" | "folded" | undefined): Promise<void> {
  if (opts.compare !== undefined && opts.folded) throw new UsageError("--compare and --folded: pick one (--folded prints one profile's stacks)");
  const { window, baseline } = storedWindows(opts);
  const target = await resolveTarget(opts);
  let res;
  try {
    res = await serviceClient(ProfileService, target).queryCpuProfile(
      {
        serviceName: service,
        start: timestampFromDate(window.from),
        end: timestampFromDate(window.until),
        ...(baseline ? { baselineStart: timestampFromDate(baseline.from), baselineEnd: timestampFromDate(baseline.until) } : {}),
      },
      { timeoutMs: 60_000 },
    );
  } catch (err) {
    throw explainError(err, target);
  }
  const span = `the last ${ago(opts.since)}${opts.until ? ` up to ${ago(opts.until)} ago` : ""}`;
  if (res.minutes === 0) throw new Error(`no stored profile for ${service} in ${span}: is the always-on profiler running? (coral connect --profile-hz)`);
  if (baseline && res.baselineMinutes === 0) throw new Error(`no stored profile for ${service} in the baseline (${span}, ${ago(opts.compare!)} earlier): nothing to compare with`);
  const profile = res.profile!;
  nameProcess(profile, service);
  nameProcess(res.baseline, service);
  const title = `CPU: ${service}, always-on, ${span} (${res.minutes} min at ${profile.hz} Hz)`;

  if (kind && opts.output) {
    const body =
      kind === "pprof"
        ? toPprof(profile)
        : kind === "folded"
          ? foldedStacks(profile)
          : flameGraphSvg(profile, res.baseline ? { title: `${title} vs ${ago(opts.compare!)} earlier`, baseline: res.baseline } : { title });
    await writeFile(opts.output, body, { mode: 0o644 });
  }
  if (baseline && res.baseline) {
    const all = diffProfiles(res.baseline, profile);
    const rows = diffProfiles(res.baseline, profile, opts.top);
    if (opts.json) {
      const json = {
        serviceName: service,
        window: { start: window.from.toISOString(), end: window.until.toISOString() },
        baselineWindow: { start: baseline.from.toISOString(), end: baseline.until.toISOString() },
        minutes: res.minutes,
        baselineMinutes: res.baselineMinutes,
        diff: rows,
        profile: toJson(CpuProfileSchema, profile, { alwaysEmitImplicit: true }),
        baseline: toJson(CpuProfileSchema, res.baseline, { alwaysEmitImplicit: true }),
      };
      console.log(JSON.stringify(json, null, 2));
      return;
    }
    console.log(formatProfileDiff(res, { window, baseline }, rows, { top: opts.top, color: useColor(), width: process.stdout.columns, more: Math.max(0, all.filter((r) => r.delta !== 0).length - rows.filter((r) => r.delta !== 0).length) }));
  } else {
    if (opts.json) return printJson(QueryCpuProfileResponseSchema, res);
    if (opts.folded) return void process.stdout.write(foldedStacks(profile));
    console.log(formatStoredProfile(res, window, { top: opts.top, color: useColor(), width: process.stdout.columns }));
  }
  if (kind && opts.output) {
    const how = { pprof: "pprof: go tool pprof -http=: " + opts.output, svg: res.baseline ? "differential flame graph: red grew, blue shrank" : "flame graph: open it in a browser", folded: "folded stacks" }[kind];
    console.log(`\n📄 Saved ${opts.output} (${how})`);
  }
}
