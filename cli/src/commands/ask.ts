// coral ask "<question>" | coral ask config | coral ask cost
// Answers questions with the Anthropic API over Coral's tools (colony/src/ask).
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import Anthropic from "@anthropic-ai/sdk";
import { Command, InvalidArgumentError } from "commander";
import pc from "picocolors";
import {
  AskConfigError,
  DEFAULT_BASE_URL,
  DEFAULT_MODEL,
  appendUsage,
  McpTrustError,
  askPaths,
  checkApiKey,
  checkBaseUrl,
  checkDailyWarn,
  checkMaxRetries,
  checkModel,
  dailyWarning,
  effectiveBaseUrl,
  estimateCost,
  explainAnthropicError,
  formatCostReport,
  formatEvidence,
  formatUsd,
  loadAskConfig,
  maskKey,
  planMcpServers,
  readUsage,
  redact,
  registryAskTools,
  resolveApiKey,
  runAsk,
  saveApiKey,
  saveAskConfig,
  summarizeUsage,
  terminalPrompt,
  type AskConfig,
  type AskPaths,
  type AskResult,
  type AskTool,
  type ResolvedKey,
} from "../ask/index.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadColonyConfig } from "@coral/colony";
import type { McpServerSettings } from "@coral/colony";
import { ExternalMcpServers } from "../mcp/client.ts";
import { ToolError } from "../tools/index.ts";
import { UsageError } from "./options.ts";
import { useColor } from "./read.ts";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { colonyClient, localColonyDir, resolveTarget, serviceClient, withRemoteOptions, type ColonyTarget, type RemoteOptions } from "./remote.ts";

export interface AskCommandOptions {
  /**
   * The tools offered to the model. Default: Coral's tool registry
   * (colony/src/tools, the tools `coral mcp server` serves) over Connect.
   */
  tools?: (context: { target: ColonyTarget; client: ReturnType<typeof colonyClient> }) => AskTool[] | Promise<AskTool[]>;
}

interface AskOptions extends RemoteOptions {
  model?: string;
  maxTokens: number;
  maxRetries?: number;
  maxRounds: number;
  /** false with --no-mcp: no external MCP servers. */
  mcp: boolean;
  /** --trust-mcp: trust (and start) the project's MCP servers as they are now. */
  trustMcp?: boolean;
}

const intOption = (min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
  return n;
};

function usageCheck<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof AskConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * `coral ask` holds three commands: `config`, `cost`, and (the default, when
 * the first word is neither) the question itself. The question's options live
 * on that hidden default command, so `coral ask config --model x` and
 * `coral ask cost --json` reach their own options whatever the root program's
 * option parsing.
 */
export function askCommand(options: AskCommandOptions = {}): Command {
  const question = withRemoteOptions(new Command("question").description("ask a question (the default: coral ask \"<question>\")"))
    .argument("[question...]", 'the question, e.g. "why did frontend restart?"')
    .option("--model <id>", `Claude model for this question (default: from coral ask config, else ${DEFAULT_MODEL})`)
    .option("--max-tokens <n>", "output tokens per request (the answer is continued past it, a few times)", intOption(256, 128_000), 8192)
    .option("--max-retries <n>", "retries of a rate-limited or failed request (default: from coral ask config, else 2)", intOption(0, 10))
    .option("--max-rounds <n>", "rounds of tool calls before the model must answer", intOption(1, 20), 8)
    .option("--no-mcp", "do not start the external MCP servers listed under mcp.servers in .coral/config.yaml")
    .option("--trust-mcp", "trust the MCP server commands in this project's .coral/config.yaml, as they are now, and start them (recorded in $CORAL_HOME)")
    .action(async (words: string[], opts: AskOptions) => {
      const text = words.join(" ").trim();
      if (!text) throw new UsageError('what is the question? e.g. coral ask "why did frontend restart?"');
      await askAction(text, opts, options);
    });
  const ask = new Command("ask")
    .description("ask about your application: Claude answers with Coral's data (status, events, metrics) and shows its evidence")
    .usage('"<question>" [options] | config [options] | cost [options]')
    .addHelpText("after", () => questionHelp(question));
  ask.addCommand(question, { isDefault: true, hidden: true });
  ask.addCommand(askConfigCommand());
  ask.addCommand(askCostCommand());
  return ask;
}

