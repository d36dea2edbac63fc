// Go's function table (.gopclntab), read without Go: the runtime keeps it for
// tracebacks, so it survives `-ldflags='-s -w'`, which removes .symtab and
// DWARF. It names every Go function with its entry PC; a function ends where
// the next one starts. Formats of Go 1.16 and later (see debug/gosym and
// runtime/symtab.go): little-endian, 64-bit pointers only.

/** What this reader needs of an ELF section header (elf.ts's ElfSection fits). */
export interface SectionHeader {
  name: string;
  type: number;
  addr: bigint;
  offset: number;
  size: number;
}

export type PclntabVersion = "go1.16" | "go1.18" | "go1.20";

export interface GoFunction {
  name: string;
  entry: bigint;
  /** First PC after the function: the next function's entry, or the table's end. */
  end: bigint;
  /** Source file and line of the entry PC, when asked for (withLines). */
  file?: string;
  line?: number;
}

export interface Pclntab {
  version: PclntabVersion;
  /** Instruction size quantum (1 on x86). */
  quantum: number;
  functions: GoFunction[];
}

export class PclntabError extends Error {}

const MAGICS: Record<number, PclntabVersion> = {
  0xfffffffa: "go1.16",
  0xfffffff0: "go1.18",
  0xfffffff1: "go1.20",
};
/** Go 1.2–1.15: a different layout this reader does not know. */
const MAGIC_GO12 = 0xfffffffb;

const SHT_PROGBITS = 1;

/** Too many functions for any real binary: a misread header, not a table. */
const MAX_FUNCS = 5_000_000;

/**
 * Parses a pclntab. `textStart` is runtime.text (see runtimeTextOf): Go 1.18+
 * stores entries as offsets from it; Go 1.16 stores absolute entries.
 */
export function parsePclntab(data: Buffer, textStart: bigint, opts: { withLines?: boolean } = {}): Pclntab {
  if (data.length < 8) throw new PclntabError("pclntab too short");
  const magic = data.readUInt32LE(0);
  const version = MAGICS[magic];
  if (version === undefined) {
    if (data.readUInt32BE(0) in MAGICS || data.readUInt32BE(0) === MAGIC_GO12) throw new PclntabError("big-endian pclntab is not supported");
    if (magic === MAGIC_GO12) throw new PclntabError("pclntab of Go 1.2–1.15 is not supported (Go 1.16 or later is needed)");
    throw new PclntabError(`not a Go pclntab (magic 0x${magic.toString(16)})`);
  }
  const quantum = data[6]!;
  const ptrSize = data[7]!;
  if (data[4] !== 0 || data[5] !== 0 || ![1, 2, 4].includes(quantum)) throw new PclntabError("malformed pclntab header");
  if (ptrSize !== 8) throw new PclntabError(`only 64-bit Go binaries are supported (pointer size ${ptrSize})`);

  const go118 = version !== "go1.16";
  const words = go118 ? 8 : 7;
  if (data.length < 8 + words * 8) throw new PclntabError("pclntab header truncated");
  const word = (i: number): number => safeNum(data.readBigUInt64LE(8 + i * 8));
  // Header words: nfunc, nfiles, [textStart (1.18+)], funcname, cu, filetab, pctab, pcln.
  const at = go118 ? 3 : 2;
  const nfunc = word(0);
  const t = {
    funcname: word(at),
    cu: word(at + 1),
    filetab: word(at + 2),
    pctab: word(at + 3),
    pcln: word(at + 4),
  };
  if (nfunc === 0 || nfunc > MAX_FUNCS) throw new PclntabError(`implausible function count ${nfunc}`);
  for (const [k, v] of Object.entries(t)) if (v >= data.length) throw new PclntabError(`pclntab ${k} offset past its end`);

  // Functab: nfunc (entry, funcoff) pairs and one end PC; uint32 offsets from
  // textStart in 1.18+, absolute uintptrs in 1.16.
  const field = go118 ? 4 : 8;
  if (t.pcln + (nfunc * 2 + 1) * field > data.length) throw new PclntabError("functab past the end of the pclntab");
  const pcAt = (i: number): bigint =>
    go118 ? textStart + BigInt(data.readUInt32LE(t.pcln + i * 2 * field)) : data.readBigUInt64LE(t.pcln + i * 2 * field);
  const funcOffAt = (i: number): number =>
    go118 ? data.readUInt32LE(t.pcln + (i * 2 + 1) * field) : safeNum(data.readBigUInt64LE(t.pcln + (i * 2 + 1) * field));

  // _func: entry (uint32 offset in 1.18+, uintptr in 1.16), then nameOff int32.
  const nameField = go118 ? 4 : 8;
  const functions: GoFunction[] = [];
  let prev = -1n;
  for (let i = 0; i < nfunc; i++) {
    const entry = pcAt(i);
    const end = pcAt(i + 1);
    // Unrelocated entries (zeros in a PIE's file image) would show up here.
    if (entry <= prev || end < entry) throw new PclntabError(`functab not sorted at function ${i} (unrelocated position-independent binary?)`);
    prev = entry;
    const fn = t.pcln + funcOffAt(i);
    if (fn + 40 > data.length) throw new PclntabError(`function ${i} record past the end of the pclntab`);
    const name = cstring(data, t.funcname + data.readInt32LE(fn + nameField), t.cu);
    const f: GoFunction = { name, entry, end };
    if (opts.withLines) {
      const pcfile = data.readUInt32LE(fn + nameField + 16);
      const pcln = data.readUInt32LE(fn + nameField + 20);
      const cuOff = data.readUInt32LE(fn + nameField + 28);
      const fileNo = pcfile ? firstValue(data, t.pctab + pcfile) : -1;
      const line = pcln ? firstValue(data, t.pctab + pcln) : -1;
      if (fileNo >= 0) {
        const slot = t.cu + (cuOff + fileNo) * 4;
        if (slot + 4 <= data.length) {
          const off = data.readUInt32LE(slot);
          if (off !== 0xffffffff) f.file = cstring(data, t.filetab + off, t.pctab);
        }
      }
      if (line > 0) f.line = line;
    }
    functions.push(f);
  }
  return { version, quantum, functions };
}

