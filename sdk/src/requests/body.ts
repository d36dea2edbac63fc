/**
 * The first bytes of a body, up to a limit: chunks are kept as they come
 * (response chunks copied, since the app may reuse its buffer), joined only
 * when the request is kept as a sample. `size` counts every byte seen.
 */
export class BodyCapture {
  #chunks: (Buffer | string)[] = [];
  #encodings: (BufferEncoding | undefined)[] = [];
  #kept = 0;
  size = 0;

  constructor(private readonly limit: number) {}

  get truncated(): boolean {
    return this.size > this.#kept;
  }

  add(chunk: unknown, encoding?: unknown, copy = false): void {
    let length: number;
    if (typeof chunk === "string") length = Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
    else if (chunk instanceof Uint8Array) length = chunk.byteLength;
    else return;
    this.size += length;
    const room = this.limit - this.#kept;
    if (room <= 0 || length === 0) return;
    if (typeof chunk === "string") {
      // Strings are immutable: cut when joined.
      this.#chunks.push(chunk);
      this.#encodings.push(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
      this.#kept += Math.min(room, length);
      return;
    }
    const view = length <= room && !copy && Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(room, length));
    this.#chunks.push(copy ? Buffer.from(view) : view);
    this.#encodings.push(undefined);
    this.#kept += view.byteLength;
  }

  /** The kept bytes, at most the limit. */
  bytes(): Buffer {
    const parts = this.#chunks.map((c, i) => (typeof c === "string" ? Buffer.from(c, this.#encodings[i]) : c));
    const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    return all.byteLength > this.limit ? all.subarray(0, this.limit) : all;
  }
}
