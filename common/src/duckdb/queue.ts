// The one way Coral's stores talk to DuckDB: a connection behind a FIFO queue.
// A store has one writer (every write goes through it, one at a time, in
// arrival order) and readers with their own queues, so queries never wait
// behind a long DELETE. Readers see committed data.
import type { DuckDBInstance } from "@duckdb/node-api";
import type { Conn } from "./sql.ts";

/** Runs one task at a time, in order; a task's error goes to its caller only. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    this.#pending++;
    const result = this.#tail.then(task).finally(() => {
      this.#pending--;
    });
    // The chain only orders tasks; it swallows their errors (the caller gets them).
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once everything queued so far has settled. */
  async drain(): Promise<void> {
    await this.#tail;
  }
}

/** A connection behind a queue. The writer also rolls back whatever a failed task left open. */
export class QueuedConnection {
  readonly #conn: Conn;
  readonly #queue = new SerialQueue();
  readonly #rollbackOnError: boolean;

  private constructor(conn: Conn, rollbackOnError: boolean) {
    this.#conn = conn;
    this.#rollbackOnError = rollbackOnError;
  }

  static async open(instance: DuckDBInstance, role: "writer" | "reader"): Promise<QueuedConnection> {
    const conn = await instance.connect();
    try {
      await conn.run("SET TimeZone = 'UTC'");
    } catch (err) {
      conn.closeSync();
      throw err;
    }
    return new QueuedConnection(conn, role === "writer");
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.#queue.pending;
  }

  run<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    return this.#queue.run(async () => {
      try {
        return await fn(this.#conn);
      } catch (err) {
        // A failed task must not leave a transaction open for the next one.
        if (this.#rollbackOnError) {
          try {
            await this.#conn.run("ROLLBACK");
          } catch {
            // no transaction was open (the usual case)
          }
        }
        throw err;
      }
    });
  }

  drain(): Promise<void> {
    return this.#queue.drain();
  }

  closeSync(): void {
    try {
      this.#conn.closeSync();
    } catch {
      // already closed
    }
  }
}
