// A small ELF64 little-endian reader: section headers, .symtab/.dynsym and
// their string tables. Enough to list the functions of an observed process so
// a uprobe can be attached by validated address, without an SDK or DWARF.
import { execFile } from "node:child_process";
import { fstat, read } from "node:fs";
import { open } from "node:fs/promises";
import { promisify } from "node:util";
import { goVersionOf } from "./go-buildinfo.ts";
import { PclntabError, readGoFunctionTable } from "./gopclntab.ts";

export interface ElfSection {
  name: string;
  type: number;
  /** SHF_* (SHF_EXECINSTR = 0x4: code). */
  flags: number;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

export interface ElfSymbol {
  name: string;
  /** ELF symbol value (virtual address in the file, as bpftrace expects). */
  address: bigint;
  size: number;
  type: number;
  bind: number;
  section: number;
  table: ".symtab" | ".dynsym";
}

/** A PT_LOAD program header: how file bytes are placed in memory. */
export interface ElfSegment {
  /** Offset of the segment in the file. */
  offset: number;
  /** Virtual address (in the file's own address space, before any load bias). */
  vaddr: bigint;
  fileSize: number;
  memSize: number;
  /** PF_X = 1, PF_W = 2, PF_R = 4. */
  flags: number;
}

export interface ElfFile {
  type: number; // ET_EXEC = 2, ET_DYN = 3
  machine: number; // EM_X86_64 = 62, EM_AARCH64 = 183
  sections: ElfSection[];
  symbols: ElfSymbol[];
  /** The loadable segments (PT_LOAD), in file order. */
  segments: ElfSegment[];
}

export interface FunctionInfo {
  name: string;
  /** c++filt output for mangled C++ names when demangling was requested and available. */
  demangled?: string;
  address: bigint;
  size: number;
}

export interface FunctionList {
  binary: string;
  isGo: boolean;
  machine: number;
  functions: FunctionInfo[];
  /**
   * Where the functions came from: the ELF symbol tables, or Go's own function
   * table for a Go binary built without them (-ldflags='-s -w'). Absent = symtab.
   */
  symbolSource?: SymbolSource;
  /** Go toolchain version from .go.buildinfo ("go1.19.8"), when it is a Go binary. */
  goVersion?: string;
}

export type SymbolSource = "symtab" | "gopclntab";

export class ElfError extends Error {}

const readAsync = promisify(read);
const fstatAsync = promisify(fstat);

export const SHT_SYMTAB = 2;
export const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const SHN_UNDEF = 0;

/** `symbols: false` reads only the headers (sections, segments): forEachFunctionSymbol then reads the tables without an object per symbol. */
export function parseElf(buf: Buffer, options: { symbols?: boolean } = {}): ElfFile {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new ElfError("not an ELF file");
  if (buf[4] !== 2) throw new ElfError("only ELF64 is supported");
  if (buf[5] !== 1) throw new ElfError("only little-endian ELF is supported");
  const type = buf.readUInt16LE(16);
  const machine = buf.readUInt16LE(18);
  const segments = loadSegments(buf);
  const shoff = num(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  let shnum = buf.readUInt16LE(0x3c);
  let shstrndx = buf.readUInt16LE(0x3e);
  if (shoff === 0) return { type, machine, sections: [], symbols: [], segments };
  if (shentsize < 64) throw new ElfError(`bad section header size ${shentsize}`);
  // Extended numbering: real counts live in section header 0.
  if (shnum === 0) shnum = num(buf.readBigUInt64LE(shoff + 32));
  if (shstrndx === 0xffff) shstrndx = buf.readUInt32LE(shoff + 40);
  if (shoff + shnum * shentsize > buf.length) throw new ElfError("section headers past end of file");

  const raw: (Omit<ElfSection, "name"> & { nameOff: number })[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    raw.push({
      nameOff: buf.readUInt32LE(o),
      type: buf.readUInt32LE(o + 4),
      flags: num(buf.readBigUInt64LE(o + 8)),
      addr: buf.readBigUInt64LE(o + 16),
      offset: num(buf.readBigUInt64LE(o + 24)),
      size: num(buf.readBigUInt64LE(o + 32)),
      link: buf.readUInt32LE(o + 40),
      entsize: num(buf.readBigUInt64LE(o + 56)),
    });
  }
  const shstr = raw[shstrndx];
  const sections: ElfSection[] = raw.map(({ nameOff, ...s }) => ({
    ...s,
    name: shstr ? cstr(buf, shstr.offset, shstr.size, nameOff) : "",
  }));

  const symbols: ElfSymbol[] = [];
  if (options.symbols === false) return { type, machine, sections, symbols, segments };
  for (const s of sections) {
    if (s.type !== SHT_SYMTAB && s.type !== SHT_DYNSYM) continue;
    const strtab = sections[s.link];
    if (!strtab) continue;
    const entsize = s.entsize || 24;
    if (s.offset + s.size > buf.length) throw new ElfError(`${s.name} past end of file`);
    for (let o = s.offset + entsize; o + 24 <= s.offset + s.size; o += entsize) {
      const info = buf[o + 4] ?? 0;
      symbols.push({
        name: cstr(buf, strtab.offset, strtab.size, buf.readUInt32LE(o)),
        type: info & 0xf,
        bind: info >> 4,
        section: buf.readUInt16LE(o + 6),
        address: buf.readBigUInt64LE(o + 8),
        size: num(buf.readBigUInt64LE(o + 16)),
        table: s.type === SHT_SYMTAB ? ".symtab" : ".dynsym",
      });
    }
  }
  return { type, machine, sections, symbols, segments };
}

const PT_LOAD = 1;

/** The PT_LOAD program headers (what a profiler needs to turn a file offset into a virtual address). */
function loadSegments(buf: Buffer): ElfSegment[] {
  const phoff = num(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  if (phoff === 0 || phnum === 0) return [];
  if (phentsize < 56) throw new ElfError(`bad program header size ${phentsize}`);
  if (phoff + phnum * phentsize > buf.length) throw new ElfError("program headers past end of file");
  const out: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (buf.readUInt32LE(o) !== PT_LOAD) continue;
    out.push({
      flags: buf.readUInt32LE(o + 4),
      offset: num(buf.readBigUInt64LE(o + 8)),
      vaddr: buf.readBigUInt64LE(o + 16),
      fileSize: num(buf.readBigUInt64LE(o + 32)),
      memSize: num(buf.readBigUInt64LE(o + 40)),
    });
  }
  return out;
}

/** A file's bytes by position: the file itself (through a descriptor) or a buffer of it. */
export interface ByteSource {
  /** The file's length. */
  readonly size: number;
  /** Reads into `into` from `position` on; how many bytes it read (fewer at the file's end). */
  readAt(into: Buffer, position: number): number;
}

/** A symbol table (.symtab or .dynsym) and the string table its names are in. */
export interface SymbolTable {
  symbols: ElfSection;
  strings: ElfSection;
}

/** Symbols are read this many bytes at a time, into one buffer (reading is synchronous). */
const SYMBOL_CHUNK = 64 * 1024;
const symbolChunk = Buffer.allocUnsafe(SYMBOL_CHUNK);

/**
 * The symbol tables of `elf` in section order, each with its string table,
 * checked against the file's length: a corrupt table is an ElfError before
 * anything is read or allocated for it.
 */
export function symbolTablesOf(elf: ElfFile, fileSize: number): SymbolTable[] {
  const tables: SymbolTable[] = [];
  for (const s of elf.sections) {
    if (s.type !== SHT_SYMTAB && s.type !== SHT_DYNSYM) continue;
    const strings = elf.sections[s.link];
    if (!strings) continue;
    if (s.offset + s.size > fileSize) throw new ElfError(`${s.name} past end of file`);
    if (s.entsize !== 0 && (s.entsize < 24 || s.entsize > SYMBOL_CHUNK)) throw new ElfError(`${s.name}: symbols of ${s.entsize} bytes`);
    tables.push({ symbols: s, strings });
  }
  return tables;
}

/**
 * Every defined function symbol with a size in `table`, as raw fields (its
 * name starts `nameOffset` bytes into the string table), read from `source`
 * 64 KiB at a time: for callers that keep hundreds of thousands of them
 * compactly (no string, bigint or object per symbol, nor the table in memory).
 */
export function forEachFunctionSymbol(
  source: ByteSource,
  { symbols, strings }: SymbolTable,
  visit: (address: number, size: number, nameOffset: number) => void,
): void {
  const entsize = symbols.entsize || 24;
  const chunk = symbolChunk.subarray(0, Math.floor(SYMBOL_CHUNK / entsize) * entsize);
  // A DataView reads a field in one load where Buffer's readers take four.
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.length);
  const end = symbols.offset + symbols.size;
  for (let at = symbols.offset + entsize; at + 24 <= end; at += chunk.length) {
    const n = source.readAt(chunk.subarray(0, Math.min(chunk.length, end - at)), at);
    for (let o = 0; o + 24 <= n; o += entsize) {
      if ((view.getUint8(o + 4) & 0xf) !== STT_FUNC || view.getUint16(o + 6, true) === SHN_UNDEF) continue;
      const size = u64(view, o + 16);
      const nameOffset = view.getUint32(o, true);
      if (size > 0 && nameOffset < strings.size) visit(u64(view, o + 8), size, nameOffset);
    }
  }
}

/** A 64-bit field as Number(readBigUInt64LE) has it (rounded past 2^53), without a bigint. */
function u64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 2 ** 32;
}