function questionHelp(question: Command): string {
  const help = question.createHelp();
  const opts = help.visibleOptions(question);
  const width = Math.max(...opts.map((o) => help.optionTerm(o).length));
  return [
    "",
    "Ask a question:",
    '  coral ask "why did frontend restart?" [options]',
    "",
    "Options for a question:",
    ...opts.map((o) => `  ${help.optionTerm(o).padEnd(width)}  ${help.optionDescription(o)}`),
    "",
    "It prints the answer as it streams, each tool call (→ query_events {...}), then the evidence and the",
    "equivalent coral commands. Usage is logged in $CORAL_HOME/ask-usage.jsonl: see coral ask cost.",
    "The tools of external MCP servers listed under mcp.servers in .coral/config.yaml are offered too, as",
    "mcp__<server>__<tool>; a server that fails to start is reported on stderr and skipped (--no-mcp: none).",
    "The project's servers run commands from its configuration: they start only once you trust them",
    "(--trust-mcp, or yes when asked; a change in the commands asks again). Servers in $CORAL_HOME/mcp.yaml are yours.",
  ].join("\n");
}

async function askAction(question: string, opts: AskOptions, commandOptions: AskCommandOptions): Promise<void> {
  const paths = askPaths();
  const config = await loadAskConfig(paths);
  const model = opts.model ? usageCheck(() => checkModel(opts.model!)) : config.model;
  const resolved = await resolveApiKey(paths);
  if (!resolved) throw new Error("no Anthropic API key: set it with coral ask config --api-key-stdin (or set ANTHROPIC_API_KEY)");
  const baseURL = effectiveBaseUrl(config);
  const maxRetries = opts.maxRetries ?? config.max_retries;
  const target = await resolveTarget(opts);
  const colony = colonyClient(target);
  const clients = { colony, debug: serviceClient(DebugService, target), profile: serviceClient(ProfileService, target), traffic: serviceClient(TrafficService, target), query: serviceClient(QueryService, target) };
  const coralTools = commandOptions.tools ? await commandOptions.tools({ target, client: colony }) : registryAskTools(clients, { explain: (err) => unreachable(err, target) });
  const client = new Anthropic({ apiKey: resolved.key, baseURL, maxRetries });
  const mcpServers = opts.mcp ? await externalServers(opts) : undefined;
  await using external = mcpServers
    ? await ExternalMcpServers.start(mcpServers, { onWarning: (message) => console.error(pc.createColors(Boolean(process.stderr.isTTY) && !process.env.NO_COLOR).yellow(`warning: ${message}`)) })
    : undefined;
  const tools = [...coralTools, ...(external?.tools() ?? [])];

  const color = !opts.json && useColor();
  const c = pc.createColors(color);
  let atLineStart = true;
  let afterToolLine = false;
  const write = (text: string) => {
    if (!text) return;
    process.stdout.write(text);
    atLineStart = text.endsWith("\n");
    afterToolLine = false;
  };
  // The answer's text, with one blank line (not two) after the tool-call lines.
  const writeText = (text: string) => write(afterToolLine ? text.replace(/^\n+/, "\n") : text);
  const writeToolLine = (line: string) => {
    write(`${atLineStart ? "" : "\n"}${line}\n`);
    afterToolLine = true;
  };
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  let result: AskResult;
  try {
    result = await runAsk({
      question,
      tools,
      client,
      model,
      maxTokens: opts.maxTokens,
      limits: { maxToolRounds: opts.maxRounds },
      signal: controller.signal,
      onUsage: (usage) => appendUsage(paths.usage, usage),
      ...(opts.json
        ? {}
        : {
            onText: writeText,
            onToolCall: (call) => writeToolLine(c.dim(`→ ${call.name} ${JSON.stringify(call.args ?? {})}`)),
            onToolResult: (item) => {
              if (item.error) writeToolLine(c.yellow(`  ✗ ${item.tool}: ${item.error}`));
            },
          }),
    });
  } catch (err) {
    const explained = explainAnthropicError(err, { baseURL, model, maxRetries });
    if (!opts.json && !atLineStart) write("\n");
    throw new Error(redact(explained.message, resolved.key));
  } finally {
    process.removeListener("SIGINT", onSigint);
    await warnIfOverDaily(paths, config);
  }

  if (opts.json) {
    const cost = estimateCost({ model, ...result.usage });
    console.log(
      JSON.stringify(
        {
          question,
          model,
          answer: result.answer,
          evidence: result.evidence,
          suggested_commands: result.suggestedCommands,
          tool_rounds: result.toolRounds,
          continuations: result.continuations,
          stop_reason: result.stopReason,
          ...(result.incomplete ? { incomplete: result.incomplete } : {}),
          ...(external ? { mcp_servers: external.status() } : {}),
          usage: { ...result.usage, estimated_cost_usd: cost },
        },
        null,
        2,
      ),
    );
    return;
  }
  write(`${atLineStart ? "" : "\n"}\n${formatEvidence(result.evidence, result.suggestedCommands)}\n`);
}

