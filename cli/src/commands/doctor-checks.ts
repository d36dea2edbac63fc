// What `coral doctor` checks in a project, each as findings with a fix. Pure
// functions of what they are given (config, file modes, secrets, tokens), so
// the command stays a thin layer that gathers and prints. Secret values are
// never part of a finding, only what is wrong with them.
import { lstat, readdir } from "node:fs/promises";
import { join, relative } from "node:path";

export type CheckStatus = "ok" | "warning" | "error" | "skipped";

export interface Finding {
  /** Stable id for scripts, e.g. "api-tls". */
  check: string;
  /** The table's CHECK column, e.g. "API transport". */
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do; every warning and error has one. */
  fix?: string;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h === "::1") return true;
  return /^(?:::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The API: off loopback it needs TLS (inside the WireGuard tunnel it is encrypted already). */
export function checkApiTransport(api: { host: string; port: number; tls?: unknown }, meshMode: string): Finding {
  const base = { check: "api-tls", name: "API transport" };
  if (meshMode === "wireguard") return { ...base, status: "ok", detail: "listens on the mesh address, inside the WireGuard tunnel" };
  if (api.tls) return { ...base, status: "ok", detail: `https on ${api.host}:${api.port}` };
  if (isLoopbackHost(api.host)) return { ...base, status: "ok", detail: `${api.host}:${api.port}, loopback only` };
  return {
    ...base,
    status: "error",
    detail: `listens on ${api.host}:${api.port} without TLS: tokens and data cross the network in clear`,
    fix: "set colony.api.tls (cert and key) in .coral/config.yaml, or colony.api.host: 127.0.0.1 behind a TLS proxy",
  };
}

/** Discovery over plain http is only fine on this machine. */
export function checkDiscovery(endpoint: string | undefined): Finding {
  const base = { check: "discovery-http", name: "Discovery" };
  if (!endpoint) return { ...base, status: "ok", detail: "none configured (local only)" };
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { ...base, status: "error", detail: `endpoint "${endpoint}" is not a URL`, fix: "set discovery.endpoint to an https:// URL" };
  }
  if (url.protocol === "https:" || isLoopbackHost(url.hostname)) return { ...base, status: "ok", detail: `${url.origin}` };
  return {
    ...base,
    status: "warning",
    detail: `${url.origin} is plain http beyond this machine: lookups and registrations can be read and changed on the way`,
    fix: `use https:// (discovery.endpoint in .coral/config.yaml or CORAL_DISCOVERY_URL), e.g. https://${url.host}`,
  };
}

/** Why a secret is weak, or undefined. Hex text counts as the bytes it spells. */
export function secretWeakness(text: string): string | undefined {
  const value = text.trim();
  const bytes = /^(?:[0-9a-fA-F]{2})+$/.test(value) ? Buffer.from(value, "hex") : Buffer.from(value, "utf8");
  if (bytes.length < 32) return `is ${bytes.length} bytes; it needs at least 32 random bytes`;
  if (bytes.every((b) => b === bytes[0])) return bytes[0] === 0 ? "is all zeros" : "is one byte repeated";
  for (let period = 2; period <= bytes.length / 2; period++)
    if (bytes.every((b, i) => b === bytes[i % period])) return `repeats a ${period}-byte pattern`;
  const step = (bytes[1]! - bytes[0]! + 256) % 256;
  if (bytes.every((b, i) => i === 0 || (b - bytes[i - 1]! + 256) % 256 === step)) return "is a counting sequence";
  // 32 random bytes have about 30 distinct values; a third of that is not chance.
  const distinct = new Set(bytes).size;
  if (distinct < Math.min(bytes.length, 256) / 3) return `uses only ${distinct} distinct byte values (low entropy)`;
  return undefined;
}

export interface NamedSecret {
  /** Where it comes from, e.g. ".coral/keys/colony.secret" or "CORAL_ENROLL_SECRET". */
  source: string;
  value: string;
}

export function checkSecrets(secrets: readonly NamedSecret[]): Finding[] {
  const base = { check: "weak-secret", name: "Secrets" };
  const weak = secrets.flatMap((s) => {
    const why = secretWeakness(s.value);
    return why ? [{ ...s, why }] : [];
  });
  if (secrets.length === 0) return [{ ...base, status: "ok", detail: "no colony or enrollment secret here" }];
  if (weak.length === 0) return [{ ...base, status: "ok", detail: `${secrets.map((s) => s.source).join(", ")}: strong` }];
  return weak.map((w) => ({
    ...base,
    status: "error" as const,
    detail: `${w.source} ${w.why}`,
    fix: w.source.startsWith("CORAL_")
      ? `set ${w.source} to 32 random bytes: openssl rand -hex 32`
      : `replace it with 32 random bytes: openssl rand -hex 32 > ${w.source} (agents then need a new invitation)`,
  }));
}