export interface LocatedPclntab {
  /** The table, from its header to the end of its section. */
  data: Buffer;
  /** Its virtual address. */
  addr: bigint;
}

/**
 * The function table of a Go ELF, or undefined when there is none: see
 * findPclntab and runtimeTextOf.
 */
export function readGoFunctionTable(buf: Buffer, sections: readonly SectionHeader[], opts: { withLines?: boolean } = {}): Pclntab | undefined {
  const table = findPclntab(buf, sections);
  if (!table) return undefined;
  return parsePclntab(table.data, runtimeTextOf(buf, sections, table), opts);
}

/**
 * The pclntab of a Go ELF: the section named .gopclntab (also in stripped
 * builds; position-independent ones call it .data.rel.ro.gopclntab), else a
 * scan of the data sections for a header whose table parses.
 */
export function findPclntab(buf: Buffer, sections: readonly SectionHeader[]): LocatedPclntab | undefined {
  const named = sections.find((s) => s.name === ".gopclntab" || s.name.endsWith(".gopclntab"));
  if (named && named.size > 0 && named.offset + named.size <= buf.length) return { data: buf.subarray(named.offset, named.offset + named.size), addr: named.addr };
  for (const s of sections) {
    // Data sections only (PROGBITS, not executable): the magic's bytes also occur in code.
    if (s.type !== SHT_PROGBITS || s.name === ".text" || s.offset + s.size > buf.length) continue;
    const area = buf.subarray(s.offset, s.offset + s.size);
    for (const version of Object.keys(MAGICS).map(Number)) {
      const magic = Buffer.alloc(4);
      magic.writeUInt32LE(version);
      for (let i = area.indexOf(magic); i >= 0; i = area.indexOf(magic, i + 4)) {
        if (i % 8 !== 0 || area[i + 4] !== 0 || area[i + 5] !== 0 || area[i + 7] !== 8) continue;
        const candidate = { data: area.subarray(i), addr: s.addr + BigInt(i) };
        try {
          parsePclntab(candidate.data, runtimeTextOf(buf, sections, candidate));
          return candidate;
        } catch {
          // Not a table: the magic's bytes appeared in other data.
        }
      }
    }
  }
  return undefined;
}

/**
 * runtime.text, which Go 1.18+ entry offsets are relative to. The header
 * holds it; in a position-independent file image that word may be left to a
 * dynamic relocation (R_X86_64_RELATIVE: the value is its addend). .text is
 * the last resort: it is runtime.text only when Go linked alone (cgo builds,
 * linked by the C linker, put C start-up code first).
 */
export function runtimeTextOf(buf: Buffer, sections: readonly SectionHeader[], table: LocatedPclntab): bigint {
  const text = sections.find((s) => s.name === ".text")?.addr ?? 0n;
  if (table.data.length < 32 || table.data.readUInt32LE(0) === 0xfffffffa) return text; // go1.16: absolute entries
  const inHeader = table.data.readBigUInt64LE(24);
  if (inHeader !== 0n) return inHeader;
  return relativeRelocationAt(buf, sections, table.addr + 24n) ?? text;
}

const SHT_RELA = 4;
const R_X86_64_RELATIVE = 8;

function relativeRelocationAt(buf: Buffer, sections: readonly SectionHeader[], addr: bigint): bigint | undefined {
  for (const s of sections) {
    if (s.type !== SHT_RELA || s.offset + s.size > buf.length) continue;
    for (let o = s.offset; o + 24 <= s.offset + s.size; o += 24) {
      if (buf.readBigUInt64LE(o) === addr && (buf.readBigUInt64LE(o + 8) & 0xffffffffn) === BigInt(R_X86_64_RELATIVE)) return buf.readBigInt64LE(o + 16);
    }
  }
  return undefined;
}

/** The value a pc-value table gives the function's entry PC (its first value). */
function firstValue(data: Buffer, off: number): number {
  if (off >= data.length) return -1;
  const { value: uv } = varint(data, off);
  // Values start at -1 and move by zig-zag deltas.
  const delta = uv & 1 ? -((uv + 1) / 2) : uv / 2;
  return -1 + delta;
}

function varint(data: Buffer, off: number): { value: number; next: number } {
  let value = 0;
  let mult = 1;
  for (let p = off; p < data.length && p < off + 5; p++) {
    const b = data[p]!;
    value += (b & 0x7f) * mult;
    if ((b & 0x80) === 0) return { value, next: p + 1 };
    mult *= 128;
  }
  throw new PclntabError("truncated varint in pc-value table");
}

function cstring(data: Buffer, start: number, limit: number): string {
  if (start < 0 || start >= data.length) throw new PclntabError("name offset outside the pclntab");
  let end = start;
  const max = Math.min(data.length, limit > start ? limit : data.length);
  while (end < max && data[end] !== 0) end++;
  return data.toString("utf8", start, end);
}

function safeNum(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PclntabError("pclntab value too large");
  return Number(v);
}
