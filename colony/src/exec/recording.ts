// A `coral shell` session recorded as asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/):
// a JSON header line, then one [seconds, code, text] line per event: "o"
// output, "i" input, "r" resize ("COLSxROWS"). The file is the colony's
// owner's only (0600, in a 0700 folder): input holds whatever was typed.
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { StringDecoder } from "node:string_decoder";

export class RecordingFullError extends Error {
  override name = "RecordingFullError";
}

export class ShellRecorder {
  readonly #file: FileHandle;
  readonly #started = performance.now();
  readonly #decoders = { o: new StringDecoder("utf8"), i: new StringDecoder("utf8") };
  readonly #maxBytes: number;
  #bytes = 0;
  /** Writes in the order they were asked for. */
  #chain: Promise<void> = Promise.resolve();

  private constructor(file: FileHandle, maxBytes: number) {
    this.#file = file;
    this.#maxBytes = maxBytes;
  }

  static async create(path: string, header: { cols: number; rows: number; title: string }, maxBytes: number): Promise<ShellRecorder> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const file = await open(path, "wx", 0o600);
    const recorder = new ShellRecorder(file, maxBytes);
    await recorder.#append(`${JSON.stringify({ version: 2, width: header.cols, height: header.rows, timestamp: Math.floor(Date.now() / 1000), title: header.title, env: { TERM: "xterm-256color" } })}\n`);
    return recorder;
  }

  get bytes(): number {
    return this.#bytes;
  }

  output(data: Uint8Array): Promise<void> {
    return this.#event("o", this.#decoders.o.write(Buffer.from(data)));
  }

  input(data: Uint8Array): Promise<void> {
    return this.#event("i", this.#decoders.i.write(Buffer.from(data)));
  }

  resize(cols: number, rows: number): Promise<void> {
    return this.#event("r", `${cols}x${rows}`);
  }

  /** Throws RecordingFullError once the file would pass its cap (the caller ends the session: nothing runs unrecorded). */
  #event(code: "o" | "i" | "r", text: string): Promise<void> {
    if (text === "") return this.#chain;
    const seconds = Math.round(performance.now() - this.#started) / 1000;
    return this.#append(`${JSON.stringify([seconds, code, text])}\n`);
  }

  #append(line: string): Promise<void> {
    const size = Buffer.byteLength(line);
    if (this.#bytes + size > this.#maxBytes) return Promise.reject(new RecordingFullError(`the session's recording reached its cap of ${this.#maxBytes} bytes`));
    this.#bytes += size;
    this.#chain = this.#chain.then(() => this.#file.appendFile(line));
    return this.#chain;
  }

  async close(): Promise<void> {
    await this.#chain.catch(() => undefined);
    await this.#file.close();
  }
}
