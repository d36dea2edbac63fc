// The store's connections: one writer connection fed by a FIFO queue (every
// write in the store goes through it, one at a time, in arrival order) and one
// reader connection with its own queue, so detail queries and the publisher's
// outbox reads never wait behind a retention DELETE. Readers see committed data.
import type { DuckDBInstance } from "@duckdb/node-api";
import { SerialQueue } from "../duckdb/index.ts";
import type { Conn } from "./sql.ts";

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

  run<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    return this.#queue.run(async () => {
      try {
        return await fn(this.#conn);
      } catch (err) {
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
