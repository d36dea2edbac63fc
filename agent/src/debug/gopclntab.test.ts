// The pclntab reader against the Go toolchain: a program built twice from one
// source, once with a symbol table and once with -ldflags='-s -w'; the
// stripped build's function table must agree with `go tool nm` of its twin.
// Go 1.16 and 1.20 layouts (no such toolchain here) are checked on tables
// written by the test.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listFunctions, parseElf } from "./elf.ts";
import { goVersionOf, hasRegisterAbi } from "./go-buildinfo.ts";
import { findPclntab, parsePclntab, PclntabError, readGoFunctionTable, runtimeTextOf, type PclntabVersion } from "./gopclntab.ts";
import { onPath } from "./testing.ts";

const hasGo = onPath("go");
if (!hasGo) console.log("gopclntab.test: skipping the tests on real Go binaries: go not installed (apt-get install golang-go)");

const SOURCE = `package main

import (
	"fmt"
	"os"
)

//go:noinline
func Price(n int) int {
	return n * 3
}

type cart struct{ items []int }

//go:noinline
func (c *cart) Total() int {
	t := 0
	for _, i := range c.items {
		t += Price(i)
	}
	return t
}

func main() {
	c := &cart{items: []int{len(os.Args), 2}}
	fmt.Println(c.Total())
}
`;

function goBuild(dir: string, out: string, flags: string[]): string {
  const bin = join(dir, out);
  execFileSync("go", ["build", ...flags, "-o", bin, "."], {
    cwd: dir,
    env: { ...process.env, GOFLAGS: "-mod=mod", GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "coral-go-cache"), GOPATH: process.env.GOPATH ?? join(tmpdir(), "coral-gopath") },
  });
  return bin;
}

/** `go tool nm` text symbols: "name@address" (asm functions carry an .abi0 suffix there, not in pclntab). */
function nmText(bin: string): { names: Set<string>; addresses: Set<bigint> } {
  const names = new Set<string>();
  const addresses = new Set<bigint>();
  for (const line of execFileSync("go", ["tool", "nm", bin], { encoding: "utf8", maxBuffer: 64 << 20 }).split("\n")) {
    const m = /^\s*([0-9a-f]+) [Tt] (.+)$/.exec(line);
    if (!m) continue;
    const addr = BigInt(`0x${m[1]}`);
    names.add(`${m[2]!.replace(/\.abi0$/, "")}@${addr}`);
    addresses.add(addr);
  }
  return { names, addresses };
}

function tableOf(bin: string, withLines = false) {
  const buf = readFileSync(bin);
  const elf = parseElf(buf);
  const table = readGoFunctionTable(buf, elf.sections, { withLines });
  expect(table).toBeDefined();
  return { elf, buf, table: table! };
}

