// One reader process: a child `node` running reader-source.ts over the store
// file, one request at a time. A process, not a worker thread: SQLite runs a
// statement in one native call that a worker's terminate() cannot interrupt
// (a worker stuck in an endless query would keep a CPU busy and hold the
// agent's exit), while SIGKILL ends a process at once. Its JavaScript heap is
// capped (--max-old-space-size); SQLite's own memory is not (better-sqlite3 is
// built without memory accounting: heap-limit pragmas do nothing), but what a
// query takes is the reader's, not the agent's, and so is an out-of-memory end.
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { QueryError, readOnlyRefusal, type RefusalReason } from "./errors.ts";
import { readerSource } from "./reader-source.ts";

export type ReaderRequest = { op: "query"; sql: string; maxRows: number; maxBytes: number } | { op: "schema" };

type Answer = { id: number; ok: true; value: unknown } | { id: number; ok: false; kind: string; reason?: RefusalReason; code?: string; message: string };

/** SQLite codes that say the file cannot be read now, not that the SQL is wrong. */
const unreadable = /^SQLITE_(BUSY|LOCKED|IOERR|CORRUPT|CANTOPEN|NOTADB|PERM)/;

// Small, as the agent's own connection's (storage/store.ts): the kernel caches the file.
const cacheKib = 2_048;
const busyMs = 2_000;

export class ReaderProcess {
  readonly #child: ChildProcess;
  readonly #heapMb: number;
  #pending: { id: number; resolve(value: unknown): void; reject(err: Error): void } | undefined;
  #lastId = 0;
  #stderr = "";
  readonly #exit: Promise<void>;
  #exited = false;

  /** `heapMb`: the process's JavaScript heap, MiB. */
  constructor(storePath: string, heapMb: number) {
    this.#heapMb = heapMb;
    const config = {
      driver: createRequire(import.meta.url).resolve("better-sqlite3"),
      file: storePath,
      busyMs,
      cacheKib,
    };
    // NODE_OPTIONS may load the app's instrumentation or tsx: the reader needs neither.
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    this.#child = spawn(process.execPath, [`--max-old-space-size=${heapMb}`, "-e", readerSource, JSON.stringify(config)], {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      serialization: "advanced",
      env,
    });
    this.#child.stderr!.on("data", (b: Buffer) => (this.#stderr = (this.#stderr + b.toString()).slice(-4096)));
    this.#child.on("message", (m: Answer) => this.#answer(m));
    this.#exit = new Promise((resolve) => {
      const ended = (err: Error) => {
        if (this.#exited) return;
        this.#exited = true;
        this.#pending?.reject(err);
        this.#pending = undefined;
        resolve();
      };
      this.#child.on("exit", (code, signal) => ended(this.#died(code, signal)));
      this.#child.on("error", (err) => ended(new QueryError("unavailable", `cannot start the query reader: ${err.message}`, { cause: err })));
    });
    this.#idle();
  }

  get alive(): boolean {
    return !this.#exited;
  }

  request(req: ReaderRequest): Promise<unknown> {
    if (this.#exited) return Promise.reject(new QueryError("unavailable", "the query reader has ended"));
    if (this.#pending) return Promise.reject(new Error("ReaderProcess: one request at a time"));
    const id = ++this.#lastId;
    return new Promise((resolve, reject) => {
      this.#pending = { id, resolve, reject };
      this.#child.ref();
      (this.#child.channel as { ref?(): void } | undefined)?.ref?.();
      this.#child.send({ id, ...req }, (err) => {
        if (err) void this.kill();
      });
    });
  }

  /** Ends the process at once (a pending request rejects); resolves when it has exited. */
  kill(): Promise<void> {
    if (this.#exited) return this.#exit;
    // Held until the exit is seen, or a caller awaiting it would find nothing keeping the process alive.
    this.#child.ref();
    this.#child.kill("SIGKILL");
    return this.#exit;
  }

  #answer(m: Answer): void {
    const pending = this.#pending;
    if (!pending || m.id !== pending.id) return;
    this.#pending = undefined;
    this.#idle();
    if (m.ok) pending.resolve(m.value);
    else pending.reject(queryError(m));
  }

  /** Between requests the reader holds neither the agent's event loop nor its exit. */
  #idle(): void {
    this.#child.unref();
    (this.#child.channel as { unref?(): void } | undefined)?.unref?.();
  }

  #died(code: number | null, signal: NodeJS.Signals | null): QueryError {
    if (/heap out of memory|Reached heap limit/i.test(this.#stderr))
      return new QueryError(
        "limit",
        `the query needed more memory than its reader may use (${this.#heapMb} MiB): ask for fewer rows or shorter values (LIMIT, substr())`,
      );
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const last = this.#stderr.trim().split("\n").pop();
    return new QueryError("limit", `the query's reader process ended (${how})${last ? `: ${last}` : ""}`);
  }
}

function queryError(m: Extract<Answer, { ok: false }>): QueryError {
  const sqliteCode = m.code;
  switch (m.kind) {
    case "refused":
      return readOnlyRefusal(m.reason ?? "not-reader");
    case "empty":
      return new QueryError("invalid", "sql: holds no statement, only comments or whitespace");
    case "unavailable":
      return new QueryError("unavailable", `cannot read the agent's store: ${m.message}`, { sqliteCode });
  }
  if (sqliteCode === "SQLITE_NOMEM") return new QueryError("limit", `SQLite ran out of memory for the query: narrow it (WHERE, LIMIT)`, { sqliteCode });
  if (sqliteCode && unreadable.test(sqliteCode)) return new QueryError("unavailable", `cannot read the agent's store now: ${m.message}`, { sqliteCode });
  return new QueryError("invalid", m.message, { sqliteCode });
}
