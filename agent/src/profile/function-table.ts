// A file's functions, kept compactly for symbolizing profile samples. Node's
// own binary has 85,000 of them: as objects (a name string, a bigint address,
// a size) they weigh ~14 MB of heap, and parsing them made ~30 MB of garbage;
// here they are three typed arrays and one buffer of names (~8 MB), built
// straight from the ELF symbol tables, and a name becomes a string only when a
// sample lands in its function.
import { forEachFunctionSymbol, type ElfFile, type FunctionInfo } from "../debug/elf.ts";

export class FunctionTable {
  static readonly empty = new FunctionTable(new Float64Array(0), new Float64Array(0), new Uint32Array(1), Buffer.alloc(0));

  /**
   * `addresses` ascending; function i is [addresses[i], addresses[i] + sizes[i]),
   * named by names[nameEnds[i] .. nameEnds[i + 1]) (nameEnds[0] = 0).
   */
  private constructor(
    private readonly addresses: Float64Array,
    private readonly sizes: Float64Array,
    private readonly nameEnds: Uint32Array,
    private readonly names: Buffer,
  ) {}

  get length(): number {
    return this.addresses.length;
  }

  /** The function at index i (ascending address). */
  get(i: number): FunctionInfo {
    return {
      name: this.names.toString("utf8", this.nameEnds[i]!, this.nameEnds[i + 1]!),
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
    const nameEnds = new Uint32Array(functions.length + 1);
    names.forEach((n, i) => (nameEnds[i + 1] = nameEnds[i]! + n.length));
    return new FunctionTable(
      Float64Array.from(functions, (f) => Number(f.address)),
      Float64Array.from(functions, (f) => f.size),
      nameEnds,
      Buffer.concat(names),
    );
  }

  /**
   * The defined functions of .symtab and .dynsym (each name at an address
   * once), without an object per symbol. `elf` from parseElf(buf, { symbols: false }).
   */
  static fromSymbols(buf: Buffer, elf: ElfFile): { table: FunctionTable; fromSymtab: boolean } {
    const addr: number[] = [];
    const size: number[] = [];
    const start: number[] = [];
    const end: number[] = [];
    let fromSymtab = false;
    forEachFunctionSymbol(buf, elf, (a, s, ns, ne, table) => {
      addr.push(a);
      size.push(s);
      start.push(ns);
      end.push(ne);
      if (table === ".symtab") fromSymtab = true;
    });
    const name = (i: number) => buf.subarray(start[i]!, end[i]!);
    // By address; at one address in table order (a stable sort), as functionsOf lists them.
    const order = Array.from(addr.keys()).sort((x, y) => addr[x]! - addr[y]!);
    // .symtab and .dynsym list exported functions twice: keep the first of each name@address.
    const kept: number[] = [];
    let group = 0;
    for (const i of order) {
      if (kept.length && addr[kept[kept.length - 1]!] !== addr[i]) group = kept.length;
      let seen = false;
      for (let k = group; k < kept.length && !seen; k++) seen = name(kept[k]!).equals(name(i));
      if (!seen) kept.push(i);
    }
    const nameEnds = new Uint32Array(kept.length + 1);
    kept.forEach((i, k) => (nameEnds[k + 1] = nameEnds[k]! + end[i]! - start[i]!));
    const names = Buffer.allocUnsafe(nameEnds[kept.length]!);
    kept.forEach((i, k) => buf.copy(names, nameEnds[k]!, start[i]!, end[i]!));
    const table = new FunctionTable(Float64Array.from(kept, (i) => addr[i]!), Float64Array.from(kept, (i) => size[i]!), nameEnds, names);
    return { table, fromSymtab };
  }
}
