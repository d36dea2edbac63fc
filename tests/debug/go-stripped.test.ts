// Stripped Go binaries (-ldflags='-s -w': no .symtab, no DWARF), as
// distributions ship them: functions come from Go's own function table
// (.gopclntab), and a function attaches by name with entry and RET probes,
// every call counted. The same source built with its symbol table is the
// reference for names and addresses.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseElf } from "@coral/agent/debug";
import { runCoral } from "../helpers/cli.ts";
import { bpfSkipReason, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason(["go", "objdump", "unshare"]);
if (skip) console.log(`go-stripped.test: SKIPPING stripped Go uprobe tests: ${skip}`);

/** go build of tests/debug/testdata/go-http, with extra flags. */
function buildQuotes(name: string, flags: string[]): string {
  const out = join(mkdtempSync(join(tmpdir(), "coral-debug-go-http-")), name);
  execFileSync("go", ["build", ...flags, "-o", out, "."], {
    cwd: fileURLToPath(new URL("./testdata/go-http/", import.meta.url)),
    env: { ...process.env, GOFLAGS: "-mod=mod", GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "coral-go-cache"), GOPATH: process.env.GOPATH ?? join(tmpdir(), "coral-gopath") },
  });
  return out;
}

/** main.* functions of the unstripped build's .symtab: name → address. */
function symtabMainFunctions(bin: string): Map<string, bigint> {
  const STT_FUNC = 2;
  const syms = parseElf(readFileSync(bin)).symbols.filter((s) => s.table === ".symtab" && s.type === STT_FUNC && s.name.startsWith("main."));
  return new Map(syms.map((s) => [s.name, s.address]));
}

async function quote(port: number, n: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/quote?n=${n}`);
  return (await res.text()).trim();
}

describe.skipIf(skip !== undefined)("live debugging a stripped Go HTTP server", () => {
  let fixture: ObservedTarget | undefined;
  let stripped: string;
  let reference: Map<string, bigint>;

  beforeAll(async () => {
    stripped = buildQuotes("quotes-stripped", ["-ldflags=-s -w"]);
    reference = symtabMainFunctions(buildQuotes("quotes", []));
    fixture = await startObservedTarget(stripped, "quotes", { pattern: "main.Quote" });
  }, 180_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("the target really is stripped", () => {
    const names = parseElf(readFileSync(stripped)).sections.map((s) => s.name);
    expect(names).not.toContain(".symtab");
    expect(names).not.toContain(".debug_info");
    expect(names).toContain(".gopclntab");
  });

  it("debug functions lists every main.* function at the address the symbol table of its unstripped twin gives", async () => {
    const { api, project, colony } = fixture!;
    const list = await api.listFunctions({ serviceName: "quotes", pattern: "main.", limit: 10_000 });
    expect(list.isGo).toBe(true);
    const listed = new Map(list.functions.filter((f) => f.name.startsWith("main.")).map((f) => [f.name, f.address]));
    expect(reference.size).toBeGreaterThanOrEqual(3);
    expect([...reference.keys()]).toEqual(expect.arrayContaining(["main.Quote", "main.quoteHandler", "main.main"]));
    expect(listed).toEqual(reference);

    // The CLI shows the same, as JSON (uint64 addresses are decimal strings there).
    const res = await runCoral(["debug", "functions", "quotes", "--pattern", "main.", "--limit", "10000", "--json", "--colony-url", colony.url, "--token", project.localToken], { env: { CORAL_HOME: project.home } });
    expect(res.code).toBe(0);
    const json = JSON.parse(res.stdout) as { isGo: boolean; functions: { name: string; address: string }[] };
    expect(json.isGo).toBe(true);
    expect(new Map(json.functions.filter((f) => f.name.startsWith("main.")).map((f) => [f.name, BigInt(f.address)]))).toEqual(reference);
  });

  it("attaches to main.Quote by name and counts every call and every return, with arguments and results", async () => {
    const { api, port, target } = fixture!;
    const attached = await api.attachUprobe({ serviceName: "quotes", functionName: "main.Quote", durationMs: 120_000, captureArgs: 1, captureReturn: true });
    expect(attached.session?.isGo).toBe(true);
    const K = 37;
    for (let n = 1; n <= K; n++) expect(await quote(port, n)).toBe(`quote ${n * 7 + 1}`);
    const detached = await api.detachUprobe({ sessionId: attached.session!.sessionId });
    expect(detached.session?.state).toBe("completed");
    expect(Number(detached.session?.summary?.calls)).toBe(K);

    const { events } = await api.queryUprobeEvents({ sessionId: attached.session!.sessionId, limit: 1000 });
    const entries = events.filter((e) => e.type === "entry");
    const returns = events.filter((e) => e.type === "return");
    expect(entries.map((e) => e.args)).toEqual(Array.from({ length: K }, (_, i) => [String(i + 1)]));
    expect(returns.map((r) => r.returnValue)).toEqual(Array.from({ length: K }, (_, i) => String((i + 1) * 7 + 1)));
    for (const r of returns) {
      expect(Number(r.durationNs)).toBeGreaterThanOrEqual(200_000); // time.Sleep(200 µs)
      expect(Number(r.durationNs)).toBeLessThan(5_000_000_000);
    }
    // Each call's return closes its own goroutine's entry.
    const open = new Set<string>();
    for (const e of events) {
      if (e.type === "entry") open.add(e.goroutine);
      else expect(open.delete(e.goroutine)).toBe(true);
    }
    expect(open.size).toBe(0);
    expect(target.exitCode).toBeNull();
    expect(await quote(port, 2)).toBe("quote 15");
  }, 180_000);

  it("attaches to a standard-library function of the same stripped binary: one call per request", async () => {
    const { api, port } = fixture!;
    const fn = "net/http.HandlerFunc.ServeHTTP";
    const attached = await api.attachUprobe({ serviceName: "quotes", functionName: fn, durationMs: 120_000 });
    const K = 12;
    for (let n = 0; n < K; n++) expect(await quote(port, n)).toBe(`quote ${n * 7 + 1}`);
    await api.detachUprobe({ sessionId: attached.session!.sessionId });
    const { events } = await api.queryUprobeEvents({ sessionId: attached.session!.sessionId, limit: 1000 });
    expect(events.filter((e) => e.type === "entry")).toHaveLength(K);
    expect(events.filter((e) => e.type === "return")).toHaveLength(K);
  }, 180_000);

  it("names close matches for a function that is not there", async () => {
    const { api } = fixture!;
    await expect(api.attachUprobe({ serviceName: "quotes", functionName: "main.Quot", durationMs: 5_000 })).rejects.toThrow(/main\.Quote/);
  });
});
