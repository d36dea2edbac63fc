// How an agent finds the SDK of the process it observes: the SDK writes
// <dir>/<pid>.json with its port and a random token, removed on shutdown.
// The token guards every call into the app (health and info included), so
// the folder is per user and private:
//
//   CORAL_SDK_DIR, else $XDG_RUNTIME_DIR/coral-sdk (when that folder is the
//   user's own and private), else <tmpdir>/coral-sdk-<uid>
//
// created 0700; a folder that exists with another owner or open to group or
// others is refused (another local user could have made it to read the
// token or plant a file). Files are 0600 and written atomically. The agent
// (often root) finds the file through the observed process's uid and trusts
// it only when folder and file belong to that uid and nobody else can write
// them (findAnnouncement).
import { randomBytes } from "node:crypto";
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync, type Stats } from "node:fs";
import { join } from "node:path";

export interface SdkAnnouncement {
  pid: number;
  port: number;
  token: string;
  serviceName: string;
}

/** The announcement folder cannot be used safely; the SDK runs on without announcing. */
export class AnnounceDirError extends Error {
  override name = "AnnounceDirError";
}

type Env = Readonly<Record<string, string | undefined>>;

/** Larger than any announcement; a bigger file is not ours. */
const maxAnnouncementBytes = 4096;

export function currentUid(): number {
  return typeof process.geteuid === "function" ? process.geteuid() : -1;
}

/** os.tmpdir() for another environment (the observed process's, for the agent). */
function tmpdirOf(env: Env): string {
  const dir = env.TMPDIR || env.TMP || env.TEMP || "/tmp";
  return dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
}

function privateOwnedBy(path: string, uid: number): boolean {
  try {
    const st = statSync(path);
    return st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** Where a process of user `uid` with environment `env` announces itself. */
export function sdkAnnounceDir(env: Env = process.env, uid = currentUid()): string {
  if (env.CORAL_SDK_DIR) return env.CORAL_SDK_DIR;
  const runtime = env.XDG_RUNTIME_DIR;
  // sudo and su often keep the invoking user's XDG_RUNTIME_DIR: use it only when it is ours.
  if (runtime && runtime.startsWith("/") && privateOwnedBy(runtime, uid)) return join(runtime, "coral-sdk");
  return join(tmpdirOf(env), uid >= 0 ? `coral-sdk-${uid}` : "coral-sdk");
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/** Why `st` (a folder or file at `path`) cannot be trusted for `uid`, or undefined when it can. */
function distrust(path: string, st: Stats, uid: number, kind: "folder" | "file", forbidden: number): string | undefined {
  if (kind === "folder" ? !st.isDirectory() : !st.isFile()) return `${path} is not a ${kind === "folder" ? "folder" : "regular file"}`;
  if (uid >= 0 && st.uid !== uid) return `${path} belongs to uid ${st.uid}, not uid ${uid}`;
  if ((st.mode & forbidden) !== 0) return `${path} is open to other users (mode ${octal(st.mode)})`;
  return undefined;
}

/** Creates `dir` 0700, or checks an existing one is ours and private; throws AnnounceDirError otherwise. */
export function ensurePrivateDir(dir: string, uid = currentUid()): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new AnnounceDirError(`cannot create ${dir}: ${(err as Error).message}`);
  }
  const problem = distrust(dir, lstatSync(dir), uid, "folder", 0o077);
  if (problem)
    throw new AnnounceDirError(
      `${problem}; another user may have made it to read the SDK's token. ` +
        `Remove it (or chmod 700 it, if it is yours), or set CORAL_SDK_DIR to a folder only you can open`,
    );
}

/** Writes <dir>/<pid>.json (0600) atomically: a reader sees the whole file or none. */
export function writeAnnouncement(a: SdkAnnouncement, dir = sdkAnnounceDir()): string {
  ensurePrivateDir(dir);
  const path = join(dir, `${a.pid}.json`);
  const temp = join(dir, `.${a.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, JSON.stringify(a) + "\n");
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  return path;
}

export function removeAnnouncement(path: string): void {
  rmSync(path, { force: true });
}

/** Parses an announcement; null unless it is well formed and for `pid`. */
export function parseAnnouncement(text: string, pid: number): SdkAnnouncement | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== "object") return null;
  const p = parsed as Record<string, unknown>;
  if (p.pid !== pid || typeof p.port !== "number" || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return null;
  if (typeof p.token !== "string" || p.token.length < 16 || p.token.length > 256) return null;
  return { pid, port: p.port, token: p.token, serviceName: typeof p.serviceName === "string" ? p.serviceName : "" };
}

/** The effective uid of `pid` (from /proc/<pid>/status), or undefined when it is gone or unreadable. */
export function processUid(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The environment `pid` started with, or {} when it is not ours to read. */
function processEnv(pid: number): Env {
  try {
    const env: Record<string, string> = {};
    for (const entry of readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  } catch {
    return {};
  }
}

export interface AnnouncementLookup {
  announcement: SdkAnnouncement | null;
  /** Folders or files found but not trusted, and why. */
  refused: string[];
}

/** Reads <dir>/<pid>.json if folder and file belong to `uid` and nobody else can write them. */
function readTrusted(dir: string, pid: number, uid: number, refused: string[]): SdkAnnouncement | null {
  let dirStat: Stats;
  try {
    dirStat = lstatSync(dir);
  } catch {
    return null;
  }
  const dirProblem = distrust(dir, dirStat, uid, "folder", 0o022);
  if (dirProblem) {
    refused.push(dirProblem);
    return null;
  }
  const path = join(dir, `${pid}.json`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") refused.push(`${path} is a symbolic link`);
    return null;
  }
  try {
    const st = fstatSync(fd);
    const problem = distrust(path, st, uid, "file", 0o022) ?? (st.size > maxAnnouncementBytes ? `${path} is larger than an announcement` : undefined);
    if (problem) {
      refused.push(problem);
      return null;
    }
    const buf = Buffer.alloc(st.size);
    const n = readSync(fd, buf, 0, st.size, 0);
    const found = parseAnnouncement(buf.subarray(0, n).toString("utf8"), pid);
    if (!found) refused.push(`${path} is not an SDK announcement for pid ${pid}`);
    return found;
  } finally {
    closeSync(fd);
  }
}

/**
 * The announcement of `pid`, looked for where a process of its user would
 * write it: `dir` when given (the agent's CORAL_SDK_DIR), the folder its own
 * environment names, and the defaults for its uid.
 */
export function findAnnouncement(pid: number, options: { dir?: string } = {}): AnnouncementLookup {
  const refused: string[] = [];
  const uid = processUid(pid);
  if (uid === undefined || pid <= 0) return { announcement: null, refused };
  const own = processEnv(pid);
  const candidates = [
    options.dir,
    sdkAnnounceDir(own, uid),
    sdkAnnounceDir({ XDG_RUNTIME_DIR: `/run/user/${uid}` }, uid),
    sdkAnnounceDir({ TMPDIR: process.env.TMPDIR }, uid),
  ].filter((d): d is string => Boolean(d));
  for (const dir of new Set(candidates)) {
    const found = readTrusted(dir, pid, uid, refused);
    if (found) return { announcement: found, refused };
  }
  return { announcement: null, refused };
}

export const sdkTokenHeader = "x-coral-sdk-token";
