// The tool-use loop of `coral ask` over the Anthropic Messages API:
//   ask (streaming the answer as it arrives) → the model asks for tools → run
//   them → feed their results back → ... until stop_reason is end_turn.
// Bounded: at most maxToolRounds rounds of tools (then the model must answer
// with what it has), each tool result and all of them together within a
// character budget (cut with a paging note), and at most maxContinuations
// continuations when the answer hits the output-token limit; when a bound is
// hit the answer says so instead of ending silently.
import type Anthropic from "@anthropic-ai/sdk";
import { digestOf, fitToolResult } from "./budget.ts";
import { AskError } from "./errors.ts";
import { suggestedCommands } from "./suggest.ts";
import { defaultAskLimits, type AskLimits, type AskTool, type EvidenceItem, type RequestUsage } from "./types.ts";

export interface ToolCallNotice {
  name: string;
  args: unknown;
  round: number;
}

export interface RunAskOptions {
  question: string;
  tools: AskTool[];
  client: Anthropic;
  model: string;
  /** Output tokens per request (max_tokens). Default 8192. */
  maxTokens?: number;
  /** Each piece of the answer's text as it streams in (including coral's own notes when a bound is hit). */
  onText?: (text: string) => void;
  /** Called as each tool call starts. */
  onToolCall?: (call: ToolCallNotice) => void;
  /** Called as each tool call ends. */
  onToolResult?: (item: EvidenceItem) => void;
  /** Each request's token usage (also a failed stream's partial usage); awaited, e.g. to append to the usage log. */
  onUsage?: (usage: RequestUsage) => void | Promise<void>;
  signal?: AbortSignal;
  limits?: Partial<AskLimits>;
  /** Replaces the default system prompt. */
  system?: string;
  now?: () => Date;
}

export interface AskResult {
  /** The answer as streamed (all assistant text, with coral's notes). */
  answer: string;
  evidence: EvidenceItem[];
  suggestedCommands: string[];
  /** answer + "Evidence" + "Suggested commands": what the CLI shows. */
  output: string;
  usage: Omit<RequestUsage, "model" | "stop_reason" | "request_id" | "partial"> & { requests: number };
  toolRounds: number;
  continuations: number;
  stopReason: string | null;
  /** Set when a bound cut the investigation or the answer short; also said in the answer. */
  incomplete?: string;
}

export function defaultSystemPrompt(now: Date, tools: readonly AskTool[]): string {
  return [
    "You are Coral's assistant. You answer questions about a running application that a Coral colony observes",
    "(its components, their health, versions, restarts, events, metrics, HTTP requests, traces and logs).",
    `The current time is ${now.toISOString()}.`,
    "",
    "How to work:",
    `- Use the tools (${tools.map((t) => t.name).join(", ")}) to get facts before answering; do not guess.`,
    "- Quote the exact numbers, times, versions and counts the tools returned, and say which query showed them.",
    "- Say plainly when the data does not show something, and what would show it.",
    "- Tool results may be cut to fit your context; the cut says how to page (narrower time range, one service, a smaller limit).",
    "- Keep the answer short and structured: what happened, the likely cause with your confidence, what to do next.",
    "- Do not list coral commands for the queries you made: coral prints them after your answer, with the evidence.",
  ].join("\n");
}

const toolNamePattern = /^[a-zA-Z0-9_-]{1,128}$/;

function checkTools(tools: readonly AskTool[]): void {
  const seen = new Set<string>();
  for (const t of tools) {
    if (!toolNamePattern.test(t.name)) throw new AskError(`tool name "${t.name}" is not allowed: letters, digits, _ and - only`, "config");
    if (seen.has(t.name)) throw new AskError(`two tools are named "${t.name}"`, "config");
    seen.add(t.name);
    if ((t.inputSchema as { type?: unknown }).type !== "object")
      throw new AskError(`tool "${t.name}": its input schema must be a JSON schema with type "object"`, "config");
  }
}

