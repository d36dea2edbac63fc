// Validation of everything discovery accepts. Pure functions shared by the
// worker (edge validation), the colony and the agent (fail early, same rules).
import ipaddr from "ipaddr.js";
import { fromBase64 } from "./base64.ts";

/** Thrown when input breaks a rule; the message says what to change. */
export class ValidationError extends Error {
  override name = "ValidationError";
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}

export const limits = {
  meshIdMinLength: 3,
  meshIdMaxLength: 63,
  agentIdMaxLength: 128,
  maxEndpoints: 16,
  maxMetadataEntries: 32,
  maxMetadataKeyLength: 63,
  maxMetadataValueLength: 256,
  maxMetadataBytes: 4096,
  maxBodyBytes: 64 * 1024,
  maxUrlLength: 2048,
} as const;

const meshIdPattern = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const agentIdPattern = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const metadataKeyPattern = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
const hostnameLabel = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const hexSha256 = /^[0-9a-f]{64}$/i;

export function checkMeshId(value: string, field = "mesh_id"): string {
  if (!value) throw new ValidationError(field, "is required");
  if (value.length < limits.meshIdMinLength || value.length > limits.meshIdMaxLength)
    throw new ValidationError(
      field,
      `must be ${limits.meshIdMinLength}-${limits.meshIdMaxLength} characters (got ${value.length})`,
    );
  if (!meshIdPattern.test(value))
    throw new ValidationError(
      field,
      `"${clip(value)}" may only contain lowercase letters, digits and inner hyphens, e.g. "my-shop-dev-a1b2c3"`,
    );
  return value;
}

/** Trace ids one keep report (MeshService.ReportKeptTraces, AgentService.KeepTraces) may carry. */
export const maxKeptTraceIds = 1000;
const traceIdPattern = /^[0-9a-f]{32}$/;

/** Trace ids of a keep report: at most maxKeptTraceIds, each 32 lowercase hex digits. */
export function checkKeptTraceIds(ids: readonly string[], field = "trace_ids"): readonly string[] {
  if (ids.length > maxKeptTraceIds) throw new ValidationError(field, `at most ${maxKeptTraceIds} per call (got ${ids.length})`);
  const bad = ids.findIndex((id) => !traceIdPattern.test(id));
  if (bad >= 0) throw new ValidationError(`${field}[${bad}]`, `"${clip(ids[bad]!)}" must be a trace id: 32 lowercase hex digits`);
  return ids;
}

export function checkAgentId(value: string, field = "agent_id"): string {
  if (!value) throw new ValidationError(field, "is required");
  if (value.length > limits.agentIdMaxLength)
    throw new ValidationError(field, `must be at most ${limits.agentIdMaxLength} characters (got ${value.length})`);
  if (!agentIdPattern.test(value))
    throw new ValidationError(
      field,
      `"${clip(value)}" may only contain letters, digits, ".", "_" and "-", starting and ending with a letter or digit`,
    );
  return value;
}

export type HostKind = "ipv4" | "ipv6" | "hostname" | "observed";
export interface ParsedEndpoint {
  host: string;
  port: number;
  kind: HostKind;
}

/**
 * Parses "host:port", "[ipv6]:port" or ":port" (an empty host means "the
 * address discovery sees the caller at"). Returns an error message instead of
 * throwing so callers choose how to report it.
 */
export function parseEndpoint(value: string): { endpoint: ParsedEndpoint } | { error: string } {
  if (value.length > 261) return { error: "is longer than any host:port can be" };
  let host: string;
  let portText: string;
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0 || value[close + 1] !== ":") return { error: `"${clip(value)}" must look like [fd42::1]:41820` };
    host = value.slice(1, close);
    portText = value.slice(close + 2);
    if (!isIPv6(host)) return { error: `"${clip(host)}" is not an IPv6 address` };
  } else {
    const colon = value.lastIndexOf(":");
    if (colon < 0) return { error: `"${clip(value)}" has no port; use host:port, e.g. 203.0.113.42:41820` };
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(":")) return { error: `"${clip(value)}": put IPv6 addresses in brackets, e.g. [fd42::1]:41820` };
  }
  const port = parsePort(portText);
  if (port === undefined) return { error: `port "${clip(portText)}" must be a number from 1 to 65535` };
  if (value.startsWith("[")) return { endpoint: { host, port, kind: "ipv6" } };
  if (host === "") return { endpoint: { host, port, kind: "observed" } };
  if (/^[0-9.]+$/.test(host)) {
    if (!isIPv4(host)) return { error: `"${clip(host)}" is not an IPv4 address` };
    return { endpoint: { host, port, kind: "ipv4" } };
  }
  if (!isHostname(host)) return { error: `"${clip(host)}" is not a valid hostname` };
  return { endpoint: { host, port, kind: "hostname" } };
}

