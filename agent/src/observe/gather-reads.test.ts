import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { gatherReads } from "./gather-reads.ts";

/** A real process printing `lines` lines of ~100 bytes, 50 every millisecond (5 MB/s, a busy bpftrace); what the reader saw. */
async function read(pauseMs: number, lines = 20_000) {
  const child = spawn(process.execPath, ["-e", `let i = 0; const t = setInterval(() => { for (let k = 0; k < 50 && i < ${lines}; k++, i++) process.stdout.write("line " + i + " ${"x".repeat(90)}\\n"); if (i === ${lines}) clearInterval(t); }, 1);`], {
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
  it("loses or reorders nothing of a busy pipe it reads in pauses", async () => {
    const expected = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${"x".repeat(90)}\n`).join("");
    const gathered = await read(5);
    expect(gathered.text).toBe(expected);
    const asItComes = await read(0);
    expect(asItComes.text).toBe(expected);
    // How much fewer the reads are (here ~85 against ~2,500) is a figure for bench/traffic (BENCHMARKS.md), not a test.
  }, 60_000);
});
