// Test helpers for CPU profiling: compile the targets in testdata/, read a
// process's CPU time, find a bpftrace left running for a target, and call
// the agent's API as its colony does (a signature per call).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { toBinary, type DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { colonyCallHeader, signColonyCall, type IdentityKey } from "@coral/proto";
import { onPath } from "../debug/testing.ts";

export { onPath };

const testdata = (name: string) => fileURLToPath(new URL(`./testdata/${name}`, import.meta.url));

/** Why the real bpftrace profiles cannot run here, or undefined. */
export function profileSkipReason(tools: string[] = ["gcc"]): string | undefined {
  if (process.getuid?.() !== 0) return "not root (eBPF profiling needs root or CAP_BPF+CAP_PERFMON)";
  if (!onPath("bpftrace")) return "bpftrace not installed (apt-get install -y --no-install-recommends bpftrace)";
  if (!onPath("unshare")) return "unshare (util-linux) not installed";
  for (const t of tools) if (!onPath(t)) return `${t} not installed`;
  return undefined;
}

/** gcc -O1 -fno-omit-frame-pointer of testdata/<name>.c (plus `flags`), in a fresh temporary folder. */
export function compileC(name: string, flags: string[] = []): string {
  const out = join(mkdtempSync(join(tmpdir(), "coral-profile-")), name);
  execFileSync("gcc", ["-O1", "-fno-omit-frame-pointer", ...flags, "-o", out, testdata(`${name}.c`)]);
  return out;
}

/** go build of testdata/burn-go, stripped of its symbol table and DWARF (-ldflags="-s -w") unless `stripped` is false. */
export function buildGoBurn(stripped = true): string {
  const out = join(mkdtempSync(join(tmpdir(), "coral-profile-go-")), "burn-go");
  execFileSync("go", ["build", ...(stripped ? ["-ldflags=-s -w"] : []), "-o", out, "."], {
    cwd: testdata("burn-go"),
    env: { ...process.env, GOFLAGS: "-mod=mod", GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "coral-go-cache"), GOPATH: process.env.GOPATH ?? join(tmpdir(), "coral-gopath") },
  });
  return out;
}

/** Spawns `bin`, kept in `children` for the test's cleanup. */
export function spawnTarget(bin: string, children: ChildProcess[], args: string[] = []): ChildProcess {
  const c = spawn(bin, args, { stdio: ["ignore", "pipe", "ignore"] });
  children.push(c);
  return c;
}

/** --disable-sigusr1 came with Node 22.14; older ones refuse the flag. */
export const hasDisableSigusr1 = (() => {
  try {
    execFileSync(process.execPath, ["--disable-sigusr1", "-e", "0"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** Whether `pid` still exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** User + system CPU seconds `pid` has used (its threads, not its children). */
export function cpuSeconds(pid: number, ticksPerSecond = 100): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** pids of the bpftrace (or its wrapper) running a profile program seeded with `targetPid`. */
export function profileTracersOf(targetPid: number): number[] {
  try {
    return execFileSync("pgrep", ["-f", `@pids\\[${targetPid}\\] = 1;`], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** Signs every call as the colony would (see colony/src/agents/transport.ts). */
function colonySignature(agentId: string, key: IdentityKey): Interceptor {
  return (next) => async (req) => {
    if (req.stream) throw new Error("the colony signs unary calls only");
    const body = toBinary(req.method.input, req.message);
    const bodySha256 = createHash("sha256").update(body).digest("hex");
    req.header.set(colonyCallHeader, await signColonyCall(key, { agentId, procedure: `/${req.service.typeName}/${req.method.name}`, bodySha256 }));
    return next(req);
  };
}

/** A client of one of the agent's services, as its colony. */
export function colonyClient<S extends DescService>(service: S, agentUrl: string, agentId: string, key: IdentityKey): Client<S> {
  return createClient(service, createConnectTransport({ baseUrl: agentUrl, httpVersion: "1.1", interceptors: [colonySignature(agentId, key)] }));
}