export function checkEndpoints(values: readonly string[], field = "endpoints"): ParsedEndpoint[] {
  if (values.length > limits.maxEndpoints)
    throw new ValidationError(field, `at most ${limits.maxEndpoints} endpoints are allowed (got ${values.length})`);
  return values.map((value, i) => {
    const parsed = parseEndpoint(value);
    if ("error" in parsed) throw new ValidationError(`${field}[${i}]`, parsed.error);
    return parsed.endpoint;
  });
}

export function checkMetadata(metadata: Readonly<Record<string, string>>, field = "metadata"): void {
  const entries = Object.entries(metadata);
  if (entries.length > limits.maxMetadataEntries)
    throw new ValidationError(field, `at most ${limits.maxMetadataEntries} entries are allowed (got ${entries.length})`);
  let bytes = 0;
  for (const [key, value] of entries) {
    if (key.length > limits.maxMetadataKeyLength || !metadataKeyPattern.test(key))
      throw new ValidationError(
        `${field}["${clip(key)}"]`,
        `keys must be 1-${limits.maxMetadataKeyLength} letters, digits, ".", "_", "-" or "/"`,
      );
    if (value.length > limits.maxMetadataValueLength)
      throw new ValidationError(`${field}.${key}`, `values must be at most ${limits.maxMetadataValueLength} characters`);
    bytes += utf8Length(key) + utf8Length(value);
  }
  if (bytes > limits.maxMetadataBytes)
    throw new ValidationError(field, `must be at most ${limits.maxMetadataBytes} bytes in all (got ${bytes})`);
}

/** A base64 key of exactly `bytes` bytes (WireGuard and Ed25519 keys are 32). */
export function checkBase64Key(value: string, field: string, bytes = 32): string {
  if (!value) throw new ValidationError(field, "is required");
  if (base64ByteLength(value) !== bytes) throw new ValidationError(field, `must be a base64 encoded ${bytes}-byte key`);
  return value;
}

export function checkOptionalIp(value: string, version: 4 | 6, field: string): void {
  if (value === "") return;
  const ok = version === 4 ? isIPv4(value) : isIPv6(value);
  if (!ok) throw new ValidationError(field, `"${clip(value)}" is not an IPv${version} address`);
}

export function checkPort(value: number, field: string, optional = true): void {
  if (optional && value === 0) return;
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    throw new ValidationError(field, `must be a port from 1 to 65535 (got ${value})`);
}

export function checkPublicEndpoint(url: string, caSha256: string, field = "public_endpoint"): void {
  if (url.length > limits.maxUrlLength) throw new ValidationError(`${field}.url`, "is too long");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(`${field}.url`, `"${clip(url)}" is not a URL; use e.g. https://colony.example.com:9443`);
  }
  if (parsed.protocol !== "https:") throw new ValidationError(`${field}.url`, "must use https");
  const fingerprint = caSha256.replaceAll(":", "");
  if (!hexSha256.test(fingerprint))
    throw new ValidationError(`${field}.ca_cert_sha256`, "must be the SHA-256 of the CA certificate in hex (64 digits)");
}

export function isIPv4(value: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(value);
}

export function isIPv6(value: string): boolean {
  return !value.includes("%") && ipaddr.IPv6.isValid(value);
}

function isHostname(value: string): boolean {
  const name = value.endsWith(".") ? value.slice(0, -1) : value;
  if (name.length === 0 || name.length > 253) return false;
  return name.split(".").every((label) => hostnameLabel.test(label));
}

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

const paddedBase64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The bytes a padded base64 text decodes to; undefined when it is not one
 * (atob would refuse it, or it is unpadded).
 */
export function tryDecodeBase64(value: string): Uint8Array | undefined {
  return base64ByteLength(value) === undefined ? undefined : fromBase64(value);
}

/**
 * How many bytes tryDecodeBase64 would return, without decoding: the
 * discovery worker checks three keys of every registration, and decoding
 * them was ~3 % of its CPU per refresh (bench/BENCHMARKS.md, issue 26). A
 * text of whole quads, padded at most twice at the end, is one atob takes.
 */
export function base64ByteLength(value: string): number | undefined {
  if (value.length % 4 !== 0 || !paddedBase64.test(value)) return undefined;
  const padding = value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0;
  return (value.length / 4) * 3 - padding;
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** Keeps echoed input short in messages. */
function clip(value: string): string {
  return value.length > 40 ? `${value.slice(0, 37)}...` : value;
}