/**
 * The external MCP servers to start: the user's ($CORAL_HOME/mcp.yaml), and
 * those of the project's .coral/config.yaml (the working folder's project,
 * or without --colony-url the current colony's) once the user trusted them
 * (mcp-trust.ts). Untrusted ones are named on stderr with how to trust them.
 */
async function externalServers(opts: AskOptions): Promise<Record<string, McpServerSettings> | undefined> {
  const dir = opts.colonyUrl ? (existsSync(join(process.cwd(), ".coral", "config.yaml")) ? process.cwd() : undefined) : await localColonyDir(process.cwd());
  const config = dir ? await loadColonyConfig(dir) : undefined;
  const plan = await planMcpServers({
    project: config && dir ? { dir, configPath: config.config_path, servers: config.mcp?.servers ?? {} } : undefined,
    home: askPaths().home,
    trustFlag: Boolean(opts.trustMcp),
    prompt: opts.json ? undefined : terminalPrompt(),
    trustHint: 'coral ask --trust-mcp "<question>"',
  }).catch((err: unknown) => {
    if (err instanceof McpTrustError) throw new UsageError(err.message);
    throw err;
  });
  const c = pc.createColors(Boolean(process.stderr.isTTY) && !process.env.NO_COLOR);
  for (const notice of plan.notices) console.error(c.yellow(notice));
  return Object.keys(plan.servers).length > 0 ? plan.servers : undefined;
}

/** A colony that does not answer is named, with where its address came from. */
function unreachable(err: Error, target: ColonyTarget): Error {
  if (!(err instanceof ToolError) || err.code !== "unavailable" || /did not answer in time/.test(err.message)) return err;
  return new Error(`colony not reachable at ${target.url} (${target.source}): is it running? Start it with: coral colony start`);
}

async function warnIfOverDaily(paths: AskPaths, config: AskConfig): Promise<void> {
  try {
    const { records } = await readUsage(paths.usage);
    const warning = dailyWarning(summarizeUsage(records), config.daily_warn_usd);
    if (warning) console.error(pc.createColors(Boolean(process.stderr.isTTY) && !process.env.NO_COLOR).yellow(warning));
  } catch {
    // The warning is a courtesy; an unreadable log must not fail the answer.
  }
}

interface ConfigOptions {
  apiKeyStdin?: boolean;
  apiKeyFile?: string;
  model?: string;
  dailyWarn?: number;
  baseUrl?: string;
  maxRetries?: number;
  json?: boolean;
}

