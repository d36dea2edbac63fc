// coral profile heap: what a component's memory is held by, from its agent
// through the colony (Go: the service's own net/http/pprof heap profile);
// printed as the largest allocation sites, or written as pprof.
import { writeFile } from "node:fs/promises";
import { Code } from "@connectrpc/connect";
import { ProfileHeapResponseSchema, ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { Command, InvalidArgumentError, Option } from "commander";
import { formatHeapProfile, type HeapSort } from "../profile/heap.ts";
import { toHeapPprof } from "../profile/pprof.ts";
import { agentWordCodes, cancellableProfile } from "./profile-call.ts";
import { durationRangeOption, intOption, UsageError } from "./options.ts";
import { printJson, useColor } from "./read.ts";
import { resolveTarget, serviceClient, withRemoteOptions, type RemoteOptions } from "./remote.ts";

interface HeapOptions extends RemoteOptions {
  duration: number;
  pprofPort?: number;
  top: number;
  sort: HeapSort;
  output?: string;
}

const durationOption = durationRangeOption(300_000, "must be from 1s to 5m", "10s, 2m");

function sortOption(value: string): HeapSort {
  if (value !== "inuse" && value !== "alloc") throw new InvalidArgumentError("must be inuse (held now) or alloc (allocated in all)");
  return value;
}

/** Heap profiles are written as pprof only: a bad name fails before the profile, not after. */
function checkOutput(file: string): void {
  const lower = file.toLowerCase();
  if (!(lower.endsWith(".pb.gz") || lower.endsWith(".pprof") || lower.endsWith(".pb")))
    throw new UsageError(`-o ${file}: heap profiles are written as pprof; name the file .pb.gz (or .pprof)`);
}

async function profileHeap(service: string, opts: HeapOptions): Promise<void> {
  if (opts.output) checkOutput(opts.output);
  const target = await resolveTarget(opts);
  const client = serviceClient(ProfileService, target);
  const progress = process.stderr.isTTY && !opts.json;
  if (progress) process.stderr.write(`Taking a heap profile of ${service} (Ctrl-C to cancel)…`);
  const res = await cancellableProfile(
    (signal) => client.profileHeap({ serviceName: service, durationMs: opts.duration, pprofPort: opts.pprofPort ?? 0 }, { signal, timeoutMs: opts.duration + 120_000 }),
    {
      target,
      cancelled: "cancelled: the heap profile was stopped on the agent",
      // The agent's words say what to do (start net/http/pprof, pass --pprof-port…), also when pprof did not answer.
      agentWords: [...agentWordCodes, Code.Unavailable],
      done: () => {
        if (progress) process.stderr.write("\r\x1b[K");
      },
    },
  );
  if (opts.output) await writeFile(opts.output, toHeapPprof(res.profile!), { mode: 0o644 });
  if (opts.json) return printJson(ProfileHeapResponseSchema, res);
  console.log(formatHeapProfile(res, { top: opts.top, sort: opts.sort, color: useColor(), width: process.stdout.columns }));
  if (opts.output) console.log(`\n📄 Saved ${opts.output} (pprof: go tool pprof -http=: ${opts.output})`);
}

export function profileHeapCommand(): Command {
  return withRemoteOptions(new Command("heap").description("what a component's memory is held by: its largest allocation sites (Go services serving net/http/pprof; needs an admin token)"))
    .argument("<service>", "the component, as coral status names it")
    .option("--pprof-port <n>", "the loopback port where the service serves net/http/pprof, when not its own port", intOption(1, 65_535))
    .addOption(new Option("--duration <time>", "how long to sample where the runtime samples over time (Node), at most 5m; Go's heap profile is a snapshot").argParser(durationOption).default(10_000, "10s"))
    .option("--top <n>", "show this many allocation sites", intOption(1, 10_000), 20)
    .addOption(new Option("--sort <what>", "order by bytes in use now (inuse) or allocated in all (alloc)").argParser(sortOption).default("inuse"))
    .option("-o, --output <file>", "also write the profile as pprof (.pb.gz)")
    .addHelpText(
      "after",
      `
Examples:
  coral profile heap api                          # the largest live allocation sites
  coral profile heap api --pprof-port 6060        # net/http/pprof on its own port
  coral profile heap api --sort alloc --top 10
  coral profile heap api -o heap.pb.gz && go tool pprof -top heap.pb.gz`,
    )
    .action((service: string, opts: HeapOptions) => profileHeap(service, opts));
}
