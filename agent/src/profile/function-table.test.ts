import { copyFileSync, existsSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { functionsOf, parseElf, readElfTables, type FunctionInfo } from "../debug/elf.ts";
import { FileNames, FunctionTable } from "./function-table.ts";

/** The lookup the table replaces: objects, binary search, look back over aliases. */
function objectLookup(functions: readonly FunctionInfo[], vaddr: bigint): FunctionInfo | undefined {
  let [lo, hi, best] = [0, functions.length - 1, -1];
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (functions[mid]!.address <= vaddr) [best, lo] = [mid, mid + 1];
    else hi = mid - 1;
  }
  for (let i = best; i >= 0 && i > best - 8; i--) if (vaddr < functions[i]!.address + BigInt(functions[i]!.size)) return functions[i];
  return undefined;
}

const files = [process.execPath, "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/aarch64-linux-gnu/libc.so.6"].filter((p) => existsSync(p));

describe("FunctionTable", () => {
  it.each(files)("holds the same functions as the object list for %s, and names the same function at any address", async (path) => {
    const buf = await readElfTables(path);
    const objects = functionsOf(parseElf(buf));
    const { table } = FunctionTable.fromSymbols(buf, parseElf(buf, { symbols: false }));
    expect(table.length).toBe(objects.length);
    expect(objects.length).toBeGreaterThan(500);
    for (let i = 0; i < objects.length; i += 97) expect(table.get(i)).toEqual(objects[i]);
    // Starts, middles, one past the end, and gaps between functions.
    for (let i = 0; i < objects.length; i += 31) {
      const f = objects[i]!;
      for (const at of [f.address, f.address + BigInt(f.size >> 1), f.address + BigInt(f.size), f.address - 1n]) expect(table.at(at)).toEqual(objectLookup(objects, at));
    }
  });

  it.each(files)("reads the names of %s from the file when asked, also once the file is deleted (its descriptor keeps it)", async (path) => {
    const dir = mkdtempSync(join(tmpdir(), "coral-names-"));
    const copy = join(dir, "lib");
    copyFileSync(path, copy);
    try {
      const buf = await readElfTables(copy);
      const inMemory = FunctionTable.fromSymbols(buf, parseElf(buf, { symbols: false })).table;
      const names = new FileNames(copy);
      const fromFile = FunctionTable.fromSymbols(buf, parseElf(buf, { symbols: false }), names).table;
      unlinkSync(copy);
      expect(fromFile.length).toBe(inMemory.length);
      for (let i = 0; i < inMemory.length; i += 53) expect(fromFile.get(i)).toEqual(inMemory.get(i));
      fromFile.close();
      // Closed: nothing more is read (a name already read is still known).
      expect(fromFile.get(0)).toEqual(inMemory.get(0));
      expect(fromFile.get(1).name).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("from a sorted list (Go's function table), and empty", () => {
    const fns = [
      { name: "main.main", address: 0x401000n, size: 0x40 },
      { name: "main.hotLoop", address: 0x401040n, size: 0x20 },
      { name: "runtime.ünïcode", address: 0x402000n, size: 0x10 },
    ];
    const t = FunctionTable.fromFunctions(fns);
    expect([0, 1, 2].map((i) => t.get(i))).toEqual(fns);
    expect(t.at(0x401050n)?.name).toBe("main.hotLoop");
    expect(t.at(0x401060n)).toBeUndefined();
    expect(t.at(0x402008n)?.name).toBe("runtime.ünïcode");
    expect(FunctionTable.empty.at(0x401000n)).toBeUndefined();
  });
});
