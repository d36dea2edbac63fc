// Reader connections: separate from the writer, so queries never wait behind
// ingestion. A DuckDB connection runs one query at a time, so each reader has
// its own queue and a read goes to the least busy one.
import type { DuckDBInstance } from "@duckdb/node-api";
import { QueuedConnection } from "@coral/common/duckdb";
import type { Conn } from "./sql.ts";

export class ReaderPool {
  readonly #readers: QueuedConnection[];

  private constructor(readers: QueuedConnection[]) {
    this.#readers = readers;
  }

  static async open(instance: DuckDBInstance, size: number): Promise<ReaderPool> {
    const readers: QueuedConnection[] = [];
    try {
      for (let i = 0; i < Math.max(1, size); i++) readers.push(await QueuedConnection.open(instance, "reader"));
    } catch (err) {
      for (const r of readers) r.closeSync();
      throw err;
    }
    return new ReaderPool(readers);
  }

  read<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    let best = this.#readers[0] as QueuedConnection;
    for (const r of this.#readers) if (r.pending < best.pending) best = r;
    return best.run(fn);
  }

  async drain(): Promise<void> {
    await Promise.all(this.#readers.map((r) => r.drain()));
  }

  closeSync(): void {
    for (const r of this.#readers) r.closeSync();
  }
}
