// openStore: open (or create) the DuckDB file, migrate it, and start the
// writer and the readers.
import { existsSync } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { prepareIngest } from "./ingest.ts";
import { migrate } from "./migrations.ts";
import { ReaderPool } from "./readers.ts";
import { resolveRetention } from "./retention.ts";
import { DuckColonyStore } from "./store.ts";
import type { ColonyStore, OpenStoreOptions, TokenRow } from "./types.ts";
import { all } from "./sql.ts";
import { toToken } from "./tokens.ts";
import { QueuedConnection } from "@coral/common/duckdb";

export async function openStore(path: string, options: OpenStoreOptions = {}): Promise<ColonyStore> {
  if (!path) throw new Error("openStore: a file path is required");
  const retention = resolveRetention(options.retention);
  const file = resolve(path);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await makePrivate(file);

  let instance: DuckDBInstance;
  try {
    // No file system access from SQL (read_csv, COPY, ATTACH, …): the colony
    // reads and writes only its own database, and coral query runs people's SQL.
    // A memory limit: one person's query (coral query) cannot take the machine; DuckDB spills or says out of memory.
    instance = await DuckDBInstance.create(file, { enable_external_access: "false", memory_limit: options.memoryLimit ?? "1GB" });
  } catch (err) {
    throw new Error(`cannot open the colony store ${file}: ${(err as Error).message}`, { cause: err });
  }
  let writer: QueuedConnection | undefined;
  let readers: ReaderPool | undefined;
  let adHoc: ReaderPool | undefined;
  try {
    writer = await QueuedConnection.open(instance, "writer");
    await writer.run(async (conn) => {
      await migrate(conn);
      await prepareIngest(conn);
    });
    readers = await ReaderPool.open(instance, options.readers ?? 2);
    adHoc = await ReaderPool.open(instance, 1);
  } catch (err) {
    adHoc?.closeSync();
    readers?.closeSync();
    writer?.closeSync();
    instance.closeSync();
    throw err;
  }
  await makePrivate(file);
  return new DuckColonyStore(file, retention, { instance, writer, readers, adHoc, logger: options.logger });
}

/**
 * The store holds telemetry, audit and token hashes: owner-only, for new and
 * existing installs alike. The file and its WAL become 0600 and a `.coral`
 * folder holding them 0700. DuckDB recreates the WAL (and spill files) at
 * every checkpoint with the process umask, so, as PostgreSQL does, the
 * process umask is narrowed to owner-only.
 */
export async function makePrivate(file: string): Promise<void> {
  narrowUmask();
  const dir = dirname(file);
  if (basename(dir) === ".coral") await chmodIfExists(dir, 0o700);
  for (const f of [file, `${file}.wal`]) await chmodIfExists(f, 0o600);
}

function narrowUmask(): void {
  try {
    const old = process.umask(0o077);
    process.umask(old | 0o077);
  } catch {
    // Worker threads cannot change it; the chmods above still apply.
  }
}

async function chmodIfExists(path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode);
  } catch (err) {
    // Not ours to change (another owner, a read-only mount): coral doctor reports what stays open.
    if (!["ENOENT", "EPERM", "EROFS"].includes((err as NodeJS.ErrnoException).code ?? "")) throw err;
  }
}

/**
 * The API tokens in a stopped colony's store, opened read-only (no
 * migration, no writes): what `coral doctor` checks. Empty when the file or
 * the table does not exist; fails while a colony holds the file.
 */
export async function readTokensOffline(path: string): Promise<TokenRow[]> {
  const file = resolve(path);
  if (!existsSync(file)) return [];
  const instance = await DuckDBInstance.create(file, { access_mode: "READ_ONLY" });
  try {
    const conn = await instance.connect();
    try {
      const table = await all(conn, "SELECT 1 FROM information_schema.tables WHERE table_name = 'api_tokens'");
      if (table.length === 0) return [];
      return (await all(conn, "SELECT * FROM api_tokens ORDER BY created_at, name")).map(toToken);
    } finally {
      conn.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}