/** Defined functions with a size, deduplicated across .symtab and .dynsym, sorted by address. */
export function functionsOf(elf: ElfFile): FunctionInfo[] {
  const seen = new Map<string, FunctionInfo>();
  for (const s of elf.symbols) {
    if (s.type !== STT_FUNC || s.size <= 0 || s.section === SHN_UNDEF || !s.name) continue;
    const key = `${s.name}@${s.address}`;
    if (!seen.has(key)) seen.set(key, { name: s.name, address: s.address, size: s.size });
  }
  return [...seen.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

/**
 * A stripped Go binary's functions from its pclntab (name, entry, size up to
 * the next function), plus the C functions of .dynsym it does not cover (cgo).
 * Undefined when the binary keeps a symbol table: that one has the exact sizes.
 */
export function pclntabFunctionsOf(elf: ElfFile, buf: Buffer): FunctionInfo[] | undefined {
  if (!isGoBinary(elf) || elf.symbols.some((s) => s.table === ".symtab" && s.type === STT_FUNC && s.size > 0)) return undefined;
  let goFns;
  try {
    goFns = readGoFunctionTable(buf, elf.sections)?.functions;
  } catch (err) {
    if (err instanceof PclntabError) throw new ElfError(`stripped Go binary: ${err.message}`);
    throw err;
  }
  if (!goFns) throw new ElfError("stripped Go binary without a function table (.gopclntab)");
  const functions: FunctionInfo[] = goFns.map((f) => ({ name: f.name, address: f.entry, size: Number(f.end - f.entry) }));
  const entries = new Set(functions.map((f) => f.address));
  const cFns = functionsOf(elf).filter((f) => !entries.has(f.address));
  return cFns.length ? [...functions, ...cFns].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)) : functions;
}

