// The shape of .coral/config.yaml: snake_case keys as in the design docs,
// unknown keys rejected, defaults for everything but the colony's identity.
// Messages are written for people: the loader prefixes them with the file
// and key path and appends the offending value.
import { isIPv4, isIPv6, parseEndpoint } from "@coral/proto";
import { z } from "zod";
import { parseDuration } from "@coral/common/duration";
import { mcpSectionSchema } from "./mcp.ts";
import { nameProblem } from "./names.ts";
import { controlSectionSchema, type ControlConfig } from "./control-schema.ts";

/** An error map that says "is required" when the key is missing and `text` otherwise. */
function need(text: string) {
  return { error: (issue: { input?: unknown }) => (issue.input === undefined ? "is required" : text) };
}

const PORT = "must be a port from 1 to 65535";
const DURATION = "must be a duration like 30s, 5m, 1h, 7d or 1y";

const port = (fallback: number) => z.number(need(PORT)).int(PORT).min(1, PORT).max(65535, PORT).default(fallback);

const durationText = () =>
  z.string(need(DURATION)).superRefine((value, ctx) => {
    const parsed = parseDuration(value);
    if ("error" in parsed) ctx.addIssue({ code: "custom", message: `${parsed.error}; ${DURATION}` });
    else if (parsed.ms <= 0) ctx.addIssue({ code: "custom", message: `must be longer than zero (got "${value}")` });
  });
const duration = (fallback: string) => durationText().default(fallback);
const optionalDuration = () => durationText().optional();

const nonEmpty = (what: string) => z.string(need(`must be ${what}`)).min(1, "must not be empty");

