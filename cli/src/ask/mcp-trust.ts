// Which external MCP servers `coral ask` (and `coral mcp servers`) may start.
//
// A server entry is a command line. The project's .coral/config.yaml is
// committed, so cloning a repository and asking a question would run
// whatever it names: those servers start only after the user trusted that
// exact set of commands (`--trust-mcp`, or yes at a terminal prompt). The
// trust is recorded in $CORAL_HOME/mcp-trust.json (0600), keyed by the
// project's real path and a SHA-256 of the servers' command, args, env (as
// written) and cwd: any change asks again. Servers in the user's own
// $CORAL_HOME/mcp.yaml (same `servers:` shape) are the user's and trusted.
//
// What the commands load (a script in the repository) is not hashed: trust
// is in the command lines, so review what they run before trusting them.
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, open, readFile, realpath, rename, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { join, resolve } from "node:path";
import { parseDocument } from "yaml";
import { mcpSectionSchema, type McpServerSettings } from "@coral/colony";

export type McpServers = Record<string, McpServerSettings>;

export const trustFileName = "mcp-trust.json";
export const userMcpFileName = "mcp.yaml";

export class McpTrustError extends Error {
  override name = "McpTrustError";
}

/** Asks the user whether to start these servers (lines: one per server). */
export type TrustPrompt = (configPath: string, lines: string[]) => Promise<boolean>;

export interface McpServerPlan {
  /** Servers to start, each cwd made absolute. */
  servers: McpServers;
  /** What to tell the user on stderr. */
  notices: string[];
  /** The project's servers were not started for want of trust. */
  untrusted: boolean;
}

interface TrustEntry {
  sha256: string;
  servers: string[];
  trusted_at: string;
}
interface TrustFile {
  version: 1;
  projects: Record<string, TrustEntry>;
}

const enabledNames = (servers: McpServers) => Object.keys(servers).filter((n) => servers[n]!.enabled).sort();

/** Each server with its cwd resolved against `baseDir`, as it will run. */
function anchored(servers: McpServers, baseDir: string): McpServers {
  return Object.fromEntries(Object.entries(servers).map(([n, s]) => [n, s.cwd ? { ...s, cwd: resolve(baseDir, s.cwd) } : s]));
}

/** SHA-256 over what the enabled servers run: name, command, args, env as written, cwd. */
export function mcpLaunchHash(servers: McpServers): string {
  const launches = enabledNames(servers).map((name) => {
    const s = servers[name]!;
    return [name, s.command, s.args, Object.entries(s.env).sort(([a], [b]) => (a < b ? -1 : 1)), s.cwd ?? null];
  });
  return createHash("sha256").update(JSON.stringify(launches)).digest("hex");
}

/** One line per enabled server: what it would run. */
export function launchLines(servers: McpServers): string[] {
  return enabledNames(servers).map((name) => {
    const s = servers[name]!;
    const env = Object.entries(s.env).map(([k, v]) => `${k}=${v}`);
    const extras = [s.cwd ? `in ${s.cwd}` : "", env.length > 0 ? `env ${env.join(" ")}` : ""].filter(Boolean).join("; ");
    return `${name}: ${[s.command, ...s.args].map(quote).join(" ")}${extras ? ` (${extras})` : ""}`;
  });
}

function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

async function readTrust(home: string): Promise<TrustFile> {
  const path = join(home, trustFileName);
  if (!existsSync(path)) return { version: 1, projects: {} };
  // A trust list others can write is no trust list.
  if (process.platform !== "win32" && ((await stat(path)).mode & 0o022) !== 0)
    throw new McpTrustError(`${path}: other users can write it; fix it with: chmod 600 ${path}`);
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<TrustFile>;
    if (parsed.version === 1 && parsed.projects && typeof parsed.projects === "object") return { version: 1, projects: parsed.projects };
  } catch {
    // unreadable: as if nothing were trusted; the next trust rewrites it
  }
  return { version: 1, projects: {} };
}

async function projectKey(dir: string): Promise<string> {
  return realpath(dir).catch(() => resolve(dir));
}