export function isGoBinary(elf: ElfFile): boolean {
  return (
    elf.sections.some((s) => s.name === ".go.buildinfo") || elf.symbols.some((s) => s.name === "runtime.main")
  );
}

export interface ListFunctionsOptions {
  /** Case-insensitive substring, or a RegExp tested against the name (and demangled name). */
  pattern?: string | RegExp;
  /** Run c++filt on _Z names when it is installed. */
  demangle?: boolean;
}

const SHT_NOBITS = 8;
const SHF_EXECINSTR = 0x4;
const GO_SECTIONS = new Set([".go.buildinfo", ".gopclntab", ".note.go.buildid"]);

/** Sections only the Go toolchain writes: a Go binary, stripped or not. */
export function hasGoSections(sections: readonly { name: string }[]): boolean {
  return sections.some((s) => GO_SECTIONS.has(s.name));
}

/**
 * An ELF file as parseElf and the function tables need it: a buffer as long
 * as the file with the headers and every section that is neither code nor
 * debug information (symbol and string tables, and Go's function table and
 * build info) read in at their offsets; the rest stays zero. A zero-filled
 * buffer is not resident until written, so listing the symbols of
 * /usr/bin/node (99 MB, most of it code) costs what its tables weigh, not the
 * file. A file without section headers is read whole.
 *
 * `file`: a path, or a descriptor the caller keeps open (and closes).
 * `symbolTables: false` leaves out the symbol and string tables (but for a Go
 * binary): FunctionTable.fromSymbols reads them from the file piece by piece.
 */
