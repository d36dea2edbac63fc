// `coral ask` settings: $CORAL_HOME/ask.yaml (provider, model, daily cost
// warning, base URL, retries) and the API key in $CORAL_HOME/ask.key (mode
// 0600, never printed: only maskKey(key) is ever shown). ANTHROPIC_API_KEY
// overrides the key file; ANTHROPIC_BASE_URL overrides base_url.
import { existsSync } from "node:fs";
import { chmod, mkdir, open, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseDocument, stringify } from "yaml";
import { coralHome } from "@coral/colony";

/**
 * The default model: Claude Sonnet 5.5, Anthropic's current Sonnet (Nov 2026:
 * $2 / $10 per million input / output tokens). claude-sonnet-4-5 is deprecated
 * (end of life Nov 30th 2026) and the SDK warns on every request that uses it.
 * Change it with: coral ask config --model <id>.
 */
export const DEFAULT_MODEL = "claude-sonnet-5-5";
export const DEFAULT_BASE_URL = "https://api.anthropic.com";
export const DEFAULT_DAILY_WARN_USD = 5;
export const DEFAULT_MAX_RETRIES = 2;

export interface AskConfig {
  provider: "anthropic";
  model: string;
  /** Warn when today's estimated cost passes this (USD); 0 = never. */
  daily_warn_usd: number;
  /** Unset: ANTHROPIC_BASE_URL, else https://api.anthropic.com. */
  base_url?: string;
  /** Retries of a failed request (429 with retry-after, 5xx, network), by the SDK. */
  max_retries: number;
}

export interface AskPaths {
  home: string;
  config: string;
  key: string;
  usage: string;
}

type Env = Readonly<Record<string, string | undefined>>;

export function askPaths(env: Env = process.env): AskPaths {
  const home = coralHome(env);
  return { home, config: join(home, "ask.yaml"), key: join(home, "ask.key"), usage: join(home, "ask-usage.jsonl") };
}

export class AskConfigError extends Error {
  override name = "AskConfigError";
}

const modelPattern = /^[a-zA-Z0-9][a-zA-Z0-9._:@-]{0,127}$/;

/** "claude-sonnet-5-5" or "anthropic:claude-sonnet-5-5" → the model id; other providers are refused. */
export function checkModel(value: string): string {
  let model = value.trim();
  const colon = model.indexOf(":");
  if (colon > 0) {
    const provider = model.slice(0, colon).toLowerCase();
    if (provider !== "anthropic")
      throw new AskConfigError(`model "${value}": only Anthropic models are supported (e.g. ${DEFAULT_MODEL})`);
    model = model.slice(colon + 1);
  }
  if (!modelPattern.test(model)) throw new AskConfigError(`model "${value}" is not a model id (e.g. ${DEFAULT_MODEL})`);
  return model;
}

export function checkBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AskConfigError(`base URL "${value}" is not a URL (e.g. ${DEFAULT_BASE_URL})`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new AskConfigError(`base URL "${value}" must be http:// or https://`);
  if (url.username || url.password) throw new AskConfigError("base URL must not contain credentials; use coral ask config --api-key-stdin");
  return value.replace(/\/+$/, "");
}

export function checkDailyWarn(value: number): number {
  if (!Number.isFinite(value) || value < 0 || value > 1_000_000) throw new AskConfigError("daily warning must be a cost in USD from 0 (off) up, e.g. 10");
  return value;
}

export function checkMaxRetries(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 10) throw new AskConfigError("max retries must be 0 to 10");
  return value;
}