/** The response's content as request content, for the next turn (thinking blocks kept with their signatures). */
function toParams(content: readonly Anthropic.ContentBlock[], options: { dropToolUse?: boolean } = {}): Anthropic.ContentBlockParam[] {
  const out: Anthropic.ContentBlockParam[] = [];
  for (const block of content) {
    switch (block.type) {
      case "text":
        if (block.text !== "") out.push({ type: "text", text: block.text });
        break;
      case "thinking":
        // A thinking block cut before its signature cannot be sent back.
        if (!options.dropToolUse && block.signature) out.push({ type: "thinking", thinking: block.thinking, signature: block.signature });
        break;
      case "redacted_thinking":
        if (!options.dropToolUse) out.push({ type: "redacted_thinking", data: block.data });
        break;
      case "tool_use":
        if (!options.dropToolUse) out.push({ type: "tool_use", id: block.id, name: block.name, input: block.input });
        break;
      default:
        // Server-side blocks are sent back as the API gave them.
        if (!options.dropToolUse) out.push(block as unknown as Anthropic.ContentBlockParam);
    }
  }
  return out;
}

function usageOf(model: string, message: Pick<Anthropic.Message, "usage" | "stop_reason">, requestId: string | null | undefined, partial: boolean): RequestUsage {
  const u = message.usage;
  return {
    model,
    input_tokens: u?.input_tokens ?? 0,
    output_tokens: u?.output_tokens ?? 0,
    cache_creation_input_tokens: u?.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: u?.cache_read_input_tokens ?? 0,
    stop_reason: message.stop_reason ?? null,
    ...(requestId ? { request_id: requestId } : {}),
    ...(partial ? { partial: true } : {}),
  };
}

const json = (v: unknown) => {
  try {
    return JSON.stringify(v) ?? "null";
  } catch {
    return String(v);
  }
};

/** "Evidence" and "Suggested commands", the end of every answer. */
export function formatEvidence(evidence: readonly EvidenceItem[], commands: readonly string[]): string {
  const lines = ["Evidence"];
  if (evidence.length === 0) lines.push("  (no tools were called: the answer rests on no Coral data)");
  evidence.forEach((e, i) => {
    const cut = e.truncated ? ` (the model saw part of ${e.chars} characters)` : "";
    const args = json(e.args);
    lines.push(`  ${i + 1}. ${e.tool} ${args.length > 200 ? `${args.slice(0, 199)}…` : args} → ${e.error ? `error: ${e.error}` : e.digest}${cut}`);
  });
  lines.push("", "Suggested commands");
  if (commands.length === 0) lines.push("  (none)");
  for (const c of commands) lines.push(`  ${c}`);
  return lines.join("\n");
}

