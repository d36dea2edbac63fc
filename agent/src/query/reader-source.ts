// The reader process's program: plain JavaScript (CommonJS), run with
// `node -e`, so it loads the same way from the TypeScript sources, agent/dist
// and the `coral connect` bundle (no file of its own to find). It opens the
// store read-only, answers one request at a time over IPC and exits when its
// parent goes away, even in the middle of a statement. Its one argument is JSON:
//   { driver: <better-sqlite3's resolved path>, file, busyMs, cacheKib }
// Requests: { id, op: "query", sql, maxRows, maxBytes } | { id, op: "schema" }.
// Answers: { id, ok: true, value } | { id, ok: false, kind, reason?, code?, message }.
// Values: integers exact (safe integers) as decimal text, reals as JavaScript
// prints them, text as is, BLOBs as "\x" and lower-case hex (PostgreSQL's
// bytea form), NULL as null. A result's size is the UTF-8 bytes of its cells.

export const readerSource = String.raw`"use strict";
const config = JSON.parse(process.argv[1]);
const Database = require(config.driver);
let db;
let openError;
try {
  db = new Database(config.file, { readonly: true, fileMustExist: true, timeout: config.busyMs });
  db.pragma("query_only = 1");
  db.pragma("cache_size = -" + config.cacheKib);
  db.pragma("temp_store = FILE");
  db.defaultSafeIntegers(true);
} catch (err) {
  openError = err;
}

function failure(kind, extra) {
  return Object.assign(new Error(kind), { kind }, extra);
}

function text(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v;
  if (Buffer.isBuffer(v)) return "\\x" + v.toString("hex");
  return String(v);
}

function typeOf(v) {
  if (typeof v === "bigint") return "INTEGER";
  if (typeof v === "number") return "REAL";
  if (typeof v === "string") return "TEXT";
  if (Buffer.isBuffer(v)) return "BLOB";
  return "";
}

function size(v) {
  if (v === null || v === undefined) return 0;
  if (Buffer.isBuffer(v)) return 2 + 2 * v.length;
  return Buffer.byteLength(typeof v === "string" ? v : String(v));
}

function query(sql, maxRows, maxBytes) {
  const started = performance.now();
  let stmt;
  try {
    stmt = db.prepare(sql);
  } catch (err) {
    if (/more than one statement/.test(err.message)) throw failure("refused", { reason: "several" });
    if (/contains no statements/.test(err.message)) throw failure("empty");
    throw err;
  }
  if (!stmt.readonly) throw failure("refused", { reason: "writes" });
  if (!stmt.reader) throw failure("refused", { reason: "not-reader" });
  const columns = stmt.columns().map((c) => ({ name: c.name, type: c.type || "" }));
  const untyped = columns.map((c) => c.type === "");
  const rows = [];
  let bytes = 0;
  let truncatedBy = "";
  for (const values of stmt.raw(true).iterate()) {
    if (rows.length === maxRows) {
      truncatedBy = "rows";
      break;
    }
    const rowBytes = values.reduce((n, v) => n + size(v), 0);
    if (bytes + rowBytes > maxBytes) {
      truncatedBy = "bytes";
      break;
    }
    bytes += rowBytes;
    rows.push(values.map(text));
    values.forEach((v, i) => {
      if (untyped[i] && v !== null) {
        columns[i].type = typeOf(v);
        untyped[i] = false;
      }
    });
  }
  return { columns, rows, truncated: truncatedBy !== "", truncatedBy, elapsedMs: Math.round(performance.now() - started) };
}

function schema() {
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").pluck().all();
  const info = db.prepare("SELECT name, type FROM pragma_table_info(?) ORDER BY cid");
  return tables.map((name) => ({ name, columns: info.all(name).map((c) => ({ name: c.name, type: c.type })) }));
}

function answer(m) {
  let reply;
  try {
    if (openError) throw failure("unavailable", { message: openError.message, code: openError.code });
    reply = { id: m.id, ok: true, value: m.op === "schema" ? schema() : query(m.sql, m.maxRows, m.maxBytes) };
  } catch (err) {
    reply = { id: m.id, ok: false, kind: err.kind || "sql", reason: err.reason, code: err.code, message: String(err.message) };
  }
  process.send(reply);
}

// The parent gone (killed) while a statement runs: the main thread is inside
// SQLite and sees no "disconnect", so a thread of its own ends the process.
// Requests wait until that thread runs (it needs this thread free to start).
const waiting = [];
let watched = false;
process.on("message", (m) => (watched ? answer(m) : waiting.push(m)));
process.on("disconnect", () => process.exit(0));
const { Worker } = require("node:worker_threads");
const watchdog = new Worker(
  "const parent = " + process.ppid + ";" +
    "setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL'); }, 500);" +
    "require('node:worker_threads').parentPort.postMessage('watching');",
  { eval: true },
);
const watching = () => {
  if (watched) return;
  watched = true;
  waiting.splice(0).forEach(answer);
};
watchdog.once("message", watching);
watchdog.once("error", watching);
watchdog.unref();
`;
