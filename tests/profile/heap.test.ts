// `coral profile heap` end to end: a real Go server built here (net/http/pprof
// on its own port, ~20 MiB live from main.retainBig, garbage from main.churn),
// a real colony and agent; the CLI's table, JSON and pprof (read back with
// pprof-format and `go tool pprof`), and the ways it refuses.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { all } from "@coral/common/duckdb";
import { Profile } from "pprof-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, serviceApi } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { freePort } from "../helpers/ports.ts";
import { onPath, startObservedTarget, type ObservedTarget } from "../debug/helpers.ts";

const skip = onPath("go") ? undefined : "go not installed (the target is a Go server with net/http/pprof)";
if (skip) console.log(`profile heap.test: SKIPPING heap profile tests: ${skip}`);

/** go build of testdata/heap-go, symbols kept (the agent lists them to know it observes the target). */
function buildHeapServer(): string {
  const out = join(mkdtempSync(join(tmpdir(), "coral-heap-go-")), "heap-go");
  execFileSync("go", ["build", "-o", out, "."], {
    cwd: fileURLToPath(new URL("./testdata/heap-go", import.meta.url)),
    env: { ...process.env, GOFLAGS: "-mod=mod", GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "coral-go-cache"), GOPATH: process.env.GOPATH ?? join(tmpdir(), "coral-gopath") },
  });
  return out;
}

const MB = 1_000_000;