/** Reads ask.yaml; defaults for what it does not set. A missing file is all defaults. */
export async function loadAskConfig(paths: AskPaths = askPaths()): Promise<AskConfig> {
  const config: AskConfig = { provider: "anthropic", model: DEFAULT_MODEL, daily_warn_usd: DEFAULT_DAILY_WARN_USD, max_retries: DEFAULT_MAX_RETRIES };
  if (!existsSync(paths.config)) return config;
  const doc = parseDocument(await readFile(paths.config, "utf8"));
  if (doc.errors.length > 0) throw new AskConfigError(`${paths.config}: ${doc.errors[0]!.message}`);
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new AskConfigError(`${paths.config}: must be a mapping of settings`);
  const at = (key: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      throw new AskConfigError(`${paths.config}: ${key}: ${(err as Error).message}`);
    }
  };
  const r = raw as Record<string, unknown>;
  if (r.provider !== undefined && r.provider !== "anthropic")
    throw new AskConfigError(`${paths.config}: provider: only "anthropic" is supported (got ${JSON.stringify(r.provider)})`);
  if (r.model !== undefined) at("model", () => (config.model = checkModel(String(r.model))));
  if (r.daily_warn_usd !== undefined) at("daily_warn_usd", () => (config.daily_warn_usd = checkDailyWarn(Number(r.daily_warn_usd))));
  if (r.base_url !== undefined && r.base_url !== null && r.base_url !== "") at("base_url", () => (config.base_url = checkBaseUrl(String(r.base_url))));
  if (r.max_retries !== undefined) at("max_retries", () => (config.max_retries = checkMaxRetries(Number(r.max_retries))));
  return config;
}

/** Merges `changes` into ask.yaml (creating $CORAL_HOME if needed) and returns the result. */
export async function saveAskConfig(changes: Partial<Omit<AskConfig, "provider">>, paths: AskPaths = askPaths()): Promise<AskConfig> {
  const config = { ...(await loadAskConfig(paths)), ...changes };
  await mkdir(paths.home, { recursive: true, mode: 0o700 });
  const body: Record<string, unknown> = {
    provider: config.provider,
    model: config.model,
    daily_warn_usd: config.daily_warn_usd,
    max_retries: config.max_retries,
  };
  if (config.base_url) body.base_url = config.base_url;
  const header = "# coral ask settings (coral ask config). The API key is not here: it is in ask.key (mode 0600).\n";
  await writeFile(paths.config, header + stringify(body));
  return config;
}

export function checkApiKey(raw: string): string {
  const key = raw.trim();
  if (key === "") throw new AskConfigError("the API key is empty");
  if (/\s/.test(key)) throw new AskConfigError("the API key must be one line without spaces");
  if (key.length < 8 || key.length > 512) throw new AskConfigError("that does not look like an API key (length)");
  return key;
}

/** Writes the key to ask.key, readable by its owner only (0600), also when the file existed with another mode. */
export async function saveApiKey(key: string, paths: AskPaths = askPaths()): Promise<void> {
  await mkdir(paths.home, { recursive: true, mode: 0o700 });
  const handle = await open(paths.key, "w", 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(checkApiKey(key) + "\n");
  } finally {
    await handle.close();
  }
  await chmod(paths.key, 0o600);
}

export interface ResolvedKey {
  key: string;
  source: "ANTHROPIC_API_KEY" | "key file";
}

/** ANTHROPIC_API_KEY, else ask.key (refused when other users can read it). */
export async function resolveApiKey(paths: AskPaths = askPaths(), env: Env = process.env): Promise<ResolvedKey | undefined> {
  const fromEnv = env.ANTHROPIC_API_KEY?.trim();
  if (fromEnv) return { key: fromEnv, source: "ANTHROPIC_API_KEY" };
  if (!existsSync(paths.key)) return undefined;
  const mode = (await stat(paths.key)).mode;
  if (process.platform !== "win32" && (mode & 0o077) !== 0)
    throw new AskConfigError(
      `${paths.key}: other users can read it (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); it must be 0600: chmod 600 ${paths.key}`,
    );
  const key = (await readFile(paths.key, "utf8")).trim();
  return key ? { key, source: "key file" } : undefined;
}

/** The only form of a key that is ever shown: "sk-...abcd". */
export function maskKey(key: string): string {
  if (key.length < 12) return "...";
  return `${key.slice(0, 3)}...${key.slice(-4)}`;
}

/** Removes a secret from text (error messages from libraries), leaving its masked form. */
export function redact(text: string, secret: string | undefined): string {
  if (!secret || secret.length < 8) return text;
  return text.split(secret).join(maskKey(secret));
}

/** Where requests go: ANTHROPIC_BASE_URL, else base_url, else the public API. */
export function effectiveBaseUrl(config: AskConfig, env: Env = process.env): string {
  const fromEnv = env.ANTHROPIC_BASE_URL?.trim();
  if (fromEnv) return checkBaseUrl(fromEnv);
  return config.base_url ?? DEFAULT_BASE_URL;
}
