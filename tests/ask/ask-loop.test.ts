// The `coral ask` loop's bounds and failures, against a STAND-IN for the
// Anthropic Messages API (a local server speaking its wire format through the
// SDK's baseURL; the real API is unreachable here): answers cut at
// max_tokens are continued, tool output and tool rounds stay within budget,
// and API errors (401, 429 with retry-after, 5xx, overload mid-stream, no
// network) become clear messages.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "vitest";
import { explainAnthropicError, runAsk, type AskError, type AskTool, type RequestUsage } from "@coral/cli/ask";
import { freePort } from "../helpers/ports.ts";
import { AnthropicStandIn, lastUserText, toolResults, type Script } from "./anthropic-stand-in.ts";
import { runAskCli } from "./cli.ts";

const KEY = "sk-ant-api03-loop-test-0123456789-abcd";
const MODEL = "claude-sonnet-5-5";
const noAnthropicEnv = { ANTHROPIC_API_KEY: undefined, ANTHROPIC_BASE_URL: undefined, ANTHROPIC_AUTH_TOKEN: undefined, ANTHROPIC_LOG: undefined };

const client = (standIn: { url: string }, maxRetries = 0) => new Anthropic({ apiKey: KEY, baseURL: standIn.url, maxRetries });

/** A tool that answers with `lines` numbered lines, and counts its calls. */
function bigTool(lines: number): AskTool & { calls: unknown[] } {
  const calls: unknown[] = [];
  return {
    name: "query_events",
    description: "events",
    inputSchema: { type: "object", properties: { since: { type: "string" }, service: { type: "string" }, limit: { type: "integer" } } },
    calls,
    async run(args) {
      calls.push(args);
      return { text: [`${lines} event(s) in range`, ...Array.from({ length: lines - 1 }, (_, i) => `2026-11-23T14:${String(i % 60).padStart(2, "0")}:00Z frontend restart exit_code=${i}`)].join("\n") };
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<AskError> {
  try {
    await promise;
  } catch (err) {
    return explainAnthropicError(err, { baseURL: "http://stand-in", model: MODEL, maxRetries: 1 });
  }
  throw new Error("expected a failure");
}

describe("coral ask loop (Anthropic API stand-in)", () => {
  it("continues an answer cut at max_tokens, and says so when the bound is hit", async () => {
    const script: Script = ({ body, index }) => {
      if (index === 0) return { kind: "message", stop_reason: "max_tokens", content: [{ type: "text", text: "Part one of the answer, " }] };
      // The loop sent back what was written and asked for the rest.
      expect(body.messages.at(-2)).toEqual({ role: "assistant", content: [{ type: "text", text: "Part one of the answer, " }] });
      expect(lastUserText(body)).toMatch(/cut at the output-token limit\. Continue exactly where it stopped/);
      return { kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: "part two." }] };
    };
    await using standIn = await AnthropicStandIn.start(script);
    const result = await runAsk({ question: "summarise", tools: [], client: client(standIn), model: MODEL, maxTokens: 300 });
    expect(result.answer).toBe("Part one of the answer, part two.\n");
    expect(result.continuations).toBe(1);
    expect(result.incomplete).toBeUndefined();
    expect(standIn.requests.map((r) => r.body.max_tokens)).toEqual([300, 300]);

    await using always = await AnthropicStandIn.start(() => ({ kind: "message", stop_reason: "max_tokens", content: [{ type: "text", text: "more " }] }));
    const cut = await runAsk({ question: "tell me everything", tools: [], client: client(always), model: MODEL, limits: { maxContinuations: 2 } });
    expect(always.requests).toHaveLength(3);
    expect(cut.incomplete).toMatch(/cut at the output-token limit \(8192 tokens\) 3 times; it is incomplete/);
    expect(cut.answer).toMatch(/^more more more \n\n\[coral ask: the answer was cut at the output-token limit/);
  });

  it("drops a tool call cut at max_tokens and continues", async () => {
    const script: Script = ({ body, index }) => {
      if (index === 0)
        return {
          kind: "message",
          stop_reason: "max_tokens",
          cutToolJsonAt: 12,
          content: [
            { type: "text", text: "Checking." },
            { type: "tool_use", id: "toolu_cut", name: "query_events", input: { service: "frontend", since: "1h" } },
          ],
        };
      expect(JSON.stringify(body.messages)).not.toContain("toolu_cut");
      return { kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: " Nothing found." }] };
    };
    await using standIn = await AnthropicStandIn.start(script);
    const tool = bigTool(3);
    const result = await runAsk({ question: "q", tools: [tool], client: client(standIn), model: MODEL });
    expect(tool.calls).toEqual([]);
    expect(result.answer).toBe("Checking. Nothing found.\n");
    expect(result.continuations).toBe(1);
  });

  it("cuts a large tool result with a paging note and keeps all results within the question's budget", async () => {
    const script: Script = ({ body }) => {
      const done = toolResults(body).length;
      if (done < 3)
        return {
          kind: "message",
          stop_reason: "tool_use",
          content: [{ type: "tool_use", id: `toolu_${done}`, name: "query_events", input: { since: "6h", limit: 1000 } }],
        };
      return { kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: "done" }] };
    };
    await using standIn = await AnthropicStandIn.start(script);
    const result = await runAsk({
      question: "q",
      tools: [bigTool(2000)],
      client: client(standIn),
      model: MODEL,
      limits: { maxToolResultChars: 4000, maxTotalToolChars: 6000, minToolResultChars: 500 },
    });
    const seen = toolResults(standIn.requests.at(-1)!.body).map((r) => r.text);
    expect(seen.map((t) => t.length <= 4000)).toEqual([true, true, true]);
    expect(seen[0]!.length).toBeGreaterThan(3500);
    expect(seen[0]).toMatch(/^2000 event\(s\) in range\n/);
    expect(seen[0]).toMatch(/\[coral ask cut this result to fit the per-result budget of 4000 characters: showing \d+ of 2000 lines \(\d+ of \d+ characters\)\. To see the rest, call query_events again with a shorter since \(e\.g\. 15m\), one service, a smaller limit\.\]$/);
    expect(seen[1]!.length).toBeLessThanOrEqual(2000);
    expect(seen[1]).toMatch(/to fit what is left of this question's tool-output budget/);
    expect(seen[2]!.length).toBeLessThanOrEqual(500);
    expect(result.evidence.map((e) => [e.truncated, e.digest])).toEqual([
      [true, "2000 event(s) in range"],
      [true, "2000 event(s) in range"],
      [true, "2000 event(s) in range"],
    ]);
    expect(result.output).toContain("(the model saw part of ");
  });

  it("stops tool use after the round budget and makes the model answer with what it has", async () => {
    const script: Script = ({ body, index }) => {
      if (body.tool_choice?.type === "none")
        return { kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: `Answer after ${toolResults(body).length} tool calls.` }] };
      return { kind: "message", stop_reason: "tool_use", content: [{ type: "tool_use", id: `toolu_${index}`, name: "query_events", input: { since: `${index + 1}h` } }] };
    };
    await using standIn = await AnthropicStandIn.start(script);
    const tool = bigTool(2);
    const result = await runAsk({ question: "q", tools: [tool], client: client(standIn), model: MODEL, limits: { maxToolRounds: 3 } });
    expect(tool.calls).toHaveLength(3);
    expect(result.toolRounds).toBe(3);
    expect(standIn.requests).toHaveLength(4);
    expect(standIn.requests[3]!.body.tool_choice).toEqual({ type: "none" });
    expect(lastUserText(standIn.requests[3]!.body)).toMatch(/that was the last round of tools \(3\)\. Answer now/);
    expect(result.answer).toBe("Answer after 3 tool calls.\n");
    expect(result.suggestedCommands).toEqual(["coral events --since 1h", "coral events --since 2h", "coral events --since 3h"]);
  });

  it("reports failing and unknown tools to the model as errors, and in the evidence", async () => {
    const failing: AskTool = {
      name: "get_status",
      description: "status",
      inputSchema: { type: "object", properties: {} },
      run: () => Promise.reject(new Error("colony not reachable at http://127.0.0.1:1 (--colony-url): is it running?")),
    };
    const script: Script = ({ body, index }) => {
      if (index === 0)
        return {
          kind: "message",
          stop_reason: "tool_use",
          content: [
            { type: "tool_use", id: "toolu_a", name: "get_status", input: {} },
            { type: "tool_use", id: "toolu_b", name: "drop_database", input: {} },
          ],
        };
      const results = toolResults(body);
      return { kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: results.map((r) => `${r.name}: ${r.isError ? "error" : "ok"} (${r.text})`).join("; ") }] };
    };
    await using standIn = await AnthropicStandIn.start(script);
    const result = await runAsk({ question: "q", tools: [failing], client: client(standIn), model: MODEL });
    expect(result.answer).toContain("get_status: error (colony not reachable at http://127.0.0.1:1");
    expect(result.answer).toContain('drop_database: error (there is no tool named "drop_database")');
    expect(result.evidence.map((e) => e.digest)).toEqual([
      "error: colony not reachable at http://127.0.0.1:1 (--colony-url): is it running?",
      'error: there is no tool named "drop_database"',
    ]);
    expect(result.suggestedCommands).toEqual(["coral status"]);
  });

  it("turns API errors into clear messages: 401, 429 with retry-after, 5xx, overload mid-stream, no network", async () => {
    await using refused = await AnthropicStandIn.start(() => ({ kind: "error", status: 401, type: "authentication_error", message: "invalid x-api-key" }));
    const auth = await failure(runAsk({ question: "q", tools: [], client: client(refused), model: MODEL }));
    expect(auth.message).toBe("the Anthropic API key was refused: set it with coral ask config --api-key-stdin");
    expect(auth.status).toBe(401);

    // 429: the SDK waits as long as retry-after says, then retries.
    const limited: Script = ({ index }) =>
      index === 0
        ? { kind: "error", status: 429, type: "rate_limit_error", message: "Number of request tokens has exceeded your per-minute rate limit", headers: { "retry-after": "1" } }
        : { kind: "message", stop_reason: "end_turn", content: [{ type: "text", text: "after the wait" }] };
    await using slow = await AnthropicStandIn.start(limited);
    const usages: RequestUsage[] = [];
    const waited = await runAsk({ question: "q", tools: [], client: client(slow, 2), model: MODEL, onUsage: (u) => void usages.push(u) });
    expect(waited.answer).toBe("after the wait\n");
    expect(slow.requests[1]!.at - slow.requests[0]!.at).toBeGreaterThanOrEqual(950);
    expect(usages).toHaveLength(1);

    const stillLimited: Script = ({ index }) => ({
      kind: "error",
      status: 429,
      type: "rate_limit_error",
      message: "rate limit exceeded",
      headers: { "retry-after": index === 0 ? "1" : "7" },
    });
    await using busy = await AnthropicStandIn.start(stillLimited);
    const rate = await failure(runAsk({ question: "q", tools: [], client: client(busy, 1), model: MODEL }));
    expect(busy.requests).toHaveLength(2);
    expect(rate.message).toBe("rate limited; retry in 7 s (after 1 retry; more with --max-retries): rate limit exceeded");
    expect(rate.retryAfterSeconds).toBe(7);

    await using broken = await AnthropicStandIn.start(() => ({ kind: "error", status: 500, type: "api_error", message: "Internal server error" }));
    const server = await failure(runAsk({ question: "q", tools: [], client: client(broken, 1), model: MODEL }));
    expect(broken.requests).toHaveLength(2); // retried once
    expect(server.message).toBe("the Anthropic API failed (500: Internal server error); the problem is on Anthropic's side, try again later (request req_standin_1)");

    await using overloaded = await AnthropicStandIn.start(() => ({ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" }));
    const over = await failure(runAsk({ question: "q", tools: [], client: client(overloaded), model: MODEL }));
    expect(over.message).toBe("the Anthropic API is overloaded (529); try again in a minute (request req_standin_0)");

    await using midway = await AnthropicStandIn.start(() => ({ kind: "stream-error", text: "Partial ans", type: "overloaded_error", message: "Overloaded" }));
    const partial: RequestUsage[] = [];
    const stream = await failure(runAsk({ question: "q", tools: [], client: client(midway), model: MODEL, onUsage: (u) => void partial.push(u) }));
    expect(stream.message).toMatch(/^the Anthropic API is overloaded; try again in a minute/);
    expect(partial).toEqual([expect.objectContaining({ partial: true, model: MODEL, output_tokens: 1 })]);
    expect(partial[0]!.input_tokens).toBeGreaterThan(0);

    await using unknownModel = await AnthropicStandIn.start(() => ({ kind: "error", status: 404, type: "not_found_error", message: "model: claude-nope" }));
    const notFound = await failure(runAsk({ question: "q", tools: [], client: client(unknownModel), model: MODEL }));
    expect(notFound.message).toMatch(/does not know model "claude-sonnet-5-5" \(404\): model: claude-nope; pick another with coral ask config --model/);

    const closed = `http://127.0.0.1:${await freePort()}`;
    const offline = await failure(runAsk({ question: "q", tools: [], client: new Anthropic({ apiKey: KEY, baseURL: closed, maxRetries: 0 }), model: MODEL }));
    expect(offline.message).toMatch(/^cannot reach the Anthropic API at http:\/\/stand-in \(.*ECONNREFUSED.*\); check your network, proxy or base URL/);
    expect(offline.kind).toBe("network");
  });

  it("as a command: API errors exit 1 with the message and never show the key", async () => {
    const script: Script = ({ index }) =>
      index === 0
        ? { kind: "error", status: 401, type: "authentication_error", message: "invalid x-api-key" }
        : { kind: "error", status: 429, type: "rate_limit_error", message: "slow down", headers: { "retry-after": "42" } };
    await using standIn = await AnthropicStandIn.start(script);
    const home = await mkdtemp(join(tmpdir(), "coral-ask-home-"));
    try {
      const env = { ...noAnthropicEnv, CORAL_HOME: home };
      const colony = ["--colony-url", "http://127.0.0.1:1", "--token", "unused"];
      const none = await runAskCli(["ask", "why?", ...colony], { env });
      expect(none.code).toBe(1);
      expect(none.stderr).toContain("Error: no Anthropic API key: set it with coral ask config --api-key-stdin (or set ANTHROPIC_API_KEY)");

      const keyEnv = { ...env, ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: standIn.url };
      const refused = await runAskCli(["ask", "why?", ...colony], { env: keyEnv });
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toBe("Error: the Anthropic API key was refused: set it with coral ask config --api-key-stdin");

      const limited = await runAskCli(["ask", "why?", "--max-retries", "0", ...colony], { env: keyEnv });
      expect(limited.code).toBe(1);
      expect(limited.stderr.trim()).toBe("Error: rate limited; retry in 42 s: slow down");

      const shown = await runAskCli(["ask", "config"], { env: keyEnv });
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/API key:\s+sk-\.\.\.abcd \(from ANTHROPIC_API_KEY\)/);
      expect(shown.stdout).toContain(`Base URL:       ${standIn.url}`);

      const usage = await runAskCli(["ask", "config", "--daily-warn", "lots"], { env });
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/--daily-warn/);
      const otherProvider = await runAskCli(["ask", "config", "--model", "openai:gpt-4o"], { env });
      expect(otherProvider.code).toBe(2);
      expect(otherProvider.stderr).toContain('model "openai:gpt-4o": only Anthropic models are supported');
      const noQuestion = await runAskCli(["ask"], { env });
      expect(noQuestion.code).toBe(2);

      for (const r of [none, refused, limited, shown, usage, otherProvider, noQuestion]) expect(r.stdout + r.stderr).not.toContain(KEY);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 150_000); // several CLI processes; slow on a busy machine
});
