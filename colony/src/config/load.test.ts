import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import YAML from "yaml";
import { ConfigError, displayPath } from "./errors.ts";
import { configPath, loadColonyConfig, readColonyConfigFile, writeColonyConfig } from "./load.ts";
import type { ColonyConfigInput } from "./schema.ts";
import { tempDir } from "./testing.ts";

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await tempDir();
  file = configPath(dir);
  await mkdir(join(dir, ".coral"), { recursive: true });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const minimal = () => ({ colony: { app_name: "my-shop", environment: "dev", colony_id: "my-shop-dev-a1b2c3" } }) as Record<string, unknown>;

async function writeRaw(value: unknown): Promise<void> {
  await writeFile(file, typeof value === "string" ? value : YAML.stringify(value));
}

async function loadError(env: Record<string, string> = {}): Promise<ConfigError> {
  const err = await loadColonyConfig(dir, { env }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

function setIn(root: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const keys = path.split(".");
  let node = root;
  for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  if (value === undefined) delete node[keys[keys.length - 1]!];
  else node[keys[keys.length - 1]!] = value;
  return root;
}

describe("loadColonyConfig", () => {
  it("fills every default and resolves paths and durations", async () => {
    await writeRaw(minimal());
    const config = await loadColonyConfig(dir, { env: {} });
    expect(config.project_dir).toBe(dir);
    expect(config.config_path).toBe(file);
    expect(config.colony).toMatchObject({
      app_name: "my-shop",
      environment: "dev",
      colony_id: "my-shop-dev-a1b2c3",
      storage: { path: join(dir, ".coral", "colony.duckdb") },
      api: { host: "127.0.0.1", port: 9000, tls: undefined },
      mesh: { mode: "loopback", port: 41820, ipv4: "10.42.0.1", ipv6: "fd42::1" },
      heartbeat_interval: "30s",
      heartbeat_interval_ms: 30_000,
      agent_offline_after_ms: 90_000,
      agent_expire_after_ms: 86_400_000,
    });
    expect(config.colony.mesh.public_endpoint).toBeUndefined();
    const day = 86_400_000;
    expect(config.colony.storage.retention).toEqual({
      metrics_1m: day,
      metrics_5m: 7 * day,
      metrics_15m: 30 * day,
      metrics_1h: 90 * day,
      metrics_1d: 365 * day,
      events: 30 * day,
      insights: 90 * day,
      transitions: undefined,
      audit: undefined,
      connections: undefined,
      batches: undefined,
    });
    expect(config.discovery).toEqual({ register_interval: "60s", ttl: "300s", register_interval_ms: 60_000, ttl_ms: 300_000 });
    expect(config.nats).toEqual({ port: 4333, host: "127.0.0.1" });
  });

  it("resolves storage and TLS paths against the project folder, keeps absolute ones", async () => {
    const raw = minimal();
    setIn(raw, "colony.storage.path", "data/colony.duckdb");
    setIn(raw, "colony.api.tls", { cert: "tls/cert.pem", key: "/etc/coral/key.pem" });
    await writeRaw(raw);
    const config = await loadColonyConfig(dir, { env: {} });
    expect(config.colony.storage.path).toBe(join(dir, "data", "colony.duckdb"));
    expect(config.colony.api.tls).toEqual({ cert: join(dir, "tls", "cert.pem"), key: "/etc/coral/key.pem" });
  });

  it("treats empty keys (key: with no value) as not set", async () => {
    await writeRaw("colony:\n  app_name: my-shop\n  environment: dev\n  colony_id: my-shop-dev-a1b2c3\n  mesh:\n    public_endpoint:\ndiscovery:\n  endpoint:\n");
    const config = await loadColonyConfig(dir, { env: {} });
    expect(config.colony.mesh.public_endpoint).toBeUndefined();
    expect(config.discovery.endpoint).toBeUndefined();
  });

  it("names the file when it is missing", async () => {
    expect((await loadError()).message).toBe(`${file}: not found in ${dir}; create it with: coral init --app <name> --env dev`);
  });

  it.each([
    ["colony: [1, 2]", "colony: must be a mapping (got a list)"],
    ["- a\n- b\n", "must be a YAML mapping with colony, discovery and nats sections (got a list)"],
    ["", "colony: is required"],
    ["colony:\n  api:\n    port: [1, 2\n  x: 1\n", "line 4, column 3: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]"],
    ["colony:\n  app_name: a\n  app_name: b\n", "line 3, column 3: YAML syntax error: Map keys must be unique"],
    ["colony: {app_name: my-shop\n", "line 2, column 1: YAML syntax error:"],
  ])("reports %j with line and column", async (text, message) => {
    await writeRaw(text);
    expect((await loadError()).message).toContain(`${file}: ${message}`);
  });

  const port = "must be a port from 1 to 65535";
  const duration = "must be a duration like 30s, 5m, 1h, 7d or 1y";
  it.each<[string, unknown, string]>([
    ["colony", undefined, "colony: is required"],
    ["colony.app_name", undefined, "colony.app_name: is required"],
    ["colony.app_name", 42, "colony.app_name: must be a string (got 42)"],
    ["colony.app_name", "My Shop", 'colony.app_name: "My Shop" may only contain lowercase letters, digits and hyphens, starting and ending with a letter or digit; try "my-shop"'],
    ["colony.environment", "prod_1", 'colony.environment: "prod_1" may only contain lowercase letters, digits and hyphens, starting and ending with a letter or digit; try "prod-1"'],
    ["colony.environment", "a-very-long-environment", 'colony.environment: "a-very-long-environment" is 23 characters; at most 15 are allowed'],
    ["colony.colony_id", "ab", 'colony.colony_id: must be 3-63 characters (got 2: "ab")'],
    ["colony.colony_id", "My_Colony", 'colony.colony_id: "My_Colony" may only contain lowercase letters, digits and inner hyphens, e.g. "my-shop-dev-a1b2c3"'],
    ["colony.storage.path", "", 'colony.storage.path: must not be empty (got "")'],
    ["colony.storage.type", "duckdb", 'colony.storage.type: unknown key (allowed here: path, retention, memory_limit)'],
    ["colony.storage.memory_limit", "lots", 'colony.storage.memory_limit: must be a size like 512MB or 2GB (got "lots")'],
    ["colony.storage.retention.events", "5x", `colony.storage.retention.events: unknown unit "x" in "5x" (use ms, s, m, h, d, w, y); ${duration}`],
    ["colony.storage.retention.metrics_1m", "0s", 'colony.storage.retention.metrics_1m: must be longer than zero (got "0s")'],
    ["colony.storage.retention.metrics_1h", 90, `colony.storage.retention.metrics_1h: ${duration} (got 90)`],
    ["colony.storage.retention.audit", "-1d", `colony.storage.retention.audit: negative duration "-1d" is not allowed; ${duration}`],
    ["colony.storage.retention.metrics_2m", "1d", "colony.storage.retention.metrics_2m: unknown key; did you mean \"metrics_1m\"? (allowed here: metrics_1m, metrics_5m, metrics_15m, metrics_1h, metrics_1d, events, insights, transitions, audit, connections, batches)"],
    ["colony.api.port", 70000, `colony.api.port: ${port} (got 70000)`],
    ["colony.api.port", 0, `colony.api.port: ${port} (got 0)`],
    ["colony.api.port", 80.5, `colony.api.port: ${port} (got 80.5)`],
    ["colony.api.port", "9000", `colony.api.port: ${port} (got "9000")`],
    ["colony.api.prot", 9000, 'colony.api.prot: unknown key; did you mean "port"? (allowed here: host, port, tls, advertise_url)'],
    ["colony.api.host", "not a host!", 'colony.api.host: must be a hostname or IP address, e.g. 127.0.0.1 (or 0.0.0.0 to listen on every interface) (got "not a host!")'],
    ["colony.api", "x", 'colony.api: must be a mapping (got "x")'],
    ["colony.api.tls", { cert: "c.pem" }, "colony.api.tls.key: is required"],
    ["colony.api.tls", "yes", 'colony.api.tls: must be a mapping with cert and key (got "yes")'],
    ["colony.mesh.mode", "vpn", 'colony.mesh.mode: must be one of: loopback, wireguard (got "vpn")'],
    ["colony.mesh.port", -1, `colony.mesh.port: ${port} (got -1)`],
    ["colony.mesh.ipv4", "10.42.0.300", 'colony.mesh.ipv4: must be an IPv4 address, e.g. 10.42.0.1 (got "10.42.0.300")'],
    ["colony.mesh.ipv6", "10.42.0.1", 'colony.mesh.ipv6: must be an IPv6 address, e.g. fd42::1 (got "10.42.0.1")'],
    ["colony.mesh.public_endpoint", "example.com", 'colony.mesh.public_endpoint: "example.com" has no port; use host:port, e.g. 203.0.113.42:41820'],
    ["colony.mesh.public_endpoint", ":41820", 'colony.mesh.public_endpoint: ":41820" has no host; use host:port, e.g. colony.example.com:41820'],
    ["colony.mesh.public_endpoint", "example.com:99999", 'colony.mesh.public_endpoint: port "99999" must be a number from 1 to 65535 (got "example.com:99999")'],
    ["colony.heartbeat_interval", "-1s", `colony.heartbeat_interval: negative duration "-1s" is not allowed; ${duration}`],
    ["colony.heartbeat_interval", "", `colony.heartbeat_interval: empty duration; ${duration} (got "")`],
    ["colony.agent_offline_after", "20s", 'colony.agent_offline_after: must be longer than colony.heartbeat_interval (30s), or every agent goes offline between heartbeats (got "20s")'],
    ["colony.agent_expire_after", "60s", 'colony.agent_expire_after: must be longer than colony.agent_offline_after (90s) (got "60s")'],
    ["colony.wireguard", { port: 1 }, 'colony.wireguard: unknown key (allowed here: app_name, environment, colony_id, storage, api, mesh, heartbeat_interval, agent_offline_after, agent_expire_after)'],
    ["ai", { provider: "anthropic" }, "ai: unknown key (allowed here: colony, discovery, nats, mcp, control)"],
    ["discovery.endpoint", "ftp://x", 'discovery.endpoint: must be a URL starting with http:// or https://, e.g. https://discovery.example.com (got "ftp://x")'],
    ["discovery.endpoint", "not a url", 'discovery.endpoint: must be a URL starting with http:// or https://, e.g. https://discovery.example.com (got "not a url")'],
    ["discovery.register_interval", "600s", 'discovery.register_interval: must be shorter than discovery.ttl (300s), or the registration expires between renewals (got "600s")'],
    ["discovery.ttl", "5 minutes", `discovery.ttl: "5 minutes" is not a duration; ${duration}`],
    ["nats.url", "http://127.0.0.1:4222", 'nats.url: must be a URL starting with nats:// or tls:// or ws:// or wss://, e.g. nats://127.0.0.1:4222 (got "http://127.0.0.1:4222")'],
    ["nats.port", 65536, `nats.port: ${port} (got 65536)`],
    ["nats", "nats://x", 'nats: must be a mapping (got "nats://x")'],
  ])("%s = %j → %s", async (path, value, message) => {
    await writeRaw(setIn(minimal(), path, value));
    const err = await loadError();
    expect(err.message).toBe(`${file}: ${message}`);
    expect(err.file).toBe(file);
  });

  it("reports every problem, one per line", async () => {
    const raw = minimal();
    setIn(raw, "colony.api.port", 70000);
    setIn(raw, "colony.mesh.mode", "vpn");
    await writeRaw(raw);
    const err = await loadError();
    expect(err.issues).toHaveLength(2);
    expect(err.message.split("\n")).toEqual([
      `${file}: colony.api.port: ${port} (got 70000)`,
      `${file}: colony.mesh.mode: must be one of: loopback, wireguard (got "vpn")`,
    ]);
  });
});

describe("environment overrides", () => {
  it("apply over the file", async () => {
    const raw = minimal();
    setIn(raw, "discovery.endpoint", "https://file.example.com");
    await writeRaw(raw);
    const config = await loadColonyConfig(dir, {
      env: {
        CORAL_PUBLIC_ENDPOINT: "colony.example.com:41820",
        CORAL_DISCOVERY_URL: "https://discovery.example.com",
        CORAL_NATS_URL: "nats://10.0.0.5:4222",
        CORAL_API_PORT: "9443",
      },
    });
    expect(config.colony.mesh.public_endpoint).toBe("colony.example.com:41820");
    expect(config.discovery.endpoint).toBe("https://discovery.example.com");
    expect(config.nats.url).toBe("nats://10.0.0.5:4222");
    expect(config.colony.api.port).toBe(9443);
  });

  it("set what a container needs: listen addresses, NATS port and advertised URL, mesh mode", async () => {
    await writeRaw(minimal());
    const config = await loadColonyConfig(dir, {
      env: {
        CORAL_API_HOST: "0.0.0.0",
        CORAL_NATS_HOST: "0.0.0.0",
        CORAL_NATS_PORT: "4444",
        CORAL_NATS_ADVERTISE_URL: "nats://coral-colony:4444",
        CORAL_MESH_MODE: "wireguard",
      },
    });
    expect(config.colony.api.host).toBe("0.0.0.0");
    expect(config.nats).toEqual({ host: "0.0.0.0", port: 4444, advertise_url: "nats://coral-colony:4444" });
    expect(config.colony.mesh.mode).toBe("wireguard");
    await expect(loadColonyConfig(dir, { env: { CORAL_NATS_ADVERTISE_URL: "coral-colony:4333" } })).rejects.toThrow(
      /nats\.advertise_url \(from CORAL_NATS_ADVERTISE_URL\): must be a URL starting with nats:\/\/ or tls:\/\//,
    );
    await expect(loadColonyConfig(dir, { env: { CORAL_MESH_MODE: "tailscale" } })).rejects.toThrow(/colony\.mesh\.mode \(from CORAL_MESH_MODE\)/);
  });

  it("ignore empty variables", async () => {
    await writeRaw(minimal());
    const config = await loadColonyConfig(dir, { env: { CORAL_API_PORT: "", CORAL_NATS_URL: "  " } });
    expect(config.colony.api.port).toBe(9000);
    expect(config.nats.url).toBeUndefined();
  });

  it("use process.env by default", async () => {
    await writeRaw(minimal());
    const previous = process.env.CORAL_API_PORT;
    process.env.CORAL_API_PORT = "9100";
    try {
      expect((await loadColonyConfig(dir)).colony.api.port).toBe(9100);
    } finally {
      if (previous === undefined) delete process.env.CORAL_API_PORT;
      else process.env.CORAL_API_PORT = previous;
    }
  });

  it.each([
    ["CORAL_API_PORT", "70000", `colony.api.port (from CORAL_API_PORT): ${port} (got 70000)`],
    ["CORAL_API_PORT", "abc", `colony.api.port (from CORAL_API_PORT): ${port} (got "abc")`],
    ["CORAL_PUBLIC_ENDPOINT", "203.0.113.5", 'colony.mesh.public_endpoint (from CORAL_PUBLIC_ENDPOINT): "203.0.113.5" has no port; use host:port, e.g. 203.0.113.42:41820'],
    ["CORAL_DISCOVERY_URL", "discovery.example.com", 'discovery.endpoint (from CORAL_DISCOVERY_URL): must be a URL starting with http:// or https://, e.g. https://discovery.example.com (got "discovery.example.com")'],
    ["CORAL_NATS_URL", "localhost:4222", 'nats.url (from CORAL_NATS_URL): must be a URL starting with nats:// or tls:// or ws:// or wss://, e.g. nats://127.0.0.1:4222 (got "localhost:4222")'],
  ])("%s=%s is validated like the file", async (name, value, message) => {
    await writeRaw(minimal());
    expect((await loadError({ [name]: value })).message).toBe(`${file}: ${message}`);
  });

  it("are not written back", async () => {
    await writeRaw(minimal());
    const previous = process.env.CORAL_NATS_URL;
    process.env.CORAL_NATS_URL = "nats://10.0.0.5:4222";
    try {
      const fileConfig = await readColonyConfigFile(dir);
      expect(fileConfig.nats.url).toBeUndefined();
    } finally {
      if (previous === undefined) delete process.env.CORAL_NATS_URL;
      else process.env.CORAL_NATS_URL = previous;
    }
  });
});

const port = "must be a port from 1 to 65535";

describe("writeColonyConfig", () => {
  const full: ColonyConfigInput = {
    colony: {
      app_name: "my-shop",
      environment: "prod",
      colony_id: "my-shop-prod-0a1b2c",
      storage: { path: "/var/lib/coral/colony.duckdb", retention: { metrics_1m: "12h", events: "14d", transitions: "30d" }, memory_limit: "2GB" },
      api: { host: "0.0.0.0", port: 9443, tls: { cert: "tls/cert.pem", key: "tls/key.pem" } },
      mesh: { mode: "wireguard", port: 51000, ipv4: "10.42.0.1", ipv6: "fd42::1", public_endpoint: "colony.example.com:51000" },
      heartbeat_interval: "15s",
      agent_offline_after: "1m",
      agent_expire_after: "7d",
    },
    discovery: { endpoint: "https://discovery.example.com", register_interval: "30s", ttl: "120s" },
    nats: { url: "nats://10.0.0.5:4222", port: 4444, host: "0.0.0.0", advertise_url: "nats://coral-colony:4444" },
  };

  it("round-trips every field", async () => {
    const path = await writeColonyConfig(dir, full);
    expect(path).toBe(file);
    const back = await readColonyConfigFile(dir);
    expect(back).toEqual({
      ...full,
      colony: {
        ...full.colony,
        storage: {
          path: "/var/lib/coral/colony.duckdb",
          retention: { metrics_1m: "12h", metrics_5m: "7d", metrics_15m: "30d", metrics_1h: "90d", metrics_1d: "1y", events: "14d", insights: "90d", transitions: "30d" },
          memory_limit: "2GB",
        },
      },
      control: { rollback_timeout: "5m", verify_timeout: "2m", flag_resync_interval: "30s", services: {} },
    });
    // Writing what was read changes nothing.
    const text = await readFile(file, "utf8");
    await writeColonyConfig(dir, back);
    expect(await readFile(file, "utf8")).toBe(text);
    const loaded = await loadColonyConfig(dir, { env: {} });
    expect(loaded.colony.api.tls).toEqual({ cert: join(dir, "tls", "cert.pem"), key: join(dir, "tls", "key.pem") });
    expect(loaded.colony.storage.retention.transitions).toBe(30 * 86_400_000);
    expect(loaded.colony.heartbeat_interval_ms).toBe(15_000);
    expect(loaded.discovery.register_interval_ms).toBe(30_000);
  });

  it("spells out the defaults, with comments", async () => {
    await writeColonyConfig(dir, { colony: { app_name: "my-shop", environment: "dev", colony_id: "my-shop-dev-a1b2c3" } });
    const text = await readFile(file, "utf8");
    expect(text).toMatch(/^# Coral colony configuration/);
    for (const line of ["    path: .coral/colony.duckdb", "      metrics_1d: 1y", "    port: 9000", "    mode: loopback", "  heartbeat_interval: 30s", "  ttl: 300s", "  port: 4333"])
      expect(text).toContain(`${line}\n`);
    expect(text).not.toMatch(/^\s+public_endpoint:/m);
  });

  it("refuses invalid input, naming the file and key", async () => {
    const err = await writeColonyConfig(dir, { colony: { app_name: "my-shop", environment: "dev", colony_id: "my-shop-dev-a1b2c3", api: { port: 70000 } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${file}: colony.api.port: ${port} (got 70000)`);
  });

  it("keeps an existing file with overwrite: false", async () => {
    await writeColonyConfig(dir, full);
    const err = await writeColonyConfig(dir, full, { overwrite: false }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`${file}: already exists; pass --force to replace it`);
  });
});

describe("displayPath", () => {
  it("is relative inside the working folder, absolute outside", () => {
    expect(displayPath("/work/app/.coral/config.yaml", "/work/app")).toBe(".coral/config.yaml");
    expect(displayPath("/tmp/x/.coral/config.yaml", "/work/app")).toBe("/tmp/x/.coral/config.yaml");
  });

  it("gives the seed's message shape for a project in the working folder", () => {
    const err = new ConfigError(join(process.cwd(), ".coral", "config.yaml"), [{ path: "colony.api.port", message: `${port} (got 70000)` }]);
    expect(err.message).toBe(".coral/config.yaml: colony.api.port: must be a port from 1 to 65535 (got 70000)");
  });
});
