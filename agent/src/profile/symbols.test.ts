// The symbolizer's address arithmetic on real binaries: a running process
// prints the runtime addresses of its own functions, and the symbolizer must
// get back to their names from /proc/<pid>/maps and the file alone
// (position-independent and fixed-address C, stripped Go).
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { listFunctions, parseElf } from "../debug/index.ts";
import { waitFor } from "../debug/testing.ts";
import { MappingHistory, parseMaps, readMaps } from "./maps.ts";
import { symbolizeStacks } from "./symbolize.ts";
import { fileOffsetToVaddr, SymbolCache } from "./symbols.ts";
import { buildGoBurn, compileC, onPath, spawnTarget } from "./testing.ts";

const hasGcc = onPath("gcc");
const hasGo = onPath("go");
if (!hasGcc) console.log("symbols.test: SKIPPING the tests on compiled C programs: gcc not installed");
if (!hasGo) console.log("symbols.test: SKIPPING the stripped Go test: go not installed");

const children: ChildProcess[] = [];
afterEach(() => {
  // The targets spin: stop them as soon as their test is done.
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

/** Starts burn with an argument, so it prints where hot_loop and warm_loop are. */
async function burnWithAddresses(bin: string): Promise<{ pid: number; hot: bigint; warm: bigint }> {
  const c = spawnTarget(bin, children, ["print"]);
  const found = new Map<string, bigint>();
  const lines = createInterface({ input: c.stdout! });
  lines.on("line", (l) => {
    const [name, addr] = l.split(" ");
    if (name && addr) found.set(name, BigInt(addr));
  });
  await waitFor(() => found.size === 2 || undefined, 10_000, "burn to print its addresses");
  lines.close();
  return { pid: c.pid!, hot: found.get("hot_loop")!, warm: found.get("warm_loop")! };
}

function nmAddress(bin: string, name: string): bigint {
  const line = execFileSync("nm", ["--defined-only", bin], { encoding: "utf8" })
    .split("\n")
    .find((l) => l.endsWith(` ${name}`))!;
  return BigInt(`0x${line.split(" ")[0]}`);
}

describe("parseMaps and MappingHistory", () => {
  it("reads file, deleted, anonymous and special mappings", () => {
    const maps = parseMaps(
      [
        "55d0c8a00000-55d0c8a01000 r--p 00000000 08:01 1234                       /opt/my app/bin",
        "55d0c8a01000-55d0c8a02000 r-xp 00001000 08:01 1234                       /opt/my app/bin",
        "7f0000000000-7f0000001000 r-xp 00002000 00:2a 99 /tmp/lib.so (deleted)",
        "7f0000002000-7f0000003000 rw-p 00000000 00:00 0 ",
        "7ffd5e3f2000-7ffd5e3f4000 r-xp 00000000 00:00 0                          [vdso]",
        "not a mapping",
      ].join("\n"),
    );
    expect(maps.map((m) => [m.path, m.deleted, m.perms])).toEqual([
      ["/opt/my app/bin", false, "r--p"],
      ["/opt/my app/bin", false, "r-xp"],
      ["/tmp/lib.so", true, "r-xp"],
      ["", false, "rw-p"],
      ["[vdso]", false, "r-xp"],
    ]);
    expect(maps[1]).toMatchObject({ start: 0x55d0c8a01000n, end: 0x55d0c8a02000n, offset: 0x1000n, dev: "08:01", inode: 1234 });
  });

  it("keeps every mapping seen, the latest first", () => {
    const h = new MappingHistory();
    h.add(1, parseMaps("1000-2000 r-xp 00000000 08:01 5 /a\n"));
    h.add(1, parseMaps("1000-2000 r-xp 00000000 08:01 6 /b\n3000-4000 r-xp 00000000 08:01 7 /c\n"));
    expect(h.find(1, 0x1800n)?.path).toBe("/b");
    expect(h.find(1, 0x3000n)?.path).toBe("/c");
    expect(h.find(1, 0x4000n)).toBeUndefined();
    h.inherit(2, 1);
    expect(h.find(2, 0x3fffn)?.path).toBe("/c");
    expect(h.find(3, 0x1000n)).toBeUndefined();
  });
});

describe.skipIf(!hasGcc)("symbolizing a running C program", () => {
  it.each([
    ["position-independent (the default)", []],
    ["at fixed addresses (-no-pie)", ["-no-pie"]],
  ])("%s: runtime address → mapping → file offset → ELF address → function", async (_name, flags) => {
    const bin = compileC("burn", flags);
    const { pid, hot, warm } = await burnWithAddresses(bin);
    const maps = (await readMaps(pid))!;
    const elf = parseElf(readFileSync(bin));
    // The arithmetic itself, against nm's addresses.
    for (const [fn, runtime] of [["hot_loop", hot], ["warm_loop", warm]] as const) {
      const m = maps.find((x) => runtime >= x.start && runtime < x.end)!;
      expect(m.path).toBe(bin);
      expect(fileOffsetToVaddr(elf.segments, runtime - m.start + m.offset)).toBe(nmAddress(bin, fn));
    }
    const history = new MappingHistory();
    history.add(pid, maps);
    const hotSize = (await listFunctions(bin, "hot_loop")).functions[0]!.size;
    const out = await symbolizeStacks(
      [
        // Leaf inside hot_loop; its caller's return address is warm_loop's first byte, which is
        // hot_loop's end: the byte before it (the call) is what names a caller.
        { pid, user: [hot + 4n, hot + BigInt(hotSize)], kernel: [{ address: 0xffffffff81000e46n, symbol: "asm_sysvec_apic_timer_interrupt" }, { address: 0xffffffff81000000n }], samples: 5 },
        { pid, user: [warm], kernel: [], samples: 2 },
        // A leaf exactly at a function's start is that function.
        { pid, user: [warm], kernel: [], samples: 1 },
        // Nothing is mapped at 0x10.
        { pid, user: [0x10n], kernel: [], samples: 1 },
      ],
      history,
      new SymbolCache(),
    );
    const names = (ids: number[]) => ids.map((i) => `${out.frames[i]!.function}@${out.frames[i]!.module}${out.frames[i]!.kernel ? "!" : ""}`);
    expect(out.stacks.map((s) => [names(s.frameIds), s.samples, s.pid])).toEqual([
      [[`hot_loop@${bin}`, `hot_loop@${bin}`, "0xffffffff81000000@[kernel]!", "asm_sysvec_apic_timer_interrupt@[kernel]!"], 5, pid],
      [[`warm_loop@${bin}`], 3, pid],
      [["0x10@[unknown]"], 1, pid],
    ]);
    expect(out.userSamples).toBe(9);
    expect(out.shallowSamples.get(bin)).toBe(3);
  });
});

describe.skipIf(!hasGo)("symbolizing a running stripped Go program", () => {
  it("names its functions from .gopclntab", async () => {
    const bin = buildGoBurn(true);
    const fl = await listFunctions(bin);
    expect(fl.symbolSource).toBe("gopclntab");
    const hot = fl.functions.find((f) => f.name === "main.hotLoop")!;
    const warm = fl.functions.find((f) => f.name === "main.warmLoop")!;
    const c = spawnTarget(bin, children);
    await once(c, "spawn");
    const pid = c.pid!;
    const history = new MappingHistory();
    await waitFor(async () => (await readMaps(pid))?.some((m) => m.path === bin) || undefined, 10_000, "the Go program to be mapped");
    history.add(pid, (await readMaps(pid))!);
    const cache = new SymbolCache();
    // A Go executable is not position-independent: runtime addresses are its ELF addresses.
    const out = await symbolizeStacks([{ pid, user: [hot.address + 3n, warm.address + BigInt(warm.size)], kernel: [], samples: 7 }], history, cache);
    expect(out.stacks[0]!.frameIds.map((i) => out.frames[i]!.function)).toEqual(["main.warmLoop", "main.hotLoop"]);
    expect(cache.size).toBe(1);
    // Parsed once: a second profile of the same file hits the cache.
    await symbolizeStacks([{ pid, user: [warm.address], kernel: [], samples: 1 }], history, cache);
    expect(cache.size).toBe(1);
  });
});
