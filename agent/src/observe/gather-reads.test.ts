import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { gatherReads } from "./gather-reads.ts";

/** A real process printing `lines` lines of ~100 bytes, `perMs` every millisecond (50: 5 MB/s, a busy bpftrace); what the reader saw. */
async function read(pauseMs: number, perMs: number, lines = 20_000) {
  const child = spawn(process.execPath, ["-e", `let i = 0; const t = setInterval(() => { for (let k = 0; k < ${perMs} && i < ${lines}; k++, i++) process.stdout.write("line " + i + " ${"x".repeat(90)}\\n"); if (i === ${lines}) clearInterval(t); }, 1);`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  child.stdout.setEncoding("utf8");
  let text = "";
  child.stdout.on("data", (d: string) => (text += d));
  gatherReads(child.stdout, pauseMs);
  await new Promise((r) => child.on("close", r));
  return { text };
}

describe("gatherReads", () => {
  it("loses or reorders nothing of a busy pipe it reads in pauses, or as it comes above its rate", async () => {
    const expected = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${"x".repeat(90)}\n`).join("");
    expect((await read(5, 20)).text).toBe(expected);
    // 12 MB/s: above the rate where it stops pausing.
    expect((await read(5, 120)).text).toBe(expected);
    expect((await read(0, 50)).text).toBe(expected);
    // How much fewer the reads are (at 2 MB/s ~430 against ~10,000) is a figure for BENCHMARKS.md, not a test.
  }, 60_000);
});
