// A file's functions, kept compactly for symbolizing profile samples. Node's
// own binary has 85,000 of them: as objects (a name string, a bigint address,
// a size) they weigh ~14 MB of heap, and parsing them made ~30 MB of garbage;
// here they are typed arrays of addresses, sizes and where each name lies,
// built straight from the ELF symbol tables. The names themselves (~8 MB of
// mangled C++ for node) stay in the file: a name is read, through a file
// descriptor that keeps the very file open, only when a sample lands in its
// function.
import { closeSync, openSync, readSync } from "node:fs";
import { forEachFunctionSymbol, SHT_DYNSYM, SHT_SYMTAB, type ElfFile, type FunctionInfo } from "../debug/elf.ts";

/** Where a table's names are read from: [start, end) byte ranges. */
export interface NameSource {
  read(start: number, end: number): string;
  close(): void;
}

/** Names held in memory (Go's function table, a vDSO, tests). */
class BufferNames implements NameSource {
  constructor(private readonly buf: Buffer) {}
  read(start: number, end: number): string {
    return this.buf.toString("utf8", start, end);
  }
  close(): void {}
}

/** Names read from the file when asked, each kept once read (a profile names a few thousand functions at most). */
export class FileNames implements NameSource {
  readonly #read = new Map<number, string>();
  #fd: number | undefined;

  /** Opens `path` now: the descriptor keeps this file readable even if it is replaced or its process exits. */
  constructor(path: string) {
    this.#fd = openSync(path, "r");
  }

  read(start: number, end: number): string {
    const known = this.#read.get(start);
    if (known !== undefined) return known;
    if (this.#fd === undefined) return "";
    const buf = Buffer.allocUnsafe(end - start);
    const n = readSync(this.#fd, buf, 0, buf.length, start);
    const name = buf.toString("utf8", 0, n);
    if (this.#read.size >= 50_000) this.#read.clear();
    this.#read.set(start, name);
    return name;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

export class FunctionTable {
  static readonly empty = new FunctionTable(new Float64Array(0), new Float64Array(0), new Float64Array(0), new Uint32Array(0), new BufferNames(Buffer.alloc(0)));

  /**
   * `addresses` ascending; function i is [addresses[i], addresses[i] + sizes[i]),
   * named by the bytes [nameStarts[i], nameStarts[i] + nameLengths[i]) of `names`.
   */
  private constructor(
    private readonly addresses: Float64Array,
    private readonly sizes: Float64Array,
    private readonly nameStarts: Float64Array,
    private readonly nameLengths: Uint32Array,
    private readonly names: NameSource,
  ) {}

  /** Lets go of the file the names are read from. */
  close(): void {
    this.names.close();
  }

  get length(): number {
    return this.addresses.length;
  }

  /** The function at index i (ascending address). */
  get(i: number): FunctionInfo {
    return {
      name: this.names.read(this.nameStarts[i]!, this.nameStarts[i]! + this.nameLengths[i]!),
      address: BigInt(this.addresses[i]!),
      size: this.sizes[i]!,
    };
  }

  /** The function whose [address, address + size) holds `vaddr`, if any. */
  at(vaddr: bigint): FunctionInfo | undefined {
    const v = Number(vaddr);
    let lo = 0;
    let hi = this.addresses.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.addresses[mid]! <= v) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Symbols may nest or overlap (aliases): look back a little for one that covers it.
    for (let i = best; i >= 0 && i > best - 8; i--) if (v < this.addresses[i]! + this.sizes[i]!) return this.get(i);
    return undefined;
  }

  /** From a list sorted by address (Go's function table, a vDSO). */
  static fromFunctions(functions: readonly FunctionInfo[]): FunctionTable {
    const names = functions.map((f) => Buffer.from(f.name));
    const starts = new Float64Array(functions.length);
    for (let i = 1; i < names.length; i++) starts[i] = starts[i - 1]! + names[i - 1]!.length;
    return new FunctionTable(
      Float64Array.from(functions, (f) => Number(f.address)),
      Float64Array.from(functions, (f) => f.size),
      starts,
      Uint32Array.from(names, (n) => n.length),
      new BufferNames(Buffer.concat(names)),
    );
  }

  /**
   * The defined functions of .symtab and .dynsym (each name at an address
   * once), without an object per symbol. `elf` from parseElf(buf, { symbols: false }).
   * `names`: where the names are read later (offsets are the file's, as in
   * `buf`); default a copy of them in memory.
   */
  static fromSymbols(buf: Buffer, elf: ElfFile, names?: NameSource): { table: FunctionTable; fromSymtab: boolean } {
    // Typed arrays sized by the tables' entry counts, and names compared in
    // place: growing number[]s and a Buffer view per name compared were most
    // of the ~35 MB the agent's RSS jumped by while building node's table.
    const capacity = elf.sections.reduce((n, sec) => (sec.type === SHT_SYMTAB || sec.type === SHT_DYNSYM ? n + Math.floor(sec.size / (sec.entsize || 24)) : n), 0);
    const addr = new Float64Array(capacity);
    const size = new Float64Array(capacity);
    const start = new Float64Array(capacity);
    const end = new Float64Array(capacity);
    let count = 0;
    let fromSymtab = false;
    forEachFunctionSymbol(buf, elf, (a, s, ns, ne, table) => {
      addr[count] = a;
      size[count] = s;
      start[count] = ns;
      end[count] = ne;
      count++;
      if (table === ".symtab") fromSymtab = true;
    });
    const sameName = (x: number, y: number) => end[x]! - start[x]! === end[y]! - start[y]! && buf.compare(buf, start[x]!, end[x]!, start[y]!, end[y]!) === 0;
    // By address; at one address in table order, as functionsOf lists them.
    const order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
    order.sort((x, y) => addr[x]! - addr[y]! || x - y);
    // .symtab and .dynsym list exported functions twice: keep the first of each name@address.
    const kept = new Uint32Array(count);
    let keptCount = 0;
    let group = 0;
    for (const i of order) {
      if (keptCount && addr[kept[keptCount - 1]!] !== addr[i]) group = keptCount;
      let seen = false;
      for (let k = group; k < keptCount && !seen; k++) seen = sameName(kept[k]!, i);
      if (!seen) kept[keptCount++] = i;
    }
    const keptIndexes = kept.subarray(0, keptCount);
    const lengths = Uint32Array.from(keptIndexes, (i) => end[i]! - start[i]!);
    let starts: Float64Array;
    let source = names;
    if (source) starts = Float64Array.from(keptIndexes, (i) => start[i]!);
    else {
      // A copy of just the names, back to back.
      starts = new Float64Array(keptCount);
      for (let k = 1; k < keptCount; k++) starts[k] = starts[k - 1]! + lengths[k - 1]!;
      const copy = Buffer.allocUnsafe(keptCount ? starts[keptCount - 1]! + lengths[keptCount - 1]! : 0);
      keptIndexes.forEach((i, k) => buf.copy(copy, starts[k]!, start[i]!, end[i]!));
      source = new BufferNames(copy);
    }
    const table = new FunctionTable(Float64Array.from(keptIndexes, (i) => addr[i]!), Float64Array.from(keptIndexes, (i) => size[i]!), starts, lengths, source);
    return { table, fromSymtab };
  }
}
