// The Go version a binary was built with, from its .go.buildinfo section
// (kept by `-s -w`): what `go version <binary>` prints. It tells whether
// arguments travel in registers (the register ABI, Go 1.17+ on amd64).
import type { SectionHeader } from "./gopclntab.ts";

const MAGIC = Buffer.from("\xff Go buildinf:", "latin1");

/** "go1.19.8", or undefined when the binary has no readable build info. */
export function goVersionOf(buf: Buffer, sections: readonly SectionHeader[]): string | undefined {
  const s = sections.find((x) => x.name === ".go.buildinfo");
  if (!s || s.offset + s.size > buf.length || s.size < 32) return undefined;
  const info = buf.subarray(s.offset, s.offset + s.size);
  if (!info.subarray(0, 14).equals(MAGIC)) return undefined;
  const ptrSize = info[14]!;
  const flags = info[15]!;
  if (flags & 1 || ptrSize !== 8) return undefined; // big-endian or 32-bit: not read here
  if (flags & 2) {
    // Go 1.18+: length-prefixed strings inline after the 32-byte header.
    const { value: len, next } = uvarint(info, 32);
    return next + len <= info.length ? info.toString("utf8", next, next + len) : undefined;
  }
  // Go 1.16–1.17: a pointer to a Go string header (data pointer, length).
  const header = atAddress(buf, sections, info.readBigUInt64LE(16), 16);
  if (!header) return undefined;
  const len = Number(header.readBigUInt64LE(8));
  const text = len > 0 && len < 256 ? atAddress(buf, sections, header.readBigUInt64LE(0), len) : undefined;
  return text?.toString("utf8");
}

/** Whether Go passes integer arguments in registers (ABIInternal, Go 1.17+ on amd64). */
export function hasRegisterAbi(version: string | undefined): boolean {
  const m = /^go(\d+)\.(\d+)/.exec(version ?? "");
  if (!m) return true; // unknown: assume a current toolchain
  return Number(m[1]) > 1 || Number(m[2]) >= 17;
}

function atAddress(buf: Buffer, sections: readonly SectionHeader[], addr: bigint, len: number): Buffer | undefined {
  const s = sections.find((x) => x.addr > 0n && addr >= x.addr && addr + BigInt(len) <= x.addr + BigInt(x.size) && x.type !== 8 /* NOBITS */);
  if (!s) return undefined;
  const off = s.offset + Number(addr - s.addr);
  return off + len <= buf.length ? buf.subarray(off, off + len) : undefined;
}

function uvarint(data: Buffer, off: number): { value: number; next: number } {
  let value = 0;
  let mult = 1;
  for (let p = off; p < data.length && p < off + 5; p++) {
    const b = data[p]!;
    value += (b & 0x7f) * mult;
    if ((b & 0x80) === 0) return { value, next: p + 1 };
    mult *= 128;
  }
  return { value: 0, next: data.length + 1 };
}
