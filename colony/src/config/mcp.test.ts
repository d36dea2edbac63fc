// The mcp section of .coral/config.yaml: defaults, and messages that name the
// key and say what to write.
import { describe, expect, it } from "vitest";
import { ConfigError } from "./errors.ts";
import { parseColonyConfig } from "./load.ts";

const colony = { app_name: "my-shop", environment: "dev", colony_id: "my-shop-dev-a1b2c3" };

function problems(mcp: unknown): string[] {
  try {
    parseColonyConfig({ colony, mcp }, "/p/.coral/config.yaml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error("expected a ConfigError");
}

describe("mcp.servers in the colony config", () => {
  it("is optional, and fills defaults for timeout, retry, cache and env", () => {
    expect(parseColonyConfig({ colony }).mcp).toBeUndefined();
    const parsed = parseColonyConfig({ colony, mcp: { servers: { sentry: { command: "npx", args: ["-y", "@sentry/mcp-server"], env: { SENTRY_DSN: "${SENTRY_DSN}" } } } } });
    expect(parsed.mcp!.servers.sentry).toEqual({
      command: "npx",
      args: ["-y", "@sentry/mcp-server"],
      env: { SENTRY_DSN: "${SENTRY_DSN}" },
      timeout: "30s",
      retry: { max_attempts: 3, backoff: "exponential", initial_delay: "500ms" },
      cache_ttl: "60s",
      enabled: true,
    });
  });

  it("refuses bad entries with the key, the problem and the value", () => {
    expect(
      problems({
        servers: {
          grafana: { args: "-y grafana", timeout: "soon", retry: { max_attempts: 0, backoff: "linear" }, env: { GRAFANA_TOKEN: 42 }, comand: "npx" },
          "bad name": { command: "x" },
        },
      }).sort(),
    ).toEqual(
      [
        'mcp.servers.grafana.comand: unknown key; did you mean "command"? (allowed here: command, args, env, cwd, timeout, retry, cache_ttl, enabled)',
        "mcp.servers.grafana.command: is required",
        'mcp.servers.grafana.args: must be a list of strings, e.g. ["-y", "@sentry/mcp-server"] (got "-y grafana")',
        "mcp.servers.grafana.env.GRAFANA_TOKEN: must be a string (quote numbers); ${NAME} takes the value of NAME from coral's environment (got 42)",
        'mcp.servers.grafana.timeout: "soon" is not a duration; must be a duration like 500ms, 30s or 2m',
        "mcp.servers.grafana.retry.max_attempts: must be at least 1 (got 0)",
        'mcp.servers.grafana.retry.backoff: must be one of: exponential, fixed (got "linear")',
        'mcp.servers.bad name: server names are 1-32 letters, digits, _ and -, starting with a letter or digit',
      ].sort(),
    );
    expect(problems({ servers: ["grafana"] })).toEqual(['mcp.servers: must be a mapping of server names to { command, args, env, timeout, retry } (got a list)']);
    expect(problems({ server: {} })).toEqual(['mcp.server: unknown key; did you mean "servers"? (allowed here: servers)']);
  });
});