describe.skipIf(!hasGo)("pclntab of real Go binaries", () => {
  const dir = hasGo ? mkdtempSync(join(tmpdir(), "coral-pclntab-")) : "";
  if (hasGo) {
    writeFileSync(join(dir, "go.mod"), "module coral.test/pclntab\n\ngo 1.17\n");
    writeFileSync(join(dir, "main.go"), SOURCE);
  }
  const full = hasGo ? goBuild(dir, "full", []) : "";
  const stripped = hasGo ? goBuild(dir, "stripped", ["-ldflags=-s -w"]) : "";
  const goVersion = hasGo ? execFileSync("go", ["env", "GOVERSION"], { encoding: "utf8" }).trim() : "";

  it("the stripped build really has no symbol table, and keeps .gopclntab", () => {
    const elf = parseElf(readFileSync(stripped));
    expect(elf.sections.map((s) => s.name)).not.toContain(".symtab");
    expect(elf.sections.map((s) => s.name)).toContain(".gopclntab");
  });

  it("lists every main.* function of the unstripped twin at the same address", () => {
    const { table } = tableOf(stripped);
    const nm = nmText(full);
    const mainOf = (xs: Iterable<string>) => [...xs].filter((x) => x.startsWith("main.")).sort();
    const fromTable = mainOf(table.functions.map((f) => `${f.name}@${f.entry}`));
    expect(fromTable).toEqual(mainOf(nm.names));
    expect(fromTable.map((x) => x.split("@")[0])).toEqual(expect.arrayContaining(["main.Price", "main.(*cart).Total", "main.main"]));
  });

  it("every table entry is a text symbol of the twin, and nearly all names agree", () => {
    const { table } = tableOf(stripped);
    const nm = nmText(full);
    expect(table.functions.length).toBeGreaterThan(1000);
    for (const f of table.functions) expect(nm.addresses.has(f.entry)).toBe(true);
    // The linker shortens some generated names in the table (type..eq.[5]T is type..eq.[...]T).
    const same = table.functions.filter((f) => nm.names.has(`${f.name}@${f.entry}`)).length;
    expect(same / table.functions.length).toBeGreaterThan(0.99);
  });

  it("ends each function where the next begins, covering the twin's symbol size", () => {
    const { table, elf } = tableOf(stripped);
    const fs = table.functions;
    for (let i = 0; i + 1 < fs.length; i++) expect(fs[i]!.end).toBe(fs[i + 1]!.entry);
    const text = elf.sections.find((s) => s.name === ".text")!;
    expect(fs[fs.length - 1]!.end <= text.addr + BigInt(text.size)).toBe(true);
    const sym = parseElf(readFileSync(full)).symbols.find((s) => s.name === "main.Price" && s.table === ".symtab")!;
    const price = fs.find((f) => f.name === "main.Price")!;
    expect(price.entry).toBe(sym.address);
    expect(Number(price.end - price.entry)).toBeGreaterThanOrEqual(sym.size);
    expect(Number(price.end - price.entry)).toBeLessThan(sym.size + 64); // alignment padding only
  });

  it("gives the file and line of each entry, as go tool objdump does", () => {
    const { table } = tableOf(stripped, true);
    // "TEXT main.Price(SB) /dir/main.go" then "  main.go:10  0x480fc0 ...": the entry's line.
    const dump = execFileSync("go", ["tool", "objdump", "-s", "^main\\.", full], { encoding: "utf8" });
    const expected = [...dump.matchAll(/^TEXT (\S+)\(SB\) (\S+)\n\s+\S+:(\d+)\s/gm)].map((m) => ({ name: m[1], file: m[2], line: Number(m[3]) }));
    expect(expected.length).toBeGreaterThanOrEqual(3);
    for (const e of expected) {
      const f = table.functions.find((x) => x.name === e.name)!;
      expect({ name: f.name, file: f.file, line: f.line }).toEqual(e);
    }
    expect(expected.find((e) => e.name === "main.Price")).toEqual({ name: "main.Price", file: join(dir, "main.go"), line: SOURCE.split("\n").indexOf("\treturn n * 3") + 1 });
  });

  it("listFunctions takes a stripped Go binary's functions from the pclntab, an unstripped one's from .symtab", async () => {
    const s = await listFunctions(stripped, "main.");
    expect(s.isGo).toBe(true);
    expect(s.symbolSource).toBe("gopclntab");
    expect(s.goVersion).toBe(goVersion);
    const u = await listFunctions(full, "main.");
    expect(u.symbolSource).toBe("symtab");
    expect(u.goVersion).toBe(goVersion);
    const byName = (l: typeof s) => new Map(l.functions.filter((f) => f.name.startsWith("main.")).map((f) => [f.name, f.address]));
    expect(byName(s)).toEqual(byName(u));
    expect(byName(s).size).toBeGreaterThanOrEqual(3);
  });

  it("finds the table of a position-independent build, and by its magic when the section is renamed", { timeout: 120_000 }, () => {
    const pie = goBuild(dir, "pie", ["-buildmode=pie", "-ldflags=-s -w"]);
    const { table } = tableOf(pie);
    const nmPie = nmText(goBuild(dir, "pie-full", ["-buildmode=pie"]));
    const price = table.functions.find((f) => f.name === "main.Price")!;
    expect(nmPie.names.has(`main.Price@${price.entry}`)).toBe(true);

    const buf = Buffer.from(readFileSync(stripped));
    const at = buf.indexOf(Buffer.from(".gopclntab\0"));
    expect(at).toBeGreaterThan(0);
    buf.write(".renamedtab", at, "latin1");
    const elf = parseElf(buf);
    expect(elf.sections.some((s) => s.name.endsWith("gopclntab"))).toBe(false);
    const found = readGoFunctionTable(buf, elf.sections)!;
    expect(findPclntab(buf, elf.sections)!.addr).toBe(parseElf(readFileSync(stripped)).sections.find((s) => s.name === ".gopclntab")!.addr);
    expect(found.functions.map((f) => `${f.name}@${f.entry}`)).toEqual(tableOf(stripped).table.functions.map((f) => `${f.name}@${f.entry}`));
  });

  it("reads the Go version from .go.buildinfo", () => {
    const buf = readFileSync(stripped);
    expect(goVersionOf(buf, parseElf(buf).sections)).toBe(goVersion);
  });
});

