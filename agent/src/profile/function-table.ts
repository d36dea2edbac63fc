// A file's functions, kept compactly for symbolizing profile samples. Node's
// own binary has 85,000 of them: as objects (a name string, a bigint address,
// a size) they weigh ~14 MB of heap, and parsing them made ~30 MB of garbage;
// here they are typed arrays of addresses, sizes and where each name lies,
// built from the ELF symbol tables read piece by piece from the file (reading
// node's ~17 MB of tables at once made the agent's RSS jump by ~30 MB). The
// names themselves (~8 MB of mangled C++ for node) stay in the file: a name is
// read, through a file descriptor that keeps the very file open, only when a
// sample lands in its function.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { forEachFunctionSymbol, SHT_SYMTAB, symbolTablesOf, type ByteSource, type ElfFile, type FunctionInfo, type SymbolTable } from "../debug/elf.ts";

/** Where a table's names are read from: [start, end) byte ranges. */
export interface NameSource {
  read(start: number, end: number): string;
  close(): void;
}

/** A file in memory (Go's function table, a vDSO, tests): its bytes and names. */
class BufferNames implements NameSource, ByteSource {
  constructor(private readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  read(start: number, end: number): string {
    return this.buf.toString("utf8", start, end);
  }
  readAt(into: Buffer, position: number): number {
    return position < this.buf.length ? this.buf.copy(into, 0, position) : 0;
  }
  close(): void {}
}

/** A file read through one descriptor: its bytes, and its names when asked, each kept once read (a profile names a few thousand functions at most). */
export class FileNames implements NameSource, ByteSource {
  readonly #read = new Map<number, string>();
  #fd: number | undefined;
  /** The file's length when it was opened. */
  readonly size: number;

