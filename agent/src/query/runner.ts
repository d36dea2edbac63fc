// QueryRunner: read-only SQL over the agent store's file for `coral query
// --agent`, off the agent's event loop. Queries run one at a time in a reader
// process (reader-process.ts) that opened the file read-only; the rest wait
// their turn. A query's timeout covers its wait and its run: over it, a
// running query's process is killed (the next query starts a new one), a
// waiting one leaves the line. An idle reader ends after a while.
import { QueryError, readOnlyRefusal } from "./errors.ts";
import { ReaderProcess, type ReaderRequest } from "./reader-process.ts";
import { statementKeyword } from "./statement.ts";

export interface QueryRunnerOptions {
  /** The store's SQLite file (the agent keeps it open and writing: WAL). */
  storePath: string;
  /** Cell text (UTF-8 bytes) a result holds at most; over it the result is cut, truncatedBy "bytes". Default 4 MiB. */
  maxBytes?: number;
  /** The reader process's JavaScript heap, MiB; over it the reader dies and the query fails (kind "limit"). Default 64. */
  heapMb?: number;
  /** An idle reader process ends after this long. Default 30 s. */
  idleMs?: number;
  /** Queries that may wait for their turn; more are refused (kind "limit"). Default 8. */
  maxWaiting?: number;
}

export interface ReadQuery {
  /** One statement that SQLite classifies as a read-only reader. */
  sql: string;
  /** Rows returned at most; more make the result truncated, truncatedBy "rows". */
  maxRows: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface QueryColumnInfo {
  name: string;
  /** The declared type (INTEGER, TEXT, …); for an expression, the first value's storage class; "" when every value is NULL. */
  type: string;
}

export interface QueryResult {
  columns: QueryColumnInfo[];
  /** Cells as text (see reader-source.ts); null is SQL NULL. */
  rows: (string | null)[][];
  truncated: boolean;
  truncatedBy: "" | "rows" | "bytes";
  /** Time SQLite took to prepare and read, ms. */
  elapsedMs: number;
}

export interface QueryTableInfo {
  name: string;
  columns: QueryColumnInfo[];
}

export const defaultMaxBytes = 4 * 1024 * 1024;

interface Job {
  request: ReaderRequest;
  timeoutMs: number;
  state: "waiting" | "running" | "done";
  settle(err: Error | undefined, value?: unknown): void;
}

export class QueryRunner implements AsyncDisposable {
  readonly #storePath: string;
  readonly #maxBytes: number;
  readonly #heapMb: number;
  readonly #idleMs: number;
  readonly #maxWaiting: number;
  readonly #waiting: Job[] = [];
  #running: Job | undefined;
  #reader: ReaderProcess | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: QueryRunnerOptions) {
    this.#storePath = options.storePath;
    this.#maxBytes = options.maxBytes ?? defaultMaxBytes;
    this.#heapMb = options.heapMb ?? 64;
    this.#idleMs = options.idleMs ?? 30_000;
    this.#maxWaiting = options.maxWaiting ?? 8;
  }

  /** Runs one read-only statement; rejects with a QueryError. */
  async query(q: ReadQuery): Promise<QueryResult> {
    if (statementKeyword(q.sql) === "PRAGMA") throw readOnlyRefusal("pragma");
    const request: ReaderRequest = { op: "query", sql: q.sql, maxRows: q.maxRows, maxBytes: this.#maxBytes };
    return (await this.#submit(request, q.timeoutMs, q.signal)) as QueryResult;
  }

  /** The store's tables (not SQLite's own) and their columns, by name. */
  async schema(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<QueryTableInfo[]> {
    return (await this.#submit({ op: "schema" }, options.timeoutMs ?? 10_000, options.signal)) as QueryTableInfo[];
  }

  /** Refuses new queries, fails waiting and running ones, and ends the reader process. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    const stopped = this.#stopReader();
    for (const job of [...this.#waiting, ...(this.#running ? [this.#running] : [])]) this.#end(job, closedError());
    await stopped;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #submit(request: ReaderRequest, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(cancelledError());
    if (this.#waiting.length >= this.#maxWaiting)
      return Promise.reject(new QueryError("limit", `${this.#waiting.length} queries are already waiting on this agent; try again shortly`));
    return new Promise((resolve, reject) => {
      const job: Job = { request, timeoutMs, state: "waiting", settle: () => undefined };
      const timer = setTimeout(() => this.#end(job, timeoutError(job)), timeoutMs);
      const onAbort = () => this.#end(job, cancelledError());
      signal?.addEventListener("abort", onAbort, { once: true });
      job.settle = (err, value) => {
        job.state = "done";
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(value);
      };
      this.#waiting.push(job);
      this.#next();
    });
  }

  /** Ends a job before its answer (timeout, cancel, close): a running one takes its reader process with it. */
  #end(job: Job, err: QueryError): void {
    if (job.state === "done") return;
    if (job.state === "running") {
      this.#running = undefined;
      void this.#stopReader();
    } else {
      this.#waiting.splice(this.#waiting.indexOf(job), 1);
    }
    job.settle(err);
    this.#next();
  }

  #next(): void {
    if (this.#running || this.#closed) return;
    const job = this.#waiting.shift();
    if (!job) return this.#armIdle();
    clearTimeout(this.#idleTimer);
    job.state = "running";
    this.#running = job;
    if (!this.#reader?.alive) this.#reader = new ReaderProcess(this.#storePath, this.#heapMb);
    this.#reader.request(job.request).then(
      (value) => this.#finish(job, undefined, value),
      (err: Error) => this.#finish(job, err),
    );
  }

  #finish(job: Job, err: Error | undefined, value?: unknown): void {
    if (job.state !== "running") return;
    this.#running = undefined;
    job.settle(err, value);
    this.#next();
  }

  #armIdle(): void {
    clearTimeout(this.#idleTimer);
    if (!this.#reader) return;
    this.#idleTimer = setTimeout(() => void this.#stopReader(), this.#idleMs).unref();
  }

  #stopReader(): Promise<void> {
    const reader = this.#reader;
    this.#reader = undefined;
    return reader?.kill() ?? Promise.resolve();
  }
}

function timeoutError(job: Job): QueryError {
  return new QueryError(
    "timeout",
    job.state === "running"
      ? `the query ran past its ${job.timeoutMs} ms timeout and was stopped: narrow it (WHERE on an indexed time column, LIMIT) or allow more time (up to 60000 ms)`
      : `the query waited ${job.timeoutMs} ms behind other queries on this agent without starting; try again shortly`,
  );
}

const cancelledError = () => new QueryError("cancelled", "the query was cancelled");
const closedError = () => new QueryError("unavailable", "the agent's query runner is closed (the agent is stopping)");
