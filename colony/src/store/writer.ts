// The single writer: one DuckDB connection and a FIFO queue in front of it.
// Every write in the store goes through write(); tasks run one at a time in
// arrival order; a task's error goes to its caller and the queue carries on.
import type { DuckDBInstance } from "@duckdb/node-api";
import { SerialQueue } from "./queue.ts";
import type { Conn } from "./sql.ts";

export class Writer {
  readonly #conn: Conn;
  readonly #queue = new SerialQueue();

  private constructor(conn: Conn) {
    this.#conn = conn;
  }

  static async open(instance: DuckDBInstance): Promise<Writer> {
    const conn = await instance.connect();
    await conn.run("SET TimeZone = 'UTC'");
    return new Writer(conn);
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.#queue.pending;
  }

  write<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    return this.#queue.run(async () => {
      try {
        return await fn(this.#conn);
      } catch (err) {
        // A failed task must not leave a transaction open for the next one.
        try {
          await this.#conn.run("ROLLBACK");
        } catch {
          // no transaction was open (the usual case)
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
