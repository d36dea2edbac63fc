// Reader connections: separate from the writer, so queries never wait behind
// ingestion. A DuckDB connection runs one query at a time, so each reader has
// its own queue and a read goes to the least busy one.
import type { DuckDBInstance } from "@duckdb/node-api";
import { SerialQueue } from "./queue.ts";
import type { Conn } from "./sql.ts";

interface Reader {
  conn: Conn;
  queue: SerialQueue;
}

export class ReaderPool {
  readonly #readers: Reader[];

  private constructor(readers: Reader[]) {
    this.#readers = readers;
  }

  static async open(instance: DuckDBInstance, size: number): Promise<ReaderPool> {
    const readers: Reader[] = [];
    for (let i = 0; i < Math.max(1, size); i++) {
      const conn = await instance.connect();
      await conn.run("SET TimeZone = 'UTC'");
      readers.push({ conn, queue: new SerialQueue() });
    }
    return new ReaderPool(readers);
  }

  read<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    let best = this.#readers[0] as Reader;
    for (const r of this.#readers) if (r.queue.pending < best.queue.pending) best = r;
    return best.queue.run(() => fn(best.conn));
  }

  async drain(): Promise<void> {
    await Promise.all(this.#readers.map((r) => r.queue.drain()));
  }

  closeSync(): void {
    for (const r of this.#readers) {
      try {
        r.conn.closeSync();
      } catch {
        // already closed
      }
    }
  }
}