function askConfigCommand(): Command {
  return new Command("config")
    .description("set the Anthropic API key, model, daily cost warning and API base URL ($CORAL_HOME/ask.yaml; the key in ask.key, mode 0600)")
    .option("--api-key-stdin", "read the Anthropic API key from standard input (pipe it, or paste it when asked)")
    .option("--api-key-file <file>", "read the Anthropic API key from a file")
    .option("--model <id>", `default model (${DEFAULT_MODEL} unless set)`)
    .option("--daily-warn <usd>", "warn when today's estimated cost passes this many USD; 0: never", (v) => {
      const n = Number(v);
      if (v.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a cost in USD, e.g. 10 (0: never)");
      return n;
    })
    .option("--base-url <url>", `Anthropic API base URL (default ${DEFAULT_BASE_URL}; "default" resets it)`)
    .option("--max-retries <n>", "retries of a rate-limited or failed request (default 2)", intOption(0, 10))
    .option("--json", "print JSON (the key masked)")
    .action(async (opts: ConfigOptions) => {
      if (opts.apiKeyStdin && opts.apiKeyFile) throw new UsageError("use either --api-key-stdin or --api-key-file, not both");
      const paths = askPaths();
      const changes: Partial<Omit<AskConfig, "provider">> = {};
      if (opts.model !== undefined) changes.model = usageCheck(() => checkModel(opts.model!));
      if (opts.dailyWarn !== undefined) changes.daily_warn_usd = usageCheck(() => checkDailyWarn(opts.dailyWarn!));
      if (opts.maxRetries !== undefined) changes.max_retries = usageCheck(() => checkMaxRetries(opts.maxRetries!));
      if (opts.baseUrl !== undefined) changes.base_url = opts.baseUrl === "default" ? undefined : usageCheck(() => checkBaseUrl(opts.baseUrl!));
      let newKey: string | undefined;
      const rawKey = opts.apiKeyStdin ? await readKeyFromStdin() : opts.apiKeyFile ? await readKeyFile(opts.apiKeyFile) : undefined;
      if (rawKey !== undefined) newKey = usageCheck(() => checkApiKey(rawKey));

      const lines: string[] = [];
      const changed = Object.keys(changes).length > 0;
      const config = changed ? await saveAskConfig(changes, paths) : await loadAskConfig(paths);
      if (changed) lines.push(`✓ Configuration saved to ${paths.config}`);
      if (newKey) {
        await saveApiKey(newKey, paths);
        lines.push(`✓ API key saved to ${paths.key} (mode 0600): ${maskKey(newKey)}`);
        lines.push(`  It stays on this machine and is sent only to ${effectiveBaseUrl(config)}.`);
        if (process.env.ANTHROPIC_API_KEY?.trim()) lines.push("  Note: ANTHROPIC_API_KEY is set in this shell and overrides the key file.");
      }
      const key = await resolveApiKey(paths).catch((err: Error) => err);
      if (opts.json) {
        console.log(JSON.stringify(configJson(config, key, paths), null, 2));
        return;
      }
      if (lines.length > 0) lines.push("");
      lines.push(...formatConfig(config, key, paths));
      console.log(lines.join("\n"));
    });
}

function keyDescription(key: ResolvedKey | Error | undefined, paths: AskPaths): { masked: string | null; source: string } {
  if (key instanceof Error) return { masked: null, source: key.message };
  if (!key) return { masked: null, source: "not set: coral ask config --api-key-stdin" };
  return { masked: maskKey(key.key), source: key.source === "ANTHROPIC_API_KEY" ? "ANTHROPIC_API_KEY" : paths.key };
}

function configJson(config: AskConfig, key: ResolvedKey | Error | undefined, paths: AskPaths) {
  const k = keyDescription(key, paths);
  return {
    provider: config.provider,
    model: config.model,
    base_url: effectiveBaseUrl(config),
    daily_warn_usd: config.daily_warn_usd,
    max_retries: config.max_retries,
    api_key: k.masked,
    api_key_source: k.source,
    config_file: paths.config,
    usage_file: paths.usage,
  };
}

function formatConfig(config: AskConfig, key: ResolvedKey | Error | undefined, paths: AskPaths): string[] {
  const k = keyDescription(key, paths);
  return [
    "Coral ask configuration",
    `  Provider:       Anthropic`,
    `  Model:          ${config.model}${config.model === DEFAULT_MODEL ? " (default)" : ""}`,
    `  Base URL:       ${effectiveBaseUrl(config)}`,
    `  Daily warning:  ${config.daily_warn_usd > 0 ? `${formatUsd(config.daily_warn_usd)}/day` : "off"}`,
    `  Max retries:    ${config.max_retries}`,
    `  API key:        ${k.masked ? `${k.masked} (from ${k.source})` : k.source}`,
    `  Config file:    ${paths.config}`,
  ];
}

async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(`--api-key-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Piped: all of stdin. A terminal: one line, not echoed. */
async function readKeyFromStdin(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }
  process.stderr.write("Anthropic API key (input hidden): ");
  const muted = new Writable({ write: (_chunk, _enc, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.once("line", resolve));
  } finally {
    rl.close();
    process.stderr.write("\n");
  }
}

function askCostCommand(): Command {
  return new Command("cost")
    .description("requests, tokens and estimated cost of coral ask today and this month")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const paths = askPaths();
      const config = await loadAskConfig(paths);
      const { records, skipped } = await readUsage(paths.usage);
      const summary = summarizeUsage(records);
      if (opts.json) {
        console.log(
          JSON.stringify(
            {
              provider: "anthropic",
              model: config.model,
              ...summary,
              daily_warn_usd: config.daily_warn_usd,
              daily_warn_exceeded: config.daily_warn_usd > 0 && summary.today.estimated_cost_usd > config.daily_warn_usd,
              estimates: true,
              usage_file: paths.usage,
              skipped_lines: skipped,
            },
            null,
            2,
          ),
        );
        return;
      }
      console.log(formatCostReport(summary, { model: config.model, dailyWarnUsd: config.daily_warn_usd, usageFile: paths.usage, skipped }));
    });
}
