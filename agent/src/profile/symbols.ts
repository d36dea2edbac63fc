// Function names for addresses in a mapped file: the address's offset in the
// file, turned into the ELF's own virtual address by its loadable segments,
// looked up in the function table (.symtab, else .dynsym; for Go, stripped or
// not, .gopclntab where there is no symbol table). Files are read through the
// process (/proc/<pid>/map_files, then /proc/<pid>/root/<path>), so a
// deleted binary or one in a container resolves too, and parsed tables are
// cached per file (device, inode, modification time, size).
import { open, readFile, stat } from "node:fs/promises";
import { release } from "node:os";
import { ElfError, hasGoSections, parseElf, pclntabFunctionsOf, readElfTables, type ElfSegment } from "../debug/elf.ts";
import { FileNames, FunctionTable } from "./function-table.ts";
import { InlineResolver } from "./inline.ts";
import { isFileMapping, isVdso, parseMaps, type Mapping } from "./maps.ts";

export type SymbolSource = "symtab" | "dynsym" | "gopclntab" | "none";

export interface ModuleSymbols {
  /** Sorted by address, with sizes. */
  functions: FunctionTable;
  segments: ElfSegment[];
  source: SymbolSource;
  /** Why there are no symbols (unreadable file, not an ELF, …). */
  error?: string;
  /** Where the file can be read, when it carries DWARF (.debug_info): inlined frames come from there. */
  dwarfPath?: string;
}

/** The ELF virtual address of a byte at `fileOffset` in the file, by its PT_LOAD segments (the offset itself when none holds it). */
export function fileOffsetToVaddr(segments: readonly ElfSegment[], fileOffset: bigint): bigint {
  for (const s of segments) {
    const start = BigInt(s.offset);
    if (fileOffset >= start && fileOffset < start + BigInt(Math.max(s.fileSize, 1))) return fileOffset - start + s.vaddr;
  }
  return fileOffset;
}

/** The offset in the mapped file of the byte at runtime `address` of mapping `m`. */
export function fileOffsetOf(m: Pick<Mapping, "start" | "offset">, address: bigint): bigint {
  return address - m.start + m.offset;
}

/**
 * `file`: the file `buf` was read from, open: its symbol tables are read from
 * it piece by piece and its names stay there (`buf` then needs only its
 * headers: readElfTables(fd, { symbolTables: false })). Without, from `buf`.
 */
export function moduleSymbolsOf(buf: Buffer, file?: FileNames): ModuleSymbols {
  let elf = parseElf(buf, { symbols: false });
  let source: SymbolSource = "none";
  let functions: FunctionTable;
  // Go binaries (a few thousand functions) take the general path: their
  // function table is .gopclntab when the symbol tables are stripped.
  const fromPclntab = hasGoSections(elf.sections) ? pclntabFunctionsOf((elf = parseElf(buf)), buf) : undefined;
  if (fromPclntab) {
    functions = FunctionTable.fromFunctions(fromPclntab);
    source = "gopclntab";
  } else {
    const { table, fromSymtab } = FunctionTable.fromSymbols(file ?? buf, elf);
    functions = table;
    if (table.length > 0) source = fromSymtab ? "symtab" : "dynsym";
  }
  // Names only some symbols have are read from the file; a file without any needs no descriptor.
  if (source === "none" || source === "gopclntab") file?.close();
  // Go before 1.12 named its compressed sections .zdebug_*.
  const has = (name: string) => elf.sections.some((s) => s.name === `.${name}` || s.name === `.z${name}`);
  const hasDwarf = has("debug_info") && has("debug_line");
  return { functions, segments: elf.segments, source, ...(hasDwarf ? { dwarfPath: "" } : {}) };
}

/**
 * The symbols of the ELF file at `path`, all read through one descriptor
 * (headers, then the symbol tables piece by piece, then names when asked), so
 * they come from the very same file even if the path is replaced meanwhile.
 * The build reads synchronously (~0.2 s for node, as parsing did before): one
 * file's arrays at a time, where concurrent builds would add their peaks up.
 */
export async function readModuleSymbols(path: string): Promise<ModuleSymbols> {
  const file = new FileNames(path);
  try {
    return moduleSymbolsOf(await readElfTables(file.descriptor!, { symbolTables: false }), file);
  } catch (err) {
    file.close();
    throw err;
  }
}