export interface TokenSummary {
  name: string;
  revoked: boolean;
  neverExpires: boolean;
}

export function checkTokens(tokens: readonly TokenSummary[] | { skipped: string }): Finding {
  const base = { check: "token-expiry", name: "API tokens" };
  if (!Array.isArray(tokens)) return { ...base, status: "skipped", detail: (tokens as { skipped: string }).skipped };
  const forever = tokens.filter((t) => !t.revoked && t.neverExpires).map((t) => t.name);
  const active = tokens.filter((t) => !t.revoked).length;
  if (forever.length === 0) return { ...base, status: "ok", detail: active ? `${active} active, all expiring` : "none created" };
  return {
    ...base,
    status: "warning",
    detail: `${forever.length} never expire${forever.length === 1 ? "s" : ""}: ${forever.slice(0, 5).join(", ")}${forever.length > 5 ? ", …" : ""}`,
    fix: `replace ${forever.length === 1 ? "it" : "each"} with an expiring one: coral token revoke <name>, then coral token create --name <new-name> --ttl 90d`,
  };
}

/** Files that hold credentials: refused by the colony when others can read them. */
function isCredential(rel: string): boolean {
  const name = rel.split("/").pop() ?? "";
  return rel.startsWith("keys/") || /\.(?:token|secret|key|pem)$/.test(name) || /^nats-(?:server\.conf|users\.json)$/.test(name);
}

/** Meant to be shared (config.yaml is committed) or harmless. */
function isShareable(rel: string): boolean {
  return rel === "config.yaml" || rel === ".gitignore" || rel.endsWith(".pid");
}

const maxEntries = 20_000;

interface Exposed {
  rel: string;
  mode: number;
}

/**
 * .coral/ should be 0700; credentials 0600 whatever their folder; other
 * files (DuckDB and its WAL, logs) are a problem when others can reach and
 * read them through folders they may enter.
 */
export async function checkFileModes(coralDir: string): Promise<Finding[]> {
  const base = { check: "file-modes", name: "File permissions" };
  let root;
  try {
    root = await lstat(coralDir);
  } catch {
    return [{ ...base, status: "skipped", detail: `${coralDir} does not exist` }];
  }
  const findings: Finding[] = [];
  const rootMode = root.mode & 0o777;
  if (rootMode & 0o077)
    findings.push({ ...base, status: "warning", detail: `.coral is ${octal(rootMode)}: other users can ${rootMode & 0o005 ? "list and enter" : "enter"} it`, fix: `chmod 700 ${coralDir}` });
  const credentials: Exposed[] = [];
  const data: Exposed[] = [];
  let seen = 0;
  // reachable: whether others may pass through every folder down to here.
  const walk = async (dir: string, reachable: boolean): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (++seen > maxEntries) return;
      const path = join(dir, entry.name);
      const rel = relative(coralDir, path);
      let mode: number;
      try {
        mode = (await lstat(path)).mode & 0o777;
      } catch {
        continue;
      }
      if (entry.isDirectory()) await walk(path, reachable && (mode & 0o011) !== 0);
      else if (entry.isFile() && !isShareable(rel) && mode & 0o044) {
        if (isCredential(rel)) credentials.push({ rel, mode });
        else if (reachable) data.push({ rel, mode });
      }
    }
  };
  await walk(coralDir, (rootMode & 0o011) !== 0);
  const list = (files: Exposed[]) => files.slice(0, 6).map((f) => `.coral/${f.rel} (${octal(f.mode)})`).join(", ") + (files.length > 6 ? ", …" : "");
  const chmod = (files: Exposed[]) => `chmod 600 ${files.map((f) => join(coralDir, f.rel)).join(" ")}`;
  if (credentials.length)
    findings.push({ ...base, status: "error", detail: `keys or tokens others can read: ${list(credentials)}`, fix: chmod(credentials) });
  if (data.length)
    findings.push({ ...base, status: "warning", detail: `data others can read: ${list(data)}`, fix: `${chmod(data)} (coral colony start also makes the store private)` });
  if (findings.length === 0) findings.push({ ...base, status: "ok", detail: `.coral is ${octal(rootMode)}; keys, tokens and data are owner-only` });
  return findings;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}