  /** Opens `path` now: the descriptor keeps this file readable even if it is replaced or its process exits. */
  constructor(path: string) {
    const fd = openSync(path, "r");
    try {
      this.size = fstatSync(fd).size;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.#fd = fd;
  }

  /** The open descriptor (undefined once closed): the headers are read through it too, so that all comes from one file. */
  get descriptor(): number | undefined {
    return this.#fd;
  }

  readAt(into: Buffer, position: number): number {
    let done = 0;
    while (this.#fd !== undefined && done < into.length) {
      const n = readSync(this.#fd, into, done, into.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  read(start: number, end: number): string {
    const known = this.#read.get(start);
    if (known !== undefined) return known;
    if (this.#fd === undefined) return "";
    const buf = Buffer.allocUnsafe(end - start);
    const name = buf.toString("utf8", 0, this.readAt(buf, start));
    if (this.#read.size >= 50_000) this.#read.clear();
    this.#read.set(start, name);
    return name;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/** Uint32 where every value fits (most files), Float64 where one may not. */
type Numbers = Float64Array | Uint32Array;

export class FunctionTable {
  static readonly empty = new FunctionTable(new Float64Array(0), new Float64Array(0), new Float64Array(0), new Uint32Array(0), new BufferNames(Buffer.alloc(0)));

  /**
   * `addresses` ascending; function i is [addresses[i], addresses[i] + sizes[i]),
   * named by the bytes [nameStarts[i], nameStarts[i] + nameLengths[i]) of `names`.
   */
  private constructor(
    private readonly addresses: Float64Array,
    private readonly sizes: Numbers,
    private readonly nameStarts: Numbers,
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
   * once), without an object per symbol, nor the tables in memory. `elf`
   * from parseElf(buf, { symbols: false }) of the same file. From a FileNames
   * the tables are read in pieces and the names stay in the file; from a
   * buffer, the names kept are copied out of it.
   */
  static fromSymbols(file: FileNames | Buffer, elf: ElfFile): { table: FunctionTable; fromSymtab: boolean } {
    const source = Buffer.isBuffer(file) ? new BufferNames(file) : file;
    const symbols = new FunctionSymbols(source, elf);
    const kept = symbols.keepFirstOfEachName();
    const { addresses, sizes, starts, lengths } = symbols.kept(kept);
    const names = source instanceof BufferNames ? copyNames(source, starts, lengths) : { names: source, starts };
    return { table: new FunctionTable(addresses, sizes, names.starts, lengths, names.names), fromSymtab: symbols.fromSymtab() };
  }
}

/** Just the names of a table, back to back (not the whole file). */
function copyNames(source: ByteSource, starts: Numbers, lengths: Uint32Array): { names: BufferNames; starts: Float64Array } {
  const copied = new Float64Array(lengths.length);
  for (let k = 1; k < lengths.length; k++) copied[k] = copied[k - 1]! + lengths[k - 1]!;
  const copy = Buffer.allocUnsafe(lengths.length ? copied.at(-1)! + lengths.at(-1)! : 0);
  lengths.forEach((length, k) => source.readAt(copy.subarray(copied[k]!, copied[k]! + length), starts[k]!));
  return { names: new BufferNames(copy), starts: copied };
}

/** Names are read this many bytes at a time. */
const WINDOW = 64 * 1024;
/** How much of a name its hash covers (a longer one is told apart from another by comparing the two). */
const HASHED = 1024;
/** Names are compared this many bytes at a time. */
const PIECE = 16 * 1024;

/** Entry indexes [first, first + count) came from this symbol table; their names are in [names, limit) of the file. */
interface TableEntries {
  table: SymbolTable;
  first: number;
  count: number;
  names: number;
  limit: number;
}

/**
 * A file's function symbols while its table is built: typed arrays indexed
 * by entry (table order), ~36 bytes an entry (node: 153,000 entries, 5.5 MB).
 */
class FunctionSymbols {
  readonly #source: ByteSource;
  readonly #tables: TableEntries[];
  readonly #count: number;
  #wideSizes = false;
  /** Subtracted from every address kept: Uint32 offsets from the lowest where they span less than 4 GiB (any one file's functions do). */
  readonly #base: number;
  /** By entry. */
  readonly #entryAddresses: Numbers;
  readonly #sizes: Numbers;
  /** Each distinct address once, sorted (the first #distinct). */
  readonly #addresses: Numbers;
  #distinct = 0;
  /** Where each address's entries end in #order; then where its entries kept end. */
  #ends = new Uint32Array(0);
  /**
   * Where each entry's address is among the distinct ones; once sorted by,
   * the entry each duplicate duplicates (plus 1); then where each entry kept
   * went in the table (plus 1).
   */
  readonly #ranks: Uint32Array;
  readonly #nameOffsets: Uint32Array;
  readonly #lengths: Uint32Array;
  /** Of each name's first bytes. */
  readonly #hashes: Uint32Array;
  /** Entries by name, then by address; then the entries kept. */
  readonly #order: Uint32Array;

  constructor(source: ByteSource, elf: ElfFile) {
    this.#source = source;
    // Counted first, so that every array is just as long as it needs; then
    // read once more to fill them (two passes: in baseline code, which is
    // all the agent runs, each costs ~40 ms for node's 153,000 entries).
    let n = 0;
    let [low, high] = [Infinity, -Infinity];
    this.#tables = symbolTablesOf(elf, source.size).map((table) => {
      const first = n;
      forEachFunctionSymbol(source, table, (address, size) => {
        n++;
        low = Math.min(low, address);
        high = Math.max(high, address);
        if (size >= 2 ** 32) this.#wideSizes = true;
      });
      return { table, first, count: n - first, names: table.strings.offset, limit: Math.min(table.strings.offset + table.strings.size, source.size) };
    });
    this.#count = n;
    const narrow = high - low < 2 ** 32;
    this.#base = narrow ? low : 0;
    this.#entryAddresses = narrow ? new Uint32Array(n) : new Float64Array(n);
    this.#sizes = this.#wideSizes ? new Float64Array(n) : new Uint32Array(n);
    this.#nameOffsets = new Uint32Array(n);
    let i = 0;
    for (const t of this.#tables)
      forEachFunctionSymbol(source, t.table, (address, size, nameOffset) => {
        this.#entryAddresses[i] = address - this.#base;
        this.#sizes[i] = size;
        this.#nameOffsets[i++] = nameOffset;
      });
    this.#addresses = this.#entryAddresses.slice();
    this.#lengths = new Uint32Array(n);
    this.#hashes = new Uint32Array(n);
    this.#ranks = new Uint32Array(n);
    this.#order = new Uint32Array(n);
    const [window, past] = [new Window(source, WINDOW + HASHED), new Window(source, WINDOW)];
    for (const t of this.#tables) this.#measureNames(t, window, past);
    this.#sortAddresses();
    this.#rank();
  }

  fromSymtab(): boolean {
    return this.#tables.some((t) => t.table.symbols.type === SHT_SYMTAB && this.#lengths.subarray(t.first, t.first + t.count).some((length) => length > 0));
  }

  /**
   * Keeps the first of each name at each address (.symtab and .dynsym list
   * exported functions twice), names told apart by length and hash, then the
   * duplicates checked byte for byte; should a hash have collided, again
   * comparing every name outright. Returns how many are kept.
   */
  keepFirstOfEachName(): number {
    const kept = this.#keep(
      (x, y) => this.#lengths[x] === this.#lengths[y] && this.#hashes[x] === this.#hashes[y],
      (y, x) => (this.#ranks[y] = x + 1),
    );
    const compare = new NameComparer(this.#source);
    const sameName = (x: number, y: number) => this.#lengths[x] === this.#lengths[y] && compare.same(this.#nameStart(x), this.#nameStart(y), this.#lengths[y]!);
    // In table order: both string tables are then read mostly in order (a few thousand windows for node).
    for (let y = 0; y < this.#count; y++) {
      const x = this.#ranks[y]! - 1;
      if (x >= 0 && !sameName(x, y)) {
        this.#rank();
        return this.#keep(sameName);
      }
    }
    return kept;
  }

  /** The table of the `kept` entries of #order. */
  kept(kept: number): { addresses: Float64Array; sizes: Numbers; starts: Numbers; lengths: Uint32Array } {
    const addresses = new Float64Array(kept);
    for (let r = 0, k = 0; r < this.#distinct; r++) for (; k < this.#ends[r]!; k++) addresses[k] = this.#base + this.#addresses[r]!;
    const lengths = new Uint32Array(kept);
    const starts = this.#source.size > 2 ** 32 ? new Float64Array(kept) : new Uint32Array(kept);
    const place = this.#ranks.fill(0);
    for (let k = 0; k < kept; k++) {
      const i = this.#order[k]!;
      lengths[k] = this.#lengths[i]!;
      starts[k] = this.#nameStart(i);
      place[i] = k + 1;
    }
    const sizes = this.#wideSizes ? new Float64Array(kept) : new Uint32Array(kept);
    for (let i = 0; i < this.#count; i++) if (place[i]! > 0) sizes[place[i]! - 1] = this.#sizes[i]!;
    return { addresses, sizes, starts, lengths };
  }

  /**
   * Each name's length (up to its NUL, or the string table's end) and the
   * hash of its first bytes: the entries are taken by which window of the
   * string table their name starts in, so each window is read once.
   */
  #measureNames(t: TableEntries, window: Window, past: Window): void {
    const windows = Math.max(0, Math.ceil((t.limit - t.names) / WINDOW)) + 1;
    const ends = new Uint32Array(windows);
    countingSort(this.#order.subarray(0, t.count), ends, (visit) => {
      for (let i = t.first; i < t.first + t.count; i++) visit(i, Math.min(Math.floor(this.#nameOffsets[i]! / WINDOW), windows - 1));
    });
    const nul = new NulFinder(past, t.limit);
    for (let w = 0, k = 0; w < windows; w++) {
      if (k < ends[w]!) window.load(t.names + w * WINDOW);
      for (; k < ends[w]!; k++) this.#measureName(this.#order[k]!, t, window, nul);
    }
  }

  #measureName(i: number, t: TableEntries, window: Window, nul: NulFinder): void {
    const start = t.names + this.#nameOffsets[i]!;
    if (start >= t.limit) return; // length 0: no name
    const at = start - window.start;
    // TypedArray's own indexOf, a builtin: Buffer's goes through JavaScript first.
    const found = indexOfByte.call(window.bytes, 0, at);
    // A name running past the window ends where the window's last one does.
    const end = Math.max(start, Math.min(found >= 0 ? window.start + found : nul.from(window.end), t.limit));
    this.#lengths[i] = end - start;
    this.#hashes[i] = nameHash(window.view, at, Math.min(at + HASHED, end - window.start, window.bytes.length));
  }

  /** Each distinct address once, sorted: the keys of the order by address. */
  #sortAddresses(): void {
    const sorted = this.#addresses.sort();
    let m = 0;
    for (let i = 0; i < sorted.length; i++) if (m === 0 || sorted[i] !== sorted[m - 1]) sorted[m++] = sorted[i]!;
    this.#distinct = m;
    this.#ends = new Uint32Array(m);
  }

  #rank(): void {
    const distinct = this.#addresses.subarray(0, this.#distinct);
    for (let i = 0; i < this.#count; i++) this.#ranks[i] = lowerBound(distinct, this.#entryAddresses[i]!);
  }

  /**
   * Keeps, in #order, each named entry that is not `same` as one kept before
   * it at its address; #ends then says where each address's kept entries end.
   */
  #keep(same: (kept: number, entry: number) => boolean, duplicate?: (entry: number, kept: number) => void): number {
    // By address; at one address in table order, as functionsOf lists them.
    countingSort(this.#order, this.#ends, (visit) => this.#ranks.forEach((rank, i) => visit(i, rank)));
    this.#ranks.fill(0);
    let kept = 0;
    for (let r = 0, j = 0; r < this.#distinct; r++) {
      const group = kept;
      for (; j < this.#ends[r]!; j++) {
        const i = this.#order[j]!;
        if (this.#lengths[i] === 0) continue;
        let k = group;
        while (k < kept && !same(this.#order[k]!, i)) k++;
        if (k === kept) this.#order[kept++] = i;
        else duplicate?.(i, this.#order[k]!);
      }
      this.#ends[r] = kept;
    }
    return kept;
  }

  #nameStart(i: number): number {
    let t = 0;
    while (i >= this.#tables[t]!.first + this.#tables[t]!.count) t++;
    return this.#tables[t]!.names + this.#nameOffsets[i]!;
  }
}

/**
 * Fills `order` with the entries `each` visits, by key (0 ≤ key < ends.length)
 * and, at one key, in the order visited: a counting sort, without a
 * comparison or an object per entry. `each` is called twice and must visit
 * the same entries; after, ends[key] is where that key's entries end.
 */
function countingSort(order: Uint32Array, ends: Uint32Array, each: (visit: (entry: number, key: number) => void) => void): void {
  ends.fill(0);
  each((_, key) => ends[key]!++);
  for (let key = 0, start = 0; key < ends.length; key++) {
    const count = ends[key]!;
    ends[key] = start;
    start += count;
  }
  each((entry, key) => (order[ends[key]!++] = entry));
}

/** The index of the first of `sorted` that is not below `value`. */
function lowerBound(sorted: Numbers, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const indexOfByte = Uint8Array.prototype.indexOf;

/**
 * FNV-1a over the bytes [start, end) of `view`, four at a time (a quarter of
 * the steps of a byte-wise hash in baseline code): names at one address with
 * one length and hash are then compared byte for byte.
 */
export function nameHash(view: DataView, start: number, end: number): number {
  let h = 0x811c9dc5;
  let i = start;
  for (; i + 4 <= end; i += 4) h = Math.imul(h ^ view.getInt32(i, true), 0x01000193);
  for (; i < end; i++) h = Math.imul(h ^ view.getUint8(i), 0x01000193);
  return h >>> 0;
}

/** Some bytes of a source, read again from wherever they are wanted next. */
class Window {
  readonly #buf: Buffer;
  /** The bytes held, from `start`: fewer than the window's size at the file's end. */
  bytes: Buffer = Buffer.alloc(0);
  /** Over the window's whole buffer (the bytes held are its first). */
  readonly view: DataView;
  start = 0;

  constructor(
    private readonly source: ByteSource,
    size: number,
  ) {
    this.#buf = Buffer.allocUnsafe(size);
    this.view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.length);
  }

  get end(): number {
    return this.start + this.bytes.length;
  }

  load(position: number): void {
    this.start = position;
    this.bytes = this.#buf.subarray(0, this.source.readAt(this.#buf, position));
  }

  /** Where the bytes [position, position + length) are in `bytes` (length at most the window's size), read when they are not held; -1 past the file's end. */
  at(position: number, length: number): number {
    if (position < this.start || position + length > this.end) this.load(position);
    return position + length <= this.end ? position - this.start : -1;
  }
}

/**
 * The first NUL from a position on, up to `limit`. The last one found is
 * kept: every name starting between the position asked and it ends there, so
 * the names running past each window of a string table read it once in all.
 */
class NulFinder {
  #from = Infinity;
  #nul = -1;

  constructor(
    private readonly window: Window,
    private readonly limit: number,
  ) {}

  from(position: number): number {
    if (position >= this.#from && position <= this.#nul) return this.#nul;
    let at = position;
    for (; at < this.limit; at = this.window.end) {
      this.window.load(at);
      const found = this.window.bytes.indexOf(0);
      if (found >= 0) return this.#found(position, at + found);
      if (this.window.bytes.length === 0) break;
    }
    return this.#found(position, Math.min(at, this.limit));
  }

  #found(from: number, nul: number): number {
    this.#from = from;
    this.#nul = nul;
    return nul;
  }
}

/** Compares names of a source through a window for each side. */
class NameComparer {
  readonly #a: Window;
  readonly #b: Window;

  constructor(source: ByteSource) {
    this.#a = new Window(source, PIECE);
    this.#b = new Window(source, PIECE);
  }

  /** Whether the `length` bytes at x and at y are the same. */
  same(x: number, y: number, length: number): boolean {
    if (x === y) return true;
    for (let done = 0; done < length; done += PIECE) {
      const n = Math.min(PIECE, length - done);
      const i = this.#a.at(x + done, n);
      const j = this.#b.at(y + done, n);
      if (i < 0 || j < 0 || this.#a.bytes.compare(this.#b.bytes, j, j + n, i, i + n) !== 0) return false;
    }
    return true;
  }
}