export async function readElfTables(file: string | number, options: { symbolTables?: boolean } = {}): Promise<Buffer> {
  const fh: PositionalFile = typeof file === "number" ? onDescriptor(file) : await open(file, "r");
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(size);
    const readAt = async (offset: number, length: number) => {
      if (offset < 0 || length <= 0 || offset >= size) return;
      const n = Math.min(length, size - offset);
      for (let done = 0; done < n; ) {
        const { bytesRead } = await fh.read(buf, offset + done, n - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    };
    await readAt(0, 64);
    if (size < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return buf; // parseElf says what is wrong
    await readAt(num(buf.readBigUInt64LE(0x20)), buf.readUInt16LE(0x36) * buf.readUInt16LE(0x38));
    const shoff = num(buf.readBigUInt64LE(0x28));
    const shentsize = buf.readUInt16LE(0x3a);
    if (shoff === 0 || shentsize < 64) {
      await readAt(0, size);
      return buf;
    }
    // Section headers (header 0 first: it holds the counts of extended numbering), then their names.
    await readAt(shoff, 64);
    const shnum = buf.readUInt16LE(0x3c) || num(buf.readBigUInt64LE(shoff + 32));
    await readAt(shoff, shnum * shentsize);
    const shstrndx = buf.readUInt16LE(0x3e) === 0xffff ? buf.readUInt32LE(shoff + 40) : buf.readUInt16LE(0x3e);
    if (shoff + shnum * shentsize > size) return buf;
    if (shstrndx < shnum) await readAt(num(buf.readBigUInt64LE(shoff + shstrndx * shentsize + 24)), num(buf.readBigUInt64LE(shoff + shstrndx * shentsize + 32)));
    let sections: ElfSection[];
    try {
      ({ sections } = parseElf(buf, { symbols: false }));
    } catch (err) {
      if (err instanceof ElfError) return buf; // parseElf says it again to the caller
      throw err;
    }
    // Go keeps its function table in a data section (.gopclntab, or inside
    // .data.rel.ro when built as PIE); other files need only their symbol
    // tables, if those are not to be read from the file later.
    const isGo = hasGoSections(sections);
    const symbolTables = isGo || options.symbolTables !== false;
    const wanted = new Set<number>();
    sections.forEach((h, i) => {
      if (h.type === SHT_SYMTAB || h.type === SHT_DYNSYM) {
        if (symbolTables) wanted.add(i).add(h.link);
      } else if (isGo && h.type !== SHT_NOBITS && (h.flags & SHF_EXECINSTR) === 0 && !/^\.z?debug/.test(h.name)) wanted.add(i);
    });
    for (const i of wanted) if (sections[i]) await readAt(sections[i].offset, sections[i].size);
    return buf;
  } finally {
    await fh.close();
  }
}

/** What readElfTables reads through: a FileHandle, or a descriptor it does not own. */
interface PositionalFile {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

function onDescriptor(fd: number): PositionalFile {
  return {
    read: (buffer, offset, length, position) => readAsync(fd, buffer, offset, length, position),
    stat: () => fstatAsync(fd),
    close: async () => {},
  };
}

/** Functions of a process (by pid: /proc/<pid>/exe) or of a binary on disk. */
export async function listFunctions(
  target: number | string,
  patternOrOptions?: string | RegExp | ListFunctionsOptions,
): Promise<FunctionList> {
  const opts: ListFunctionsOptions =
    typeof patternOrOptions === "string" || patternOrOptions instanceof RegExp
      ? { pattern: patternOrOptions }
      : (patternOrOptions ?? {});
  const binary = typeof target === "number" ? `/proc/${validPid(target)}/exe` : target;
  let buf: Buffer;
  try {
    buf = await readElfTables(binary);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ElfError(`cannot read ${binary}: ${code ?? String(err)}`);
  }
  const elf = parseElf(buf);
  const fromPclntab = pclntabFunctionsOf(elf, buf);
  let functions = fromPclntab ?? functionsOf(elf);
  if (opts.demangle) await demangleInPlace(functions);
  if (opts.pattern !== undefined) {
    const p = opts.pattern;
    const test =
      typeof p === "string"
        ? (n: string) => n.toLowerCase().includes(p.toLowerCase())
        : (n: string) => p.test(n);
    functions = functions.filter((f) => test(f.name) || (f.demangled !== undefined && test(f.demangled)));
  }
  const isGo = isGoBinary(elf);
  const goVersion = isGo ? goVersionOf(buf, elf.sections) : undefined;
  return {
    binary,
    isGo,
    machine: elf.machine,
    functions,
    symbolSource: fromPclntab ? "gopclntab" : "symtab",
    ...(goVersion ? { goVersion } : {}),
  };
}

/** Up to `limit` names close to `wanted` (substring matches first, then edit distance). */
export function closeMatches(wanted: string, names: readonly string[], limit = 5): string[] {
  const w = wanted.toLowerCase();
  const scored = names.map((n) => {
    const l = n.toLowerCase();
    const score = l.includes(w) || w.includes(l) ? 0 : editDistance(w, l);
    return { n, score };
  });
  const max = Math.max(2, Math.floor(wanted.length / 3));
  return scored
    .filter((s) => s.score <= max)
    .sort((a, b) => a.score - b.score || a.n.length - b.n.length)
    .slice(0, limit)
    .map((s) => s.n);
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 20) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 99;
}

async function demangleInPlace(functions: FunctionInfo[]): Promise<void> {
  const mangled = functions.filter((f) => f.name.startsWith("_Z"));
  if (mangled.length === 0) return;
  const out = await new Promise<string | undefined>((resolve) => {
    const child = execFile("c++filt", [], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
      resolve(err ? undefined : stdout),
    );
    child.stdin?.on("error", () => resolve(undefined));
    child.stdin?.end(mangled.map((f) => f.name).join("\n") + "\n");
  });
  if (out === undefined) return; // c++filt missing: demangling is optional
  const lines = out.split("\n");
  mangled.forEach((f, i) => {
    const d = lines[i];
    if (d && d !== f.name) f.demangled = d;
  });
}

export function validPid(pid: number): number {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new ElfError(`invalid pid ${String(pid)}`);
  return pid;
}

function num(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError("ELF value too large");
  return Number(v);
}

function cstr(buf: Buffer, tabOff: number, tabSize: number, off: number): string {
  if (off >= tabSize) return "";
  const start = tabOff + off;
  let end = start;
  const limit = Math.min(buf.length, tabOff + tabSize);
  while (end < limit && buf[end] !== 0) end++;
  return buf.toString("utf8", start, end);
}