/** Records that the user trusts exactly these servers for the project in `dir`. */
export async function trustProjectServers(dir: string, servers: McpServers, home: string): Promise<void> {
  const trust = await readTrust(home);
  trust.projects[await projectKey(dir)] = { sha256: mcpLaunchHash(servers), servers: enabledNames(servers), trusted_at: new Date().toISOString() };
  await mkdir(home, { recursive: true, mode: 0o700 });
  const path = join(home, trustFileName);
  const temp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(temp, "wx", 0o600);
  try {
    await handle.writeFile(JSON.stringify(trust, null, 2) + "\n");
  } finally {
    await handle.close();
  }
  await chmod(temp, 0o600);
  await rename(temp, path);
}

/** "trusted", "changed" (trusted once, with other commands) or "unknown". */
export async function projectTrust(dir: string, servers: McpServers, home: string): Promise<"trusted" | "changed" | "unknown"> {
  const entry = (await readTrust(home)).projects[await projectKey(dir)];
  if (!entry) return "unknown";
  return entry.sha256 === mcpLaunchHash(servers) ? "trusted" : "changed";
}

/** The servers of $CORAL_HOME/mcp.yaml (the user's own, trusted), or {} without that file. */
export async function loadUserMcpServers(home: string): Promise<McpServers> {
  const path = join(home, userMcpFileName);
  if (!existsSync(path)) return {};
  const doc = parseDocument(await readFile(path, "utf8"));
  if (doc.errors.length > 0) throw new McpTrustError(`${path}: ${doc.errors[0]!.message}`);
  const parsed = mcpSectionSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new McpTrustError(`${path}: ${issue.path.join(".") || "(top)"}: ${issue.message}`);
  }
  return anchored(parsed.data.servers, home);
}

/**
 * The servers to start: the user's own, and the project's when trusted
 * (trusting them now with `trustFlag` or a yes from `prompt`).
 */
export async function planMcpServers(input: {
  project?: { dir: string; configPath: string; servers: McpServers };
  home: string;
  trustFlag: boolean;
  prompt?: TrustPrompt;
  /** How to trust them, for the notice (e.g. `coral ask --trust-mcp "<question>"`). */
  trustHint: string;
}): Promise<McpServerPlan> {
  const servers = await loadUserMcpServers(input.home);
  const notices: string[] = [];
  const project = input.project;
  if (!project || enabledNames(project.servers).length === 0) return { servers, notices, untrusted: false };
  const own = anchored(project.servers, project.dir);
  const lines = launchLines(own);
  let state = await projectTrust(project.dir, own, input.home);
  if (state !== "trusted" && input.trustFlag) {
    await trustProjectServers(project.dir, own, input.home);
    notices.push(`Trusted the MCP servers of ${project.configPath} (recorded in ${join(input.home, trustFileName)}; a change in their commands asks again).`);
    state = "trusted";
  } else if (state !== "trusted" && input.prompt && (await input.prompt(project.configPath, lines))) {
    await trustProjectServers(project.dir, own, input.home);
    state = "trusted";
  }
  if (state !== "trusted") {
    notices.push(
      [
        `Not starting the MCP servers of ${project.configPath}: they run commands from the project's configuration, ` +
          (state === "changed" ? "which changed since you trusted them:" : "which you have not trusted:"),
        ...lines.map((l) => `  ${l}`),
        `If you trust these commands, run: ${input.trustHint}`,
      ].join("\n"),
    );
    return { servers, notices, untrusted: true };
  }
  for (const [name, settings] of Object.entries(own)) {
    if (servers[name]) notices.push(`MCP server "${name}" of ${project.configPath} is skipped: ${join(input.home, userMcpFileName)} defines one with that name.`);
    else servers[name] = settings;
  }
  return { servers, notices, untrusted: false };
}

/** A yes/no question on the terminal, or undefined when stdin or stderr is not one. */
export function terminalPrompt(): TrustPrompt | undefined {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return async (configPath, lines) => {
    process.stderr.write(`${configPath} asks to start these MCP servers (commands from the project's configuration):\n${lines.map((l) => `  ${l}\n`).join("")}`);
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await new Promise<string>((done) => rl.question("Run them, now and until they change? [y/N] ", done));
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  };
}