const name = (kind: "app" | "env") =>
  z.string(need("must be a string")).superRefine((value, ctx) => {
    const problem = nameProblem(value, kind);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const colonyIdPattern = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const colonyId = z.string(need("must be a string")).superRefine((value, ctx) => {
  if (value.length < 3 || value.length > 63)
    ctx.addIssue({ code: "custom", message: `must be 3-63 characters (got ${value.length}: "${value}")` });
  else if (!colonyIdPattern.test(value))
    ctx.addIssue({
      code: "custom",
      message: `"${value}" may only contain lowercase letters, digits and inner hyphens, e.g. "my-shop-dev-a1b2c3"`,
    });
});

const hostnamePattern = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i;
const host = z
  .string(need("must be a hostname or IP address"))
  .refine((v) => isIPv4(v) || isIPv6(v) || (v.length <= 253 && hostnamePattern.test(v)), {
    error: "must be a hostname or IP address, e.g. 127.0.0.1 (or 0.0.0.0 to listen on every interface)",
  });

function url(protocols: readonly string[], example: string) {
  const text = `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}, e.g. ${example}`;
  return z.string(need(text)).refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, text);
}

const publicEndpoint = z.string(need("must be host:port")).superRefine((value, ctx) => {
  const parsed = parseEndpoint(value);
  if ("error" in parsed) ctx.addIssue({ code: "custom", message: `${parsed.error}` });
  else if (parsed.endpoint.kind === "observed")
    ctx.addIssue({ code: "custom", message: `"${value}" has no host; use host:port, e.g. colony.example.com:41820` });
});

export const retentionSchema = z.strictObject({
  metrics_1m: duration("24h"),
  metrics_5m: duration("7d"),
  metrics_15m: duration("30d"),
  metrics_1h: duration("90d"),
  metrics_1d: duration("1y"),
  events: duration("30d"),
  insights: duration("90d"),
  // Optional: the store's defaults apply when these are absent.
  transitions: optionalDuration(),
  audit: optionalDuration(),
  connections: optionalDuration(),
  batches: optionalDuration(),
});

const ms = (text: string): number | undefined => {
  const parsed = parseDuration(text);
  return "ms" in parsed ? parsed.ms : undefined;
};

export const colonySectionSchema = z
  .strictObject({
    app_name: name("app"),
    environment: name("env"),
    colony_id: colonyId,
    storage: z
      .strictObject({
        path: nonEmpty("a file path").default(".coral/colony.duckdb"),
        retention: retentionSchema.prefault({}),
        // DuckDB's memory for everything the colony's database does (people's coral query included): beyond it, sorts and joins spill to disk or fail with an out-of-memory error, never the machine.
        memory_limit: z.string().regex(/^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, "must be a size like 512MB or 2GB").default("1GB"),
      })
      .prefault({}),
    api: z
      .strictObject({
        host: host.default("127.0.0.1"),
        port: port(9000),
        tls: z.strictObject({ cert: nonEmpty("a file path"), key: nonEmpty("a file path") }, need("must be a mapping with cert and key")).optional(),
        // The API URL join tokens name, when agents cannot use host:port (a container, a load balancer).
        advertise_url: url(["http:", "https:"], "https://colony.example.com:9000").optional(),
      })
      .prefault({}),
    mesh: z
      .strictObject({
        mode: z.enum(["loopback", "wireguard"], need("must be one of: loopback, wireguard")).default("loopback"),
        port: port(41820),
        ipv4: z.string(need("must be an IPv4 address")).refine(isIPv4, "must be an IPv4 address, e.g. 10.42.0.1").default("10.42.0.1"),
        ipv6: z.string(need("must be an IPv6 address")).refine(isIPv6, "must be an IPv6 address, e.g. fd42::1").default("fd42::1"),
        public_endpoint: publicEndpoint.optional(),
      })
      .prefault({}),
    heartbeat_interval: duration("30s"),
    agent_offline_after: duration("90s"),
    agent_expire_after: duration("24h"),
  })
  .superRefine((colony, ctx) => {
    const heartbeat = ms(colony.heartbeat_interval);
    const offline = ms(colony.agent_offline_after);
    const expire = ms(colony.agent_expire_after);
    if (heartbeat !== undefined && offline !== undefined && offline <= heartbeat)
      ctx.addIssue({
        code: "custom",
        path: ["agent_offline_after"],
        message: `must be longer than colony.heartbeat_interval (${colony.heartbeat_interval}), or every agent goes offline between heartbeats (got "${colony.agent_offline_after}")`,
      });
    if (offline !== undefined && expire !== undefined && expire <= offline)
      ctx.addIssue({
        code: "custom",
        path: ["agent_expire_after"],
        message: `must be longer than colony.agent_offline_after (${colony.agent_offline_after}) (got "${colony.agent_expire_after}")`,
      });
  });

export const discoverySectionSchema = z
  .strictObject({
    endpoint: url(["http:", "https:"], "https://discovery.example.com").optional(),
    register_interval: duration("60s"),
    ttl: duration("300s"),
  })
  .superRefine((discovery, ctx) => {
    const interval = ms(discovery.register_interval);
    const ttl = ms(discovery.ttl);
    if (interval !== undefined && ttl !== undefined && interval >= ttl)
      ctx.addIssue({
        code: "custom",
        path: ["register_interval"],
        message: `must be shorter than discovery.ttl (${discovery.ttl}), or the registration expires between renewals (got "${discovery.register_interval}")`,
      });
  });

export const natsSectionSchema = z.strictObject({
  url: url(["nats:", "tls:", "ws:", "wss:"], "nats://127.0.0.1:4222").optional(),
  port: port(4333),
  // The colony's own nats-server: where it listens (0.0.0.0 in a container) and
  // the URL agents are told to use when that differs (e.g. nats://coral-colony:4333).
  host: host.default("127.0.0.1"),
  advertise_url: url(["nats:", "tls:"], "nats://coral-colony:4333").optional(),
});

export const colonyConfigSchema = z.strictObject({
  colony: colonySectionSchema,
  discovery: discoverySectionSchema.prefault({}),
  nats: natsSectionSchema.prefault({}),
  // Optional: external MCP servers for coral ask (config/mcp.ts).
  mcp: mcpSectionSchema.optional(),
  control: controlSectionSchema.prefault({}),
});

/** What may be written in the file (defaults optional). */
export type ColonyConfigInput = z.input<typeof colonyConfigSchema>;
/** The file's content with defaults applied; durations still as text, paths as written. */
export type ColonyConfigFile = z.output<typeof colonyConfigSchema>;

type FileColony = ColonyConfigFile["colony"];
type FileRetention = FileColony["storage"]["retention"];

/** Retention per table in milliseconds (the store's RetentionPolicy keys). */
export type RetentionMs = { [K in keyof FileRetention]: undefined extends FileRetention[K] ? number | undefined : number };

/**
 * The loaded configuration: the file plus environment overrides, with paths
 * absolute (resolved against the project folder) and durations also in
 * milliseconds (`*_ms`; retention is in milliseconds only, ready for the store).
 */
export interface ColonyConfig {
  /** Absolute project folder (the one holding .coral/). */
  project_dir: string;
  /** Absolute path of .coral/config.yaml. */
  config_path: string;
  colony: Omit<FileColony, "storage" | "api"> & {
    storage: { path: string; retention: RetentionMs; memory_limit: string };
    api: { host: string; port: number; tls?: { cert: string; key: string } | undefined; advertise_url?: string | undefined };
    heartbeat_interval_ms: number;
    agent_offline_after_ms: number;
    agent_expire_after_ms: number;
  };
  discovery: ColonyConfigFile["discovery"] & { register_interval_ms: number; ttl_ms: number };
  nats: ColonyConfigFile["nats"];
  mcp?: ColonyConfigFile["mcp"];
  control: ControlConfig;
}