const CGO_SOURCE = `package main

// static int twice(int x) { return 2 * x; }
import "C"

import "fmt"

//go:noinline
func Twice(n int) int { return int(C.twice(C.int(n))) }

func main() { fmt.Println(Twice(21)) }
`;

// A cgo build is linked by the C linker: C start-up code opens .text, so
// runtime.text (what entry offsets count from) is not where .text starts.
describe.skipIf(!hasGo || !onPath("gcc"))("pclntab of a stripped cgo binary", () => {
  it("places every main.* function where the unstripped twin's symbol table does", () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-pclntab-cgo-"));
    writeFileSync(join(dir, "go.mod"), "module coral.test/cgo\n\ngo 1.17\n");
    writeFileSync(join(dir, "main.go"), CGO_SOURCE);
    const full = goBuild(dir, "full", []);
    const stripped = goBuild(dir, "stripped", ["-ldflags=-s -w"]);
    const { table, elf } = tableOf(stripped);
    const text = elf.sections.find((s) => s.name === ".text")!.addr;
    expect(table.functions[0]!.entry).toBeGreaterThan(text);
    const mainOf = (xs: Iterable<string>) => [...xs].filter((x) => x.startsWith("main.")).sort();
    const fromTable = mainOf(table.functions.map((f) => `${f.name}@${f.entry}`));
    expect(fromTable.map((x) => x.split("@")[0])).toContain("main.Twice");
    expect(fromTable).toEqual(mainOf(nmText(full).names));
  }, 180_000);

  it("finds the table of an externally linked PIE, whose .gopclntab the C linker merged into .data.rel.ro", () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-pclntab-epie-"));
    writeFileSync(join(dir, "go.mod"), "module coral.test/epie\n\ngo 1.17\n");
    writeFileSync(join(dir, "main.go"), SOURCE);
    const flags = ["-buildmode=pie", "-ldflags=-linkmode=external"];
    const full = goBuild(dir, "full", flags);
    const stripped = goBuild(dir, "stripped", [flags[0]!, "-ldflags=-s -w -linkmode=external"]);
    expect(parseElf(readFileSync(stripped)).sections.some((s) => s.name.endsWith("gopclntab"))).toBe(false);
    const { table } = tableOf(stripped);
    const mainOf = (xs: Iterable<string>) => [...xs].filter((x) => x.startsWith("main.")).sort();
    const fromTable = mainOf(table.functions.map((f) => `${f.name}@${f.entry}`));
    expect(fromTable.map((x) => x.split("@")[0])).toEqual(["main.(*cart).Total", "main.Price", "main.main"]);
    expect(fromTable).toEqual(mainOf(nmText(full).names));

    // Linkers that leave relocated words zero in the file (lld does by default):
    // runtime.text is then the addend of the word's R_X86_64_RELATIVE relocation.
    const buf = Buffer.from(readFileSync(stripped));
    const elf = parseElf(buf);
    const located = findPclntab(buf, elf.sections)!;
    const at = buf.indexOf(located.data.subarray(0, 64));
    const runtimeText = located.data.readBigUInt64LE(24);
    expect(runtimeText).not.toBe(0n);
    buf.writeBigUInt64LE(0n, at + 24);
    expect(runtimeTextOf(buf, elf.sections, findPclntab(buf, elf.sections)!)).toBe(runtimeText);
    expect(mainOf(readGoFunctionTable(buf, elf.sections)!.functions.map((f) => `${f.name}@${f.entry}`))).toEqual(fromTable);
  }, 180_000);
});