describe.skipIf(skip !== undefined)("coral profile heap", () => {
  let fixture: ObservedTarget | undefined;
  let dir: string;
  const env = () => ({ CORAL_HOME: fixture!.project.home, CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined });
  const coral = (args: string[]) => runCoral(["profile", "heap", "inventory", ...args], { cwd: fixture!.project.dir, env: env() });

  beforeAll(async () => {
    fixture = await startObservedTarget(buildHeapServer(), "inventory", { pattern: "retainBig" });
    dir = mkdtempSync(join(tmpdir(), "coral-heap-out-"));
  }, 180_000);
  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("prints the largest allocation sites, main.retainBig first with what it holds", async () => {
    const res = await coral([]);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.split("\n");
    expect(lines[0]).toMatch(/^Heap profile of inventory \(agent [^,]+, pprof\): [\d.]+ \w?i?B in use, [\d.]+ \w?i?B allocated, a snapshot, 1 process$/);
    const rows = lines.filter((l) => /^\s*\d+\.\d%\s/.test(l));
    // INUSE% INUSE OBJECTS ALLOC ALLOC-OBJ FUNCTION MODULE
    const top = /^\s*([\d.]+)%\s+([\d.]+) (B|KiB|MiB|GiB)\s+\S+\s+[\d.]+ \w+\s+\S+\s+(\S+)\s+(\S+)$/.exec(rows[0] ?? "");
    expect(top, res.stdout).not.toBeNull();
    const [, share, amount, unit, fn, module] = top!;
    expect(fn).toBe("main.retainBig");
    expect(module).toMatch(/heap-go$/);
    const bytes = Number(amount) * { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[unit as "B"];
    expect(bytes).toBeGreaterThanOrEqual(15 * MB);
    expect(Number(share)).toBeGreaterThan(50);
    // Audited under the caller's name, before and after.
    const audit = await fixture!.colony.store.read((c) => all(c, "SELECT actor, action, target FROM audit_log WHERE action LIKE 'profile.heap%' ORDER BY \"at\""));
    expect(audit.slice(-2).map((r) => [r.actor, r.action, r.target])).toEqual([
      ["local", "profile.heap", "inventory"],
      ["local", "profile.heap.done", "inventory"],
    ]);
  }, 120_000);

  it("answers JSON with the stacks, root first, and --sort alloc puts the churn first", async () => {
    const json = await coral(["--json"]);
    expect(json.code, json.stderr).toBe(0);
    type Body = { serviceName: string; profile: { method: string; pids: number[]; frames: { function: string; module: string }[]; stacks: { frameIds: number[]; inuseBytes?: string; allocBytes?: string }[] } };
    const body = JSON.parse(json.stdout) as Body;
    expect(body.serviceName).toBe("inventory");
    expect(body.profile).toMatchObject({ method: "pprof", pids: [fixture!.target.pid] });
    const names = (s: { frameIds: number[] }) => s.frameIds.map((i) => body.profile.frames[i]!.function);
    const retained = body.profile.stacks.filter((s) => names(s).at(-1) === "main.retainBig");
    expect(retained.length).toBeGreaterThan(0);
    expect(retained.reduce((n, s) => n + Number(s.inuseBytes ?? 0), 0)).toBeGreaterThanOrEqual(15 * MB);
    // Root first: main.main calls retainBig.
    const stack = names(retained[0]!);
    expect(stack.indexOf("main.main")).toBeGreaterThanOrEqual(0);
    expect(stack.indexOf("main.main")).toBeLessThan(stack.indexOf("main.retainBig"));

    const byAlloc = await coral(["--sort", "alloc", "--top", "3"]);
    expect(byAlloc.code, byAlloc.stderr).toBe(0);
    const first = byAlloc.stdout.split("\n").find((l) => /^\s*\d+\.\d%\s/.test(l));
    // churn allocates 1 MiB every 10 ms: past retainBig's 20 MiB within the beforeAll's seconds.
    expect(first).toMatch(/\bmain\.churn\b/);
  }, 120_000);

  it("writes pprof with Go's heap sample types that pprof-format and go tool pprof read", async () => {
    const file = join(dir, "heap.pb.gz");
    const res = await coral(["-o", file]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`📄 Saved ${file} (pprof`);
    const profile = Profile.decode(gunzipSync(readFileSync(file)));
    const str = (i: number | bigint) => profile.stringTable.strings[Number(i)];
    const types = profile.sampleType.map((t) => str(t.type));
    expect(types).toEqual(["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]);
    const inuse = types.indexOf("inuse_space");
    const fnOf = new Map(profile.function.map((f) => [Number(f.id), str(f.name)]));
    const leafOf = new Map(profile.location.map((l) => [Number(l.id), fnOf.get(Number(l.line[0]?.functionId))]));
    const held = profile.sample.filter((s) => leafOf.get(Number(s.locationId[0])) === "main.retainBig").reduce((n, s) => n + Number(s.value[inuse]), 0);
    expect(held).toBeGreaterThanOrEqual(15 * MB);

    const top = execFileSync("go", ["tool", "pprof", "-top", "-sample_index=inuse_space", file], { encoding: "utf8", env: { ...process.env, HOME: dir } });
    expect(top.split("\n").find((l) => /^\s*[\d.]+\w?B\s+[\d.]+%/.test(l)), top).toMatch(/\bmain\.retainBig$/);
  }, 120_000);

  it("says what to do when nothing serves pprof on --pprof-port, with exit code 1", async () => {
    // A port with an HTTP server that has no /debug/pprof, and one where nothing listens.
    const plain = http.createServer((_, res) => res.writeHead(404).end("not found"));
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    try {
      const port = (plain.address() as AddressInfo).port;
      const res = await coral(["--pprof-port", String(port)]);
      expect(res.code, res.stderr).toBe(1);
      expect(res.stderr).toContain(`nothing serves /debug/pprof/heap on 127.0.0.1:${port} (HTTP 404)`);
    } finally {
      plain.close();
    }
    const closed = await freePort();
    const res = await coral(["--pprof-port", String(closed)]);
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`nothing answers on 127\\.0\\.0\\.1:${closed}: ECONNREFUSED .*--pprof-port should name where net/http/pprof listens`));
    const failed = await fixture!.colony.store.read((c) => all(c, "SELECT action FROM audit_log WHERE action = 'profile.heap.failed'"));
    expect(failed.length).toBe(2);
  }, 60_000);

  it("refuses bad input at the colony and the CLI, and a read token", async () => {
    const api = serviceApi(ProfileService, fixture!.colony.url, fixture!.project.localToken);
    for (const [req, message] of [
      [{ samplingIntervalBytes: 100 }, "sampling_interval_bytes: must be from 1024 to 16777216, or 0 for the default (got 100)"],
      [{ pprofPort: 70_000 }, "pprof_port: must be a port from 1 to 65535, or 0 for the service's own port (got 70000)"],
      [{ durationMs: 400_000 }, "duration_ms: at most 5 minutes (got 400s)"],
    ] as const) {
      const err = await rejection(api.profileHeap({ serviceName: "inventory", ...req }));
      expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, message]);
    }

    const { token } = await colonyApi(fixture!.colony.url, fixture!.project.localToken).createToken({ name: "viewer", scope: TokenScope.READ });
    const denied = await rejection(serviceApi(ProfileService, fixture!.colony.url, token).profileHeap({ serviceName: "inventory" }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.rawMessage).toMatch(/ProfileHeap needs an admin token; "viewer" has scope read/);
    const cli = await runCoral(["profile", "heap", "inventory"], { cwd: fixture!.project.dir, env: { ...env(), CORAL_TOKEN: token, CORAL_COLONY_URL: fixture!.colony.url } });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/permission denied: ProfileHeap needs an admin token/);

    for (const [args, message] of [
      [["--pprof-port", "0"], /--pprof-port <n>.*must be an integer from 1 to 65535/],
      [["--sort", "size"], /--sort <what>.*must be inuse .* or alloc/],
      [["--duration", "10m"], /--duration <time>.*must be from 1s to 5m/],
      [["-o", "heap.svg"], /heap profiles are written as pprof; name the file \.pb\.gz/],
    ] as const) {
      const res = await coral([...args]);
      expect(res.code, `${args.join(" ")}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toMatch(message);
    }
  }, 60_000);
});
