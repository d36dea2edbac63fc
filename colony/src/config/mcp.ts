// The `mcp` section of .coral/config.yaml: external MCP servers whose tools
// `coral ask` offers to the model beside Coral's own (seed 000, "Coral as
// MCP client"):
//
//   mcp:
//     servers:
//       grafana:
//         command: npx
//         args: ["-y", "@grafana/mcp-server"]
//         env: { GRAFANA_URL: "https://grafana.example.com", GRAFANA_TOKEN: "${GRAFANA_TOKEN}" }
//         timeout: 30s          # per request (start, list, call)
//         retry: { max_attempts: 3, backoff: exponential, initial_delay: 500ms }
//         cache_ttl: 60s        # a failing server's last good answers are served this long
//
// These are commands, and the file is committed: `coral ask` starts a
// project's servers only once the user trusted exactly these commands
// (cli/src/ask/mcp-trust.ts). The same shape in $CORAL_HOME/mcp.yaml is the
// user's own and trusted.
import { z } from "zod";
import { parseDuration } from "@coral/common/duration";

const DURATION = "must be a duration like 500ms, 30s or 2m";

function duration(fallback: string, maxMs: number, maxText: string) {
  return z
    .string({ error: (issue) => (issue.input === undefined ? "is required" : DURATION) })
    .superRefine((value, ctx) => {
      const parsed = parseDuration(value);
      if ("error" in parsed) ctx.addIssue({ code: "custom", message: `${parsed.error}; ${DURATION}` });
      else if (parsed.ms <= 0) ctx.addIssue({ code: "custom", message: `must be longer than zero (got "${value}")` });
      else if (parsed.ms > maxMs) ctx.addIssue({ code: "custom", message: `must be at most ${maxText} (got "${value}")` });
    })
    .default(fallback);
}

/** Server names become part of tool names (mcp__<server>__<tool>): letters, digits, _ and -. */
export const mcpServerNamePattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const mcpServerSchema = z.strictObject({
  command: z.string({ error: (issue) => (issue.input === undefined ? "is required: the program that starts the server, e.g. npx" : "must be a string") }).trim().min(1, "must not be empty"),
  args: z.array(z.string({ error: "each argument must be a string (quote numbers)" }), { error: 'must be a list of strings, e.g. ["-y", "@sentry/mcp-server"]' }).default([]),
  env: z
    .record(
      z.string().regex(envName, "environment variable names are letters, digits and _, not starting with a digit"),
      z.string({ error: "must be a string (quote numbers); ${NAME} takes the value of NAME from coral's environment" }),
      { error: (issue) => (issue.code === "invalid_key" ? "environment variable names are letters, digits and _, not starting with a digit" : "must be a mapping of environment variables to values") },
    )
    .default({}),
  cwd: z.string({ error: "must be a folder path" }).min(1, "must not be empty").optional(),
  timeout: duration("30s", 10 * 60_000, "10m"),
  retry: z
    .strictObject(
      {
        max_attempts: z.number({ error: "must be a whole number from 1 to 10" }).int("must be a whole number from 1 to 10").min(1, "must be at least 1").max(10, "must be at most 10").default(3),
        backoff: z.enum(["exponential", "fixed"], { error: "must be one of: exponential, fixed" }).default("exponential"),
        initial_delay: duration("500ms", 60_000, "1m"),
      },
      { error: "must be a mapping with max_attempts, backoff and initial_delay" },
    )
    .prefault({}),
  cache_ttl: duration("60s", 60 * 60_000, "1h"),
  enabled: z.boolean({ error: "must be true or false" }).default(true),
});

export const mcpSectionSchema = z.strictObject(
  {
    servers: z
      .record(
        z.string().regex(mcpServerNamePattern, "server names are 1-32 letters, digits, _ and -, starting with a letter or digit"),
        mcpServerSchema,
        {
          error: (issue) =>
            issue.code === "invalid_key"
              ? "server names are 1-32 letters, digits, _ and -, starting with a letter or digit"
              : "must be a mapping of server names to { command, args, env, timeout, retry }",
        },
      )
      .default({}),
  },
  { error: "must be a mapping with servers" },
);

/** One server's settings as written (durations as text, defaults filled). */
export type McpServerSettings = z.output<typeof mcpServerSchema>;
export type McpSection = z.output<typeof mcpSectionSchema>;