/** A minimal pclntab in the layout of `version`: two functions, one file. */
function synthetic(version: PclntabVersion, textStart: bigint, funcs: { name: string; off: number; line: number }[], endOff: number): Buffer {
  const go118 = version !== "go1.16";
  const header = 8 + (go118 ? 8 : 7) * 8;
  const names = Buffer.concat(funcs.map((f) => Buffer.from(`${f.name}\0`)));
  const cu = Buffer.alloc(4); // file 0 of CU 0 → filetab offset 0
  const filetab = Buffer.from("x.go\0");
  // pc-value tables: [pad] then, per function, pcfile (file 0) and pcln (line): first value, pc delta, end.
  const zz = (v: number) => (v < 0 ? -2 * v - 1 : 2 * v);
  const pct: number[] = [0];
  const pcOffs = funcs.map((f) => {
    const file = pct.length;
    pct.push(zz(0 - -1), 1, 0);
    const line = pct.length;
    pct.push(zz(f.line - -1), 1, 0);
    return { file, line };
  });
  const pctab = Buffer.from(pct);
  const field = go118 ? 4 : 8;
  const ftabSize = (funcs.length * 2 + 1) * field;
  const funcSize = 48;
  const pcln = Buffer.alloc(ftabSize + funcs.length * funcSize);
  const put = (o: number, v: bigint | number) => (go118 ? pcln.writeUInt32LE(Number(v), o) : pcln.writeBigUInt64LE(BigInt(v), o));
  let nameOff = 0;
  funcs.forEach((f, i) => {
    const rec = ftabSize + i * funcSize;
    put(i * 2 * field, go118 ? f.off : textStart + BigInt(f.off));
    put((i * 2 + 1) * field, rec);
    const nf = go118 ? 4 : 8;
    if (go118) pcln.writeUInt32LE(f.off, rec);
    else pcln.writeBigUInt64LE(textStart + BigInt(f.off), rec);
    pcln.writeInt32LE(nameOff, rec + nf);
    pcln.writeUInt32LE(pcOffs[i]!.file, rec + nf + 16);
    pcln.writeUInt32LE(pcOffs[i]!.line, rec + nf + 20);
    nameOff += Buffer.byteLength(f.name) + 1;
  });
  put(funcs.length * 2 * field, go118 ? endOff : textStart + BigInt(endOff));
  const h = Buffer.alloc(header);
  h.writeUInt32LE({ "go1.16": 0xfffffffa, "go1.18": 0xfffffff0, "go1.20": 0xfffffff1 }[version], 0);
  h[6] = 1;
  h[7] = 8;
  const offs = [header, header + names.length, header + names.length + cu.length, header + names.length + cu.length + filetab.length];
  const pclnAt = offs[3]! + pctab.length;
  const words = [funcs.length, 1, ...(go118 ? [Number(textStart)] : []), ...offs, pclnAt];
  words.forEach((w, i) => h.writeBigUInt64LE(BigInt(w), 8 + i * 8));
  return Buffer.concat([h, names, cu, filetab, pctab, pcln]);
}

describe("pclntab layouts and refusals", () => {
  const text = 0x401000n;
  const funcs = [
    { name: "main.a", off: 0x20, line: 7 },
    { name: "main.(*T).b", off: 0x60, line: 12 },
  ];

  it.each(["go1.16", "go1.18", "go1.20"] as const)("reads the %s layout", (version) => {
    const t = parsePclntab(synthetic(version, text, funcs, 0x90), text, { withLines: true });
    expect(t.version).toBe(version);
    expect(t.functions).toEqual([
      { name: "main.a", entry: 0x401020n, end: 0x401060n, file: "x.go", line: 7 },
      { name: "main.(*T).b", entry: 0x401060n, end: 0x401090n, file: "x.go", line: 12 },
    ]);
  });

  it("refuses what it cannot read, saying why", () => {
    const good = synthetic("go1.18", text, funcs, 0x90);
    const with_ = (f: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      f(b);
      return () => parsePclntab(b, text);
    };
    expect(with_((b) => b.writeUInt32LE(0xfffffffb, 0))).toThrow(/Go 1\.2–1\.15 is not supported/);
    expect(with_((b) => b.writeUInt32BE(0xfffffff0, 0))).toThrow(/big-endian/);
    expect(with_((b) => (b[7] = 4))).toThrow(/only 64-bit/);
    expect(with_((b) => b.writeUInt32LE(0x12345678, 0))).toThrow(PclntabError);
    expect(() => parsePclntab(good.subarray(0, 40), text)).toThrow(/truncated/);
    // An entry out of order: what an unrelocated table looks like.
    const unsorted = synthetic("go1.16", text, [funcs[1]!, funcs[0]!], 0x90);
    expect(() => parsePclntab(unsorted, text)).toThrow(/not sorted/);
  });

  it("tells the register ABI from the Go version", () => {
    expect(hasRegisterAbi("go1.16.15")).toBe(false);
    expect(hasRegisterAbi("go1.17")).toBe(true);
    expect(hasRegisterAbi("go1.22.1")).toBe(true);
    expect(hasRegisterAbi(undefined)).toBe(true);
  });
});