export async function runAsk(options: RunAskOptions): Promise<AskResult> {
  const limits: AskLimits = { ...defaultAskLimits, ...options.limits };
  const now = options.now ?? (() => new Date());
  const tools = options.tools;
  checkTools(tools);
  const byName = new Map(tools.map((t) => [t.name, t]));
  const apiTools: Anthropic.Tool[] = tools.map((t) => ({
    name: t.name,
    description: t.description,
    input_schema: t.inputSchema as Anthropic.Tool.InputSchema,
  }));
  const system = options.system ?? defaultSystemPrompt(now(), tools);
  const maxTokens = options.maxTokens ?? 8192;
  const messages: Anthropic.MessageParam[] = [{ role: "user", content: options.question }];

  let answer = "";
  const emit = (text: string) => {
    answer += text;
    options.onText?.(text);
  };
  const note = (text: string) => emit(`${answer === "" || answer.endsWith("\n") ? "" : "\n"}\n[coral ask: ${text}]\n`);

  const evidence: EvidenceItem[] = [];
  const totals = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, requests: 0 };
  let toolRounds = 0;
  let continuations = 0;
  let toolCharsUsed = 0;
  let mustAnswer = false;
  let incomplete: string | undefined;
  let stopReason: string | null = null;

  const record = async (usage: RequestUsage) => {
    totals.requests++;
    totals.input_tokens += usage.input_tokens;
    totals.output_tokens += usage.output_tokens;
    totals.cache_creation_input_tokens += usage.cache_creation_input_tokens;
    totals.cache_read_input_tokens += usage.cache_read_input_tokens;
    await options.onUsage?.(usage);
  };

  // How the next turn's text joins the answer: a new paragraph after tool
  // calls, glued on when it continues a reply cut at the token limit.
  let join: "paragraph" | "glue" = "paragraph";

  /** One streamed request; the text reaches onText as it arrives. */
  const request = async (): Promise<Anthropic.Message> => {
    // Past the tool budget the model keeps its tools (the history holds
    // tool_use blocks, which need their definitions) but may not call them.
    const params: Anthropic.MessageStreamParams = {
      model: options.model,
      max_tokens: maxTokens,
      system,
      ...(apiTools.length > 0 ? { tools: apiTools } : {}),
      messages,
      ...(mustAnswer && apiTools.length > 0 ? { tool_choice: { type: "none" } } : {}),
    };
    const stream = options.client.messages.stream(params, { signal: options.signal });
    // A turn after tool calls starts on a new paragraph.
    let first = true;
    stream.on("text", (delta) => {
      if (first && join === "paragraph" && answer !== "" && !answer.endsWith("\n\n")) emit(answer.endsWith("\n") ? "\n" : "\n\n");
      first = false;
      emit(delta);
    });
    try {
      const message = await stream.finalMessage();
      await record(usageOf(options.model, message, stream.request_id, false));
      return message;
    } catch (err) {
      const partial = stream.currentMessage;
      if (partial) await record(usageOf(options.model, partial, stream.request_id, true)).catch(() => undefined);
      throw err;
    }
  };
  for (;;) {
    if (totals.requests >= limits.maxRequests) {
      incomplete = `stopped after ${totals.requests} requests to the model (the limit for one question); the answer may be incomplete`;
      note(incomplete);
      break;
    }
    if (options.signal?.aborted) throw new AskError("cancelled", "aborted");
    const message = await request();
    join = "paragraph";
    stopReason = message.stop_reason ?? null;

    const uses = message.content.filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
    if (message.stop_reason === "tool_use" && uses.length > 0) {
      if (mustAnswer) {
        // Told not to call tools and called them anyway: stop rather than loop.
        incomplete = `the model kept asking for tools after its budget of ${limits.maxToolRounds} rounds; the answer is incomplete`;
        note(incomplete);
        break;
      }
      toolRounds++;
      messages.push({ role: "assistant", content: toParams(message.content) });
      for (const use of uses) options.onToolCall?.({ name: use.name, args: use.input, round: toolRounds });
      const outcomes = await Promise.all(uses.map((use) => runTool(byName.get(use.name), use, options.signal)));
      const results: Anthropic.ContentBlockParam[] = [];
      uses.forEach((use, i) => {
        const outcome = outcomes[i]!;
        const tool = byName.get(use.name);
        const left = limits.maxTotalToolChars - toolCharsUsed;
        const budget = left >= limits.maxToolResultChars ? limits.maxToolResultChars : Math.max(limits.minToolResultChars, left);
        const reason = left >= limits.maxToolResultChars ? `the per-result budget of ${limits.maxToolResultChars} characters` : "what is left of this question's tool-output budget";
        const fitted = outcome.error
          ? { text: outcome.error, truncated: false }
          : fitToolResult(outcome.text, budget, tool ?? { name: use.name, inputSchema: {} }, reason);
        toolCharsUsed += fitted.text.length;
        const item: EvidenceItem = {
          tool: use.name,
          args: use.input,
          digest: outcome.error ? `error: ${outcome.error}` : digestOf(tool?.digest?.(outcome.text) ?? outcome.text),
          chars: outcome.error ? 0 : outcome.text.length,
          truncated: fitted.truncated,
          durationMs: outcome.durationMs,
          round: toolRounds,
          ...(outcome.error ? { error: outcome.error } : {}),
        };
        evidence.push(item);
        options.onToolResult?.(item);
        results.push({ type: "tool_result", tool_use_id: use.id, content: fitted.text || "(empty)", ...(outcome.error ? { is_error: true } : {}) });
      });
      if (toolRounds >= limits.maxToolRounds) {
        mustAnswer = true;
        results.push({
          type: "text",
          text: `[coral ask: that was the last round of tools (${limits.maxToolRounds}). Answer now with the evidence you have, and say what remains unknown.]`,
        });
      } else if (toolCharsUsed >= limits.maxTotalToolChars) {
        results.push({
          type: "text",
          text: "[coral ask: the tool-output budget for this question is used up; further results will be cut short. Prefer answering now.]",
        });
      }
      messages.push({ role: "user", content: results });
      continue;
    }

    if (message.stop_reason === "max_tokens") {
      if (continuations >= limits.maxContinuations) {
        incomplete = `the answer was cut at the output-token limit (${maxTokens} tokens) ${continuations + 1} times; it is incomplete. Ask a narrower question or raise --max-tokens`;
        note(incomplete);
        break;
      }
      continuations++;
      // Keep the text written so far (an unfinished tool call is dropped: it
      // cannot be answered) and ask for the rest.
      const kept = toParams(message.content, { dropToolUse: true });
      const cont = "[coral ask: your reply was cut at the output-token limit. Continue exactly where it stopped, without repeating anything; be concise.]";
      if (kept.length > 0) messages.push({ role: "assistant", content: kept }, { role: "user", content: cont });
      else appendUserText(messages, cont);
      if (kept.length > 0) join = "glue";
      continue;
    }

    if (message.stop_reason === "pause_turn") {
      // A long server-side turn paused: send it back as is to let it go on.
      messages.push({ role: "assistant", content: toParams(message.content) });
      join = "glue";
      continue;
    }

    if (message.stop_reason === "refusal") {
      incomplete = "the model declined to answer this question";
      note(incomplete);
    } else if (message.stop_reason === "model_context_window_exceeded") {
      incomplete = "the conversation filled the model's context window; the answer is incomplete. Ask a narrower question";
      note(incomplete);
    }
    break; // end_turn, stop_sequence
  }

  const commands = suggestedCommands(evidence, tools, now());
  if (answer !== "" && !answer.endsWith("\n")) emit("\n");
  const output = `${answer}\n${formatEvidence(evidence, commands)}\n`;
  return {
    answer,
    evidence,
    suggestedCommands: commands,
    output,
    usage: totals,
    toolRounds,
    continuations,
    stopReason,
    ...(incomplete ? { incomplete } : {}),
  };
}

function appendUserText(messages: Anthropic.MessageParam[], text: string): void {
  const last = messages[messages.length - 1];
  if (last?.role === "user") {
    const content: Anthropic.ContentBlockParam[] = typeof last.content === "string" ? [{ type: "text", text: last.content }] : [...last.content];
    content.push({ type: "text", text });
    last.content = content;
  } else messages.push({ role: "user", content: text });
}

interface ToolOutcome {
  text: string;
  error?: string;
  durationMs: number;
}

async function runTool(tool: AskTool | undefined, use: Anthropic.ToolUseBlock, signal: AbortSignal | undefined): Promise<ToolOutcome> {
  const started = Date.now();
  if (!tool) return { text: "", error: `there is no tool named "${use.name}"`, durationMs: 0 };
  if (signal?.aborted) throw new AskError("cancelled", "aborted");
  try {
    const { text } = await tool.run(use.input);
    return { text: String(text ?? ""), durationMs: Date.now() - started };
  } catch (err) {
    const message = (err instanceof Error ? err.message : String(err)).split("\n")[0]!.slice(0, 500);
    return { text: "", error: message || "the tool failed", durationMs: Date.now() - started };
  }
}
