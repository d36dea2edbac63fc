import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { closeMatches, functionsOf, isGoBinary, listFunctions, parseElf, pclntabFunctionsOf, readElfTables } from "./elf.ts";
import { compileTarget, onPath } from "./testing.ts";

const hasGcc = onPath("gcc");
if (!hasGcc) console.log("elf.test: skipping ELF tests on the compiled target: gcc not installed");

describe.skipIf(!hasGcc)("ELF symbol parser on the compiled C target", () => {
  const bin = hasGcc ? compileTarget() : "";

  it("parses headers, sections and symbols", () => {
    const elf = parseElf(readFileSync(bin));
    expect(elf.machine).toBe(62);
    expect([2, 3]).toContain(elf.type);
    const names = elf.sections.map((s) => s.name);
    for (const n of [".text", ".symtab", ".strtab", ".dynsym", ".dynstr"]) expect(names).toContain(n);
    expect(isGoBinary(elf)).toBe(false);
  });

  it.each([
    ["validate_card", true],
    ["unused_helper", true],
    ["main", true],
    ["usleep", false], // undefined import: no size, not listed
  ])("function %s listed: %s", (name, listed) => {
    const fns = functionsOf(parseElf(readFileSync(bin)));
    const f = fns.find((x) => x.name === name);
    expect(Boolean(f)).toBe(listed);
    if (f) {
      expect(f.size).toBeGreaterThan(0);
      expect(f.address).toBeGreaterThan(0n);
    }
  });

  it("matches nm's addresses and sizes", async () => {
    if (!onPath("nm")) return console.log("nm missing: address cross-check skipped");
    const { execFileSync } = await import("node:child_process");
    const nm = execFileSync("nm", ["-S", "--defined-only", bin], { encoding: "utf8" });
    const line = nm.split("\n").find((l) => l.endsWith(" validate_card"))!;
    const [addr, size] = line.split(" ");
    const f = (await listFunctions(bin, "validate")).functions;
    expect(f.map((x) => x.name)).toEqual(["validate_card"]);
    expect(f[0]!.address).toBe(BigInt(`0x${addr}`));
    expect(f[0]!.size).toBe(Number(`0x${size}`));
  });

  it("rejects non-ELF input", () => {
    expect(() => parseElf(Buffer.from("#!/bin/sh\necho hi\n".padEnd(80)))).toThrow(/not an ELF/);
  });

  it("suggests close matches", () => {
    expect(closeMatches("validate_crd", ["main", "validate_card", "unused_helper"])).toEqual(["validate_card"]);
    expect(closeMatches("ValidateCard", ["validate_card", "main"])).toContain("validate_card");
  });
});

describe("reading only the tables", () => {
  // Node's own binary: ~99 MB, most of it code (.text) and constants (.rodata).
  it("finds the same functions in Node's binary as a whole read, without reading its code", async () => {
    const whole = readFileSync(process.execPath);
    const sparse = await readElfTables(process.execPath);
    expect(sparse.length).toBe(whole.length);
    const [a, b] = [parseElf(sparse), parseElf(whole)];
    expect(functionsOf(a)).toEqual(functionsOf(b));
    expect(functionsOf(a).length).toBeGreaterThan(1000);
    const text = a.sections.find((s) => s.name === ".text")!;
    expect(whole.subarray(text.offset, text.offset + 4096).some((x) => x !== 0)).toBe(true);
    expect(sparse.subarray(text.offset, text.offset + text.size).every((x) => x === 0)).toBe(true);
  });

  it("leaves the symbol and string tables out when asked (the function table reads them from the file), through a descriptor too", async () => {
    const whole = readFileSync(process.execPath);
    const fd = openSync(process.execPath, "r");
    try {
      const headers = await readElfTables(fd, { symbolTables: false });
      expect(headers.length).toBe(whole.length);
      const { sections } = parseElf(headers, { symbols: false });
      expect(sections).toEqual(parseElf(whole, { symbols: false }).sections);
      for (const name of [".symtab", ".strtab", ".dynsym", ".dynstr"]) {
        const s = sections.find((x) => x.name === name)!;
        expect(whole.subarray(s.offset, s.offset + s.size).some((x) => x !== 0)).toBe(true);
        expect(headers.subarray(s.offset, s.offset + s.size).every((x) => x === 0)).toBe(true);
      }
    } finally {
      closeSync(fd);
    }
  });

  const goBinary = ["/usr/bin/webhook", "/usr/sbin/nats-server", "/usr/bin/nats-server"].find((p) => existsSync(p));
  if (!goBinary) console.log("elf.test: skipping the Go binary case: neither Debian's webhook nor nats-server is installed");
  it.skipIf(!goBinary)("finds the same functions in a stripped Go binary from Debian (its function table is data)", async () => {
    const whole = readFileSync(goBinary!);
    const sparse = await readElfTables(goBinary!);
    const [a, b] = [parseElf(sparse), parseElf(whole)];
    const fromSparse = pclntabFunctionsOf(a, sparse) ?? functionsOf(a);
    expect(fromSparse.length).toBeGreaterThan(1000);
    expect(fromSparse).toEqual(pclntabFunctionsOf(b, whole) ?? functionsOf(b));
  });
});
