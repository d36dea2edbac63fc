// The MCP client's pure parts: backoff, ${NAME} expansion, tool names, result text.
import { describe, expect, it } from "vitest";
import { mcpServerSchema } from "@coral/colony";
import { backoffDelay, expandEnv, namespacedToolName, resultText } from "./client.ts";

describe("MCP client helpers", () => {
  it("backs off exponentially (capped at 30 s) or at a fixed pace", () => {
    const retry = mcpServerSchema.parse({ command: "x", retry: { initial_delay: "500ms" } }).retry;
    expect([1, 2, 3, 4].map((n) => backoffDelay(retry, n))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(retry, 20)).toBe(30_000);
    const fixed = mcpServerSchema.parse({ command: "x", retry: { backoff: "fixed", initial_delay: "2s" } }).retry;
    expect([1, 5].map((n) => backoffDelay(fixed, n))).toEqual([2000, 2000]);
    // The 30 s cap is the exponential pace's; a fixed pace keeps its delay.
    const slow = (backoff: string) => mcpServerSchema.parse({ command: "x", retry: { backoff, initial_delay: "45s" } }).retry;
    expect([1, 3].map((n) => backoffDelay(slow("exponential"), n))).toEqual([30_000, 30_000]);
    expect([1, 3].map((n) => backoffDelay(slow("fixed"), n))).toEqual([45_000, 45_000]);
  });

  it("expands ${NAME} from the environment and names a missing variable, never a value", () => {
    expect(expandEnv({ URL: "https://${HOST}/api", PLAIN: "a$b" }, { HOST: "grafana.example.com" })).toEqual({ URL: "https://grafana.example.com/api", PLAIN: "a$b" });
    expect(() => expandEnv({ TOKEN: "Bearer ${SECRET_TOKEN}" }, {})).toThrow("env TOKEN: ${SECRET_TOKEN} is not set in coral's environment");
  });

  it("namespaces tool names within the Messages API's rules, unique", () => {
    const taken = new Set<string>();
    const a = namespacedToolName("grafana", "search.dashboards", taken);
    expect(a).toBe("mcp__grafana__search_dashboards");
    taken.add(a);
    expect(namespacedToolName("grafana", "search/dashboards", taken)).toBe("mcp__grafana__search_dashboards_2");
    const long = namespacedToolName("s", "t".repeat(300), new Set());
    expect(long.length).toBeLessThanOrEqual(128);
    expect(long).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("turns content blocks into text and describes what is not text", () => {
    expect(
      resultText({
        content: [
          { type: "text", text: "3 issues" },
          { type: "image", data: "AAAA", mimeType: "image/png" },
          { type: "resource", resource: { uri: "sentry://issue/1", text: "TypeError in checkout" } },
          { type: "resource_link", uri: "sentry://issue/2", name: "issue 2" },
        ],
      }),
    ).toBe("3 issues\n[image image/png, 3 bytes: not shown]\nTypeError in checkout\n[resource issue 2 sentry://issue/2]");
    expect(resultText({ content: [], structuredContent: { count: 3 } })).toBe('{"count":3}');
  });
});
