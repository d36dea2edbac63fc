// Inlined frames from DWARF, with real bpftrace on a real program compiled
// here: mix is always inlined into spin, so the symbol table knows only spin;
// built with -g, the profile shows spin → mix; built without, spin is the
// leaf and nothing is invented.
import type { ChildProcess } from "node:child_process";
import { readlinkSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../debug/testing.ts";
import { CpuProfiler, type CpuProfileData } from "./profiler.ts";
import { compileC, onPath, profileSkipReason, spawnTarget } from "./testing.ts";

const skip = profileSkipReason(["gcc"]) ?? (onPath("addr2line") ? undefined : "addr2line (binutils) not installed");
if (skip) console.log(`inline.test: SKIPPING inlined frames from DWARF: ${skip}`);

/** The hottest stack's function names, root first. */
function hottest(p: CpuProfileData): string[] {
  const top = [...p.stacks].sort((a, b) => b.samples - a.samples)[0]!;
  return top.frameIds.map((id) => p.frames[id]!.function);
}

describe.skipIf(skip !== undefined)("inlined frames from DWARF", () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
  });

  async function profileOf(flags: string[]): Promise<CpuProfileData> {
    const bin = compileC("inline", ["-O2", "-mno-omit-leaf-frame-pointer", ...flags]);
    const c = spawnTarget(bin, children);
    const pid = c.pid!;
    await waitFor(() => readlinkSync(`/proc/${pid}/exe`) === bin || undefined, 10_000, "the target to start");
    const profiler = new CpuProfiler({ observedPid: () => pid });
    try {
      return await profiler.profile({ hz: 99, durationMs: 2000, label: "inline.test" });
    } finally {
      await profiler.close();
    }
  }

  it("names the function inlined at the sampled address, under the one that holds it", async () => {
    const p = await profileOf(["-g"]);
    const names = hottest(p);
    // (The caller of spin depends on how gcc framed main; the pair is what DWARF adds.)
    expect(names.slice(-2)).toEqual(["spin", "mix"]);
    const mix = p.frames.find((f) => f.function === "mix")!;
    expect(mix.module).toMatch(/\/inline$/);
    const inMix = p.stacks.filter((s) => p.frames[s.frameIds.at(-1)!]!.function === "mix").reduce((n, s) => n + s.samples, 0);
    expect(inMix / p.totalSamples).toBeGreaterThan(0.8);
  }, 120_000);

  it("adds nothing without DWARF", async () => {
    const p = await profileOf([]);
    expect(hottest(p).at(-1)).toBe("spin");
    expect(p.frames.some((f) => f.function === "mix")).toBe(false);
  }, 120_000);
});
