// The map dump bpftrace 0.17 prints at the profile program's exit, as it
// printed it here (addresses shortened), and what breaks it.
import { describe, expect, it } from "vitest";
import { parseStackDump, StackDumpReader } from "./dump.ts";

const userAndKernel = [
  "@stacks[16679, ",
  "\t1095122 0x1095122 ([unknown])",
  "\t7f9bb9aa71f5 0x7f9bb9aa71f5 ([unknown])",
  ", ",
  "\tffffffff822382f7 clear_page_erms+7",
  "\tffffffff81000e46 asm_exc_page_fault+38",
  "]: 3",
];
const userOnly = ["@stacks[13859, ", "\t561d6916a17e 0x561d6916a17e ([unknown])", "\t561d6916a1a1 0x561d6916a1a1 ([unknown])", ", ]: 22"];
const kernelOnly = ["@stacks[0, , ", "\tffffffff82242055 pvm_safe_halt_hc+21", "\tffffffff82243c75 default_idle+5", "]: 19"];

describe("parseStackDump", () => {
  it("reads user and kernel frames leaf first, the counts, and @samples", () => {
    const dump = parseStackDump(["", "", ...userAndKernel, ...userOnly, ...kernelOnly, "@samples: 44", ""].join("\n"));
    expect(dump.setAside).toEqual({ lines: 0, samples: 0, examples: [] });
    expect(dump.totalSamples).toBe(44);
    expect(dump.stacks).toEqual([
      {
        pid: 16679,
        user: [0x1095122n, 0x7f9bb9aa71f5n],
        kernel: [
          { address: 0xffffffff822382f7n, symbol: "clear_page_erms" },
          { address: 0xffffffff81000e46n, symbol: "asm_exc_page_fault" },
        ],
        samples: 3,
      },
      { pid: 13859, user: [0x561d6916a17en, 0x561d6916a1a1n], kernel: [], samples: 22 },
      {
        pid: 0,
        user: [],
        kernel: [
          { address: 0xffffffff82242055n, symbol: "pvm_safe_halt_hc" },
          { address: 0xffffffff82243c75n, symbol: "default_idle" },
        ],
        samples: 19,
      },
    ]);
  });

  it.each([
    ["no frames at all", ["@stacks[7, , ]: 5"], { pid: 7, user: [], kernel: [], samples: 5 }],
    ["a kernel frame bpftrace could not name", ["@stacks[7, , ", "\tffffffffc0a1b2c3 ", "]: 1"], { pid: 7, user: [], kernel: [{ address: 0xffffffffc0a1b2c3n }], samples: 1 }],
    ["a kernel frame with a hex offset", ["@stacks[7, , ", "\tffffffff81000e46 vfs_write+0x78", "]: 2"], { pid: 7, user: [], kernel: [{ address: 0xffffffff81000e46n, symbol: "vfs_write" }], samples: 2 }],
    ["CRLF line ends", ["@stacks[7, \r", "\t401000 0x401000 ([unknown])\r", ", ]: 4\r"], { pid: 7, user: [0x401000n], kernel: [], samples: 4 }],
  ])("reads %s", (_name, lines, stack) => {
    const dump = parseStackDump(lines.join("\n"));
    expect(dump.stacks).toEqual([stack]);
    expect(dump.setAside.lines).toBe(0);
  });

  it("ignores bpftrace's chatter and the program's own lines", () => {
    const dump = parseStackDump(['Attaching 4 probes...', '{"ev":"end","ts":12}', "", ...userOnly].join("\n"));
    expect(dump.stacks).toHaveLength(1);
    expect(dump.setAside.lines).toBe(0);
  });

  it.each([
    {
      name: "a stray line between entries",
      lines: [...userOnly, "WARNING: something odd", ...kernelOnly],
      kept: [22, 19],
      setAside: { lines: 1, samples: 0 },
    },
    {
      name: "a garbage line inside an entry: the entry is set aside up to its end, with its count",
      lines: ["@stacks[5, ", "\t401000 0x401000 ([unknown])", "#### not a frame ####", "\t401010 0x401010 ([unknown])", ", ]: 9", ...userOnly],
      kept: [22],
      setAside: { lines: 5, samples: 9 },
    },
    {
      name: "an entry cut off by the next one",
      lines: ["@stacks[5, ", "\t401000 0x401000 ([unknown])", ...kernelOnly],
      kept: [19],
      setAside: { lines: 2, samples: 0 },
    },
    {
      name: "an entry cut off by the end of the output",
      lines: [...kernelOnly, "@stacks[5, ", "\t401000 0x401000 ([unknown])", ", "],
      kept: [19],
      setAside: { lines: 3, samples: 0 },
    },
    {
      name: "a count that is not a number",
      lines: ["@stacks[5, ", "\t401000 0x401000 ([unknown])", ", ]: lots", ...userOnly],
      kept: [22],
      setAside: { lines: 3, samples: 0 },
    },
    {
      name: "a header that does not fit",
      lines: ["@stacks[5, what is this", "\t401000 0x401000 ([unknown])", ", ]: 3", ...userOnly],
      kept: [22],
      setAside: { lines: 3, samples: 3 },
    },
    {
      name: "a second separator",
      lines: ["@stacks[5, ", ", ", ", ", "]: 2", ...userOnly],
      kept: [22],
      setAside: { lines: 4, samples: 2 },
    },
    {
      name: "a pid that is not a number and a map of another name",
      lines: ["@stacks[abc, , ]: 3", "@other[1]: 2", ...userOnly],
      kept: [22],
      setAside: { lines: 2, samples: 0 },
    },
  ])("sets aside $name and keeps the rest", ({ lines, kept, setAside }) => {
    const dump = parseStackDump(lines.join("\n"));
    expect(dump.stacks.map((s) => s.samples)).toEqual(kept);
    expect({ lines: dump.setAside.lines, samples: dump.setAside.samples }).toEqual(setAside);
    expect(dump.setAside.examples.length).toBeGreaterThan(0);
  });

  it("never throws on random input", () => {
    const alphabet = ["@stacks[", "1", ", ", "]: ", "\t", "ffff", " ", "\n", "x", "+", "@samples: ", "9"];
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 500; i++) {
      const text = Array.from({ length: 60 }, () => alphabet[next() % alphabet.length]).join("");
      expect(() => parseStackDump(text)).not.toThrow();
    }
  });

  it("takes a large dump line by line", () => {
    const reader = new StackDumpReader();
    for (let i = 1; i <= 10_000; i++) for (const l of [`@stacks[${i}, `, `\t${(0x400000 + i).toString(16)} 0x0 ([unknown])`, ", ]: 1"]) reader.push(l);
    const dump = reader.finish();
    expect(dump.stacks).toHaveLength(10_000);
    expect(dump.stacks[9_999]).toEqual({ pid: 10_000, user: [0x400000n + 10_000n], kernel: [], samples: 1 });
  });
});