export interface SymbolCacheOptions {
  /** Parsed files kept (default 64). */
  maxFiles?: number;
}

/** Parsed function tables per file, shared by every profile of the agent. */
export class SymbolCache {
  /** Inlined frames of files with DWARF, cached per address. */
  readonly inline = new InlineResolver();
  private readonly files = new Map<string, Promise<ModuleSymbols>>();
  private readonly maxFiles: number;

  constructor(options: SymbolCacheOptions = {}) {
    this.maxFiles = options.maxFiles ?? 64;
  }

  /** The symbols of the file mapped at `m` in `pid`; a ModuleSymbols with `error` when it cannot be read. */
  async forMapping(pid: number, m: Mapping): Promise<ModuleSymbols> {
    // The kernel's vDSO (clock_gettime and friends): the same image in every process of this kernel.
    if (isVdso(m)) return this.load(`[vdso]:${release()}:${m.end - m.start}`, async () => moduleSymbolsOf(await readVdso(pid, m)), "[vdso]");
    if (!isFileMapping(m)) return { functions: FunctionTable.empty, segments: [], source: "none", error: `${m.path || "anonymous memory"} is not a file` };
    const reasons: string[] = [];
    for (const path of candidatePaths(pid, m)) {
      let key: string;
      try {
        const st = await stat(path);
        if (!st.isFile()) continue;
        key = `${st.dev}:${st.ino}:${st.mtimeMs}:${st.size}`;
      } catch (err) {
        reasons.push(`${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        continue;
      }
      return this.load(key, () => readModuleSymbols(path), path);
    }
    return { functions: FunctionTable.empty, segments: [], source: "none", error: `cannot read ${m.path} (${reasons.join("; ")})` };
  }

  get size(): number {
    return this.files.size;
  }

  private load(key: string, read: () => Promise<ModuleSymbols>, path: string): Promise<ModuleSymbols> {
    const cached = this.files.get(key);
    if (cached) {
      // Most recently used last.
      this.files.delete(key);
      this.files.set(key, cached);
      return cached;
    }
    const loading = read().then(
      (symbols) => {
        // Named after the path it was read from: the DWARF is read there again, by addr2line.
        if (symbols.dwarfPath !== undefined) symbols.dwarfPath = path;
        return symbols;
      },
      (err: unknown) => {
        if (err instanceof ElfError) return { functions: FunctionTable.empty, segments: [], source: "none" as const, error: `${path}: ${err.message}` };
        // Not cached: the next profile tries again.
        this.files.delete(key);
        return { functions: FunctionTable.empty, segments: [], source: "none" as const, error: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
      },
    );
    this.files.set(key, loading);
    while (this.files.size > this.maxFiles) {
      const oldest = this.files.keys().next().value!;
      // Its file descriptor goes with it (once no profile is still naming its frames: they hold the table, not the descriptor, so late reads answer "").
      void this.files.get(oldest)!.then((s) => s.functions.close());
      this.files.delete(oldest);
    }
    return loading;
  }
}

/**
 * The vDSO image of `pid` (mapping `m`): from its memory, or, once it has
 * exited, from the agent's own vDSO when that is the same size (one kernel,
 * one image).
 */
async function readVdso(pid: number, m: Mapping): Promise<Buffer> {
  try {
    return await readMemory(pid, m.start, m.end);
  } catch (err) {
    const own = parseMaps(await readFile("/proc/self/maps", "utf8")).find(isVdso);
    if (!own || own.end - own.start !== m.end - m.start) throw err;
    return readMemory("self", own.start, own.end);
  }
}

async function readMemory(pid: number | "self", start: bigint, end: bigint): Promise<Buffer> {
  const size = Number(end - start);
  if (size <= 0 || size > 1 << 20) throw new Error(`a vDSO of ${size} bytes`);
  const fh = await open(`/proc/${pid}/mem`, "r");
  try {
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, Number(start));
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Where the file mapped at `m` can be read: the exact mapped file first, then its path as the process sees it, then as the agent does. */
function candidatePaths(pid: number, m: Mapping): string[] {
  return [`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`, `/proc/${pid}/root${m.path}`, ...(m.deleted ? [] : [m.path])];
}
