import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ElfError, functionsOf, parseElf, readElfTables, type FunctionInfo } from "../debug/elf.ts";
import { onPath } from "../debug/testing.ts";
import { FileNames, FunctionTable, nameHash } from "./function-table.ts";

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

/** The table of `path` as the agent builds it: headers through the descriptor, the symbol tables read from the file piece by piece. */
async function streamed(path: string): Promise<{ table: FunctionTable; fromSymtab: boolean }> {
  const file = new FileNames(path);
  return FunctionTable.fromSymbols(file, parseElf(await readElfTables(file.descriptor!, { symbolTables: false }), { symbols: false }));
}

function entries(table: FunctionTable): FunctionInfo[] {
  return Array.from({ length: table.length }, (_, i) => table.get(i));
}

/** The libc this process maps, as the agent symbolizes it. */
const libc = readFileSync("/proc/self/maps", "utf8")
  .split("\n")
  .map((line) => line.split(/\s+/)[5])
  .find((path) => path && /\/libc[.-]/.test(path));

const hasCc = onPath("cc");
if (!hasCc) console.log("function-table.test: skipping the compiled C programs: cc not installed");
const dir = mkdtempSync(join(tmpdir(), "coral-function-table-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function compile(name: string, source: string, flags: string[]): string {
  writeFileSync(join(dir, `${name}.c`), source);
  execFileSync("cc", [...flags, "-o", join(dir, name), join(dir, `${name}.c`)]);
  return join(dir, name);
}

// A static function (.symtab only), exported ones (-rdynamic: in .dynsym too) and two names at one address.
const program = `#include <stdio.h>
static int twice(int x) { return 2 * x; }
int checked(int x) { return twice(x) + 1; }
int checked_alias(int x) __attribute__((alias("checked")));
int main(int argc, char **argv) { (void)argv; printf("%d\\n", checked(argc)); return 0; }
`;
const compiled: [string, string][] = hasCc
  ? [
      ["a C program", compile("program", program, ["-O0", "-rdynamic"])],
      ["a stripped C program (.dynsym only)", compile("stripped", program, ["-O0", "-rdynamic", "-s"])],
      ["a C library", compile("library.so", program, ["-O0", "-shared", "-fPIC"])],
    ]
  : [];
const binaries: [string, string][] = [["node", process.execPath], ...(libc ? [["libc", libc] as [string, string]] : []), ...compiled];

describe("FunctionTable", () => {
  it.each(binaries)("%s: read from the file piece by piece, the same functions entry by entry as the object list and as built in memory", async (_, path) => {
    const tables = await readElfTables(path);
    const objects = functionsOf(parseElf(tables));
    const inMemory = FunctionTable.fromSymbols(tables, parseElf(tables, { symbols: false }));
    const fromFile = await streamed(path);
    expect(objects.length).toBeGreaterThan(2);
    expect(entries(fromFile.table)).toEqual(objects);
    expect(entries(inMemory.table)).toEqual(objects);
    expect(fromFile.fromSymtab).toBe(parseElf(tables).sections.some((s) => s.name === ".symtab"));
    expect(inMemory.fromSymtab).toBe(fromFile.fromSymtab);
    fromFile.table.close();
  });

  it.skipIf(!hasCc)("lists a name at an address once though both tables have it, and every other name there", async () => {
    const { table } = await streamed(compiled[0]![1]);
    const named = entries(table).filter((f) => /^(checked|twice|main)/.test(f.name));
    expect(named.map((f) => f.name).sort()).toEqual(["checked", "checked_alias", "main", "twice"]);
    expect(named.find((f) => f.name === "checked")!.address).toBe(named.find((f) => f.name === "checked_alias")!.address);
    table.close();
  });

  it.skipIf(!hasCc)("keeps two names at one address whose lengths and hashes are the same (compared byte for byte)", async () => {
    // Two names of one length with one hash: nameHash takes a name four bytes
    // at a time (h = (h ^ word) * P), so after "alia" + w1 + w2, any w1' has
    // its w2' = m(w1) ^ w2 ^ m(w1'); tried until w2' is identifier bytes.
    const word = (text: string) => Buffer.from(text, "latin1").readInt32LE(0);
    const text = (value: number) => {
      const bytes = Buffer.alloc(4);
      bytes.writeInt32LE(value | 0);
      return bytes.toString("latin1");
    };
    const afterPrefix = Math.imul(0x811c9dc5 ^ word("alia"), 0x01000193);
    const middle = (w: number) => Math.imul(afterPrefix ^ w, 0x01000193);
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const other = `s${i.toString(36).padStart(3, "0")}`;
      const last = text(middle(word("s_aa")) ^ word("bbbb") ^ middle(word(other)));
      if (/^[A-Za-z0-9_]{4}$/.test(last)) pair = ["alias_aabbbb", `alia${other}${last}`];
    }
    const hashOf = (name: string) => {
      const bytes = Buffer.from(name);
      return nameHash(new DataView(bytes.buffer, bytes.byteOffset, bytes.length), 0, bytes.length);
    };
    expect(hashOf(pair[0])).toBe(hashOf(pair[1]));
    expect(pair[0]).not.toBe(pair[1]);
    const source = `int target(int x) { return x + 1; }
int ${pair[0]}(int x) __attribute__((alias("target")));
int ${pair[1]}(int x) __attribute__((alias("target")));
int main(int argc, char **argv) { (void)argv; return target(argc); }
`;
    const bin = compile("colliding", source, ["-O0", "-rdynamic"]);
    const { table } = await streamed(bin);
    expect(entries(table)).toEqual(functionsOf(parseElf(readFileSync(bin))));
    expect(entries(table).filter((f) => pair.includes(f.name))).toHaveLength(2);
    table.close();
  });

  it.each(binaries)("%s: names the same function as the object list at any address", async (_, path) => {
    const objects = functionsOf(parseElf(await readElfTables(path)));
    const { table } = await streamed(path);
    // Starts, middles, one past the end, and gaps between functions.
    for (let i = 0; i < objects.length; i += 31) {
      const f = objects[i]!;
      for (const at of [f.address, f.address + BigInt(f.size >> 1), f.address + BigInt(f.size), f.address - 1n]) expect(table.at(at)).toEqual(objectLookup(objects, at));
    }
    table.close();
  });

  it.each(binaries.slice(0, 2))("reads the names of %s from the file when asked, also once the file is deleted (its descriptor keeps it)", async (_, path) => {
    const copy = join(dir, "deleted");
    copyFileSync(path, copy);
    const buf = await readElfTables(copy);
    const inMemory = FunctionTable.fromSymbols(buf, parseElf(buf, { symbols: false })).table;
    const fromFile = FunctionTable.fromSymbols(new FileNames(copy), parseElf(buf, { symbols: false })).table;
    unlinkSync(copy);
    expect(fromFile.length).toBe(inMemory.length);
    for (let i = 0; i < inMemory.length; i += 53) expect(fromFile.get(i)).toEqual(inMemory.get(i));
    fromFile.close();
    // Closed: nothing more is read (a name already read is still known).
    expect(fromFile.get(0)).toEqual(inMemory.get(0));
    expect(fromFile.get(1).name).toBe("");
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

describe.skipIf(!hasCc)("FunctionTable from an odd or corrupt symbol table", () => {
  /** A copy of the C program with one field of one section header changed (sh_offset 24, sh_size 32, sh_link 40, sh_entsize 56). */
  function patched(section: string, field: number, value: bigint): string {
    return patchedCopy(`${section}-${field}-${value}`, (buf, elf) => {
      const header = Number(buf.readBigUInt64LE(0x28)) + elf.sections.findIndex((s) => s.name === section) * buf.readUInt16LE(0x3a);
      if (field === 40) buf.writeUInt32LE(Number(value), header + field);
      else buf.writeBigUInt64LE(value, header + field);
    });
  }

  /** A copy of the C program with a 64-bit field of one function's .symtab entry changed (st_value 8, st_size 16). */
  function patchedSymbol(name: string, field: number, value: bigint): string {
    return patchedCopy(`${name}-${field}-${value}`, (buf, elf) => {
      const symtab = elf.sections.find((s) => s.name === ".symtab")!;
      const strtab = elf.sections[symtab.link]!;
      for (let o = symtab.offset; o < symtab.offset + symtab.size; o += 24) {
        const at = strtab.offset + buf.readUInt32LE(o);
        if (buf.toString("latin1", at, buf.indexOf(0, at)) === name) buf.writeBigUInt64LE(value, o + field);
      }
    });
  }

  function patchedCopy(name: string, patch: (buf: Buffer, elf: ReturnType<typeof parseElf>) => void): string {
    const buf = readFileSync(compiled[0]![1]);
    patch(buf, parseElf(buf));
    const out = join(dir, `patched-${name}`);
    writeFileSync(out, buf);
    return out;
  }

  it.each([
    ["a symbol table past the file's end", patched(".symtab", 32, 1n << 20n), /\.symtab past end of file/],
    ["a symbol table of 2^50 bytes", patched(".symtab", 32, 1n << 50n), /\.symtab past end of file/],
    ["a symbol table starting past the file's end", patched(".symtab", 24, 1n << 40n), /\.symtab past end of file/],
    ["symbols of 7 bytes", patched(".symtab", 56, 7n), /\.symtab: symbols of 7 bytes/],
  ])("%s: an ElfError, read from the file or from memory", async (_, path, message) => {
    await expect(streamed(path)).rejects.toThrow(ElfError);
    await expect(streamed(path)).rejects.toThrow(message);
    const buf = readFileSync(path);
    expect(() => FunctionTable.fromSymbols(buf, parseElf(buf, { symbols: false }))).toThrow(message);
  });

  it.each([
    ["symbols of 0 bytes: taken for 24", patched(".symtab", 56, 0n)],
    ["a string table of 2^40 bytes: names cut at the file's end", patched(".strtab", 32, 1n << 40n)],
    ["a string table starting past the file's end: no names there", patched(".strtab", 24, 1n << 40n)],
    ["a symbol table linked to no section: left out", patched(".symtab", 40, 999n)],
    ["functions 2^40 bytes apart (addresses kept as Float64)", patchedSymbol("twice", 8, 1n << 40n)],
    ["a function of 2^33 bytes (sizes kept as Float64)", patchedSymbol("twice", 16, 1n << 33n)],
  ])("%s, as the object list has it", async (_, path) => {
    const { table } = await streamed(path);
    expect(entries(table)).toEqual(functionsOf(parseElf(readFileSync(path))));
    table.close();
  });
});
