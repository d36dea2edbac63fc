// openStore: open (or create) the DuckDB file, migrate it, and start the
// writer and the readers.
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { prepareIngest } from "./ingest.ts";
import { migrate } from "./migrations.ts";
import { ReaderPool } from "./readers.ts";
import { resolveRetention } from "./retention.ts";
import { DuckColonyStore } from "./store.ts";
import type { ColonyStore, OpenStoreOptions } from "./types.ts";
import { QueuedConnection } from "@coral/common/duckdb";

export async function openStore(path: string, options: OpenStoreOptions = {}): Promise<ColonyStore> {
  if (!path) throw new Error("openStore: a file path is required");
  const retention = resolveRetention(options.retention);
  const file = resolve(path);
  await mkdir(dirname(file), { recursive: true });

  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(file);
  } catch (err) {
    throw new Error(`cannot open the colony store ${file}: ${(err as Error).message}`, { cause: err });
  }
  let writer: QueuedConnection | undefined;
  let readers: ReaderPool | undefined;
  try {
    writer = await QueuedConnection.open(instance, "writer");
    await writer.run(async (conn) => {
      await migrate(conn);
      await prepareIngest(conn);
    });
    readers = await ReaderPool.open(instance, options.readers ?? 2);
  } catch (err) {
    readers?.closeSync();
    writer?.closeSync();
    instance.closeSync();
    throw err;
  }
  return new DuckColonyStore(file, retention, { instance, writer, readers, logger: options.logger });
}
