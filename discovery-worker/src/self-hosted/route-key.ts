// Which mesh a request is about, so the front can send it to that mesh's
// shard. This only routes: the shard's worker still validates everything, so
// whatever cannot be read here goes to shard 0 and gets the worker's error.
import { gunzipSync } from "node:zlib";
import { fromBinary, fromJson, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import { DiscoveryService, limits } from "@coral/proto";

export const connectPrefix = `/${DiscoveryService.typeName}/`;
const methods = new Map(DiscoveryService.methods.map((m) => [m.name, m]));
const restPath = /^\/v1\/mesh\/([^/]+)\/(register|colony|agents\/[^/]+)$/;

/** A path that WHATWG URL parsing leaves as it is and that has no repeated or trailing slash. */
const plainPath = /^(?:\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$/;

/**
 * The request target as the worker will read it (WHATWG URL parsing, as
 * workerd does: dot segments, backslashes, absolute-form targets), with
 * repeated slashes and a trailing slash removed. The front classifies
 * (rate limit, shard) and forwards exactly this, so no spelling of a route
 * reaches the worker unclassified. undefined when it is not a path at all.
 */
export function canonicalTarget(raw: string): string | undefined {
  // Most targets (every Connect method's) are already canonical: segments of
  // unreserved characters, none empty or starting with a dot, no query.
  // Parsing those as URLs was ~14 % of the front's own JavaScript per cached lookup.
  return plainPath.test(raw) ? raw : parsedTarget(raw);
}

/** canonicalTarget for any target, through WHATWG URL parsing. */
export function parsedTarget(raw: string): string | undefined {
  let url: URL;
  try {
    url = raw.startsWith("/") ? new URL(`http://front${raw}`) : new URL(raw);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  const path = url.pathname.replace(/\/{2,}/g, "/").replace(/(.)\/+$/, "$1");
  return path + url.search;
}

export interface RestTarget {
  meshId: string;
  register: boolean;
}

export function restTarget(method: string, path: string): RestTarget | undefined {
  const match = restPath.exec(path);
  if (!match) return undefined;
  try {
    return { meshId: decodeURIComponent(match[1]!), register: method === "POST" && match[2] === "register" };
  } catch {
    return undefined; // bad escape: the worker answers it
  }
}

export function connectMethod(path: string): DescMethod | undefined {
  return path.startsWith(connectPrefix) ? methods.get(path.slice(connectPrefix.length)) : undefined;
}

export function isRegistration(method: DescMethod): boolean {
  return method.name === "RegisterColony" || method.name === "RegisterAgent";
}

export function isLookup(method: DescMethod): boolean {
  return method.name === "LookupColony" || method.name === "LookupAgent";
}

export interface BodyHeaders {
  contentType: string;
  contentEncoding?: string;
  grpcEncoding?: string;
}

/** The wire format of a Connect, gRPC or gRPC-web request body, from its content type. */
export function bodyFormat(contentType: string): { binary: boolean; enveloped: boolean } | undefined {
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") return { binary: false, enveloped: false };
  if (type === "application/proto") return { binary: true, enveloped: false };
  const grpc = /^application\/grpc(?:-web)?(?:\+(proto|json))?$/.exec(type);
  if (grpc) return { binary: grpc[1] !== "json", enveloped: true };
  return undefined;
}

function gunzip(bytes: Uint8Array): Uint8Array {
  return gunzipSync(bytes, { maxOutputLength: limits.maxBodyBytes });
}

/** The mesh id a POSTed request message names, or undefined when it cannot be read. */
export function meshIdFromBody(method: DescMethod, headers: BodyHeaders, body: Uint8Array): string | undefined {
  const format = bodyFormat(headers.contentType);
  if (!format) return undefined;
  try {
    let message = body;
    let encoding = headers.contentEncoding;
    if (format.enveloped) {
      if (message.byteLength < 5) return undefined;
      const compressed = (message[0]! & 1) === 1;
      const length = new DataView(message.buffer, message.byteOffset, 5).getUint32(1);
      message = message.subarray(5, 5 + length);
      encoding = compressed ? headers.grpcEncoding : undefined;
    }
    if (encoding && encoding !== "identity") {
      if (encoding !== "gzip") return undefined;
      message = gunzip(message);
    }
    return format.binary ? meshIdOf(method, fromBinary(method.input, message)) : meshIdOfJson(method, message);
  } catch {
    return undefined;
  }
}

/** The mesh id of a Connect GET (`?message=…&encoding=…[&base64=1][&compression=gzip]`). */
export function meshIdFromQuery(method: DescMethod, query: URLSearchParams): string | undefined {
  try {
    const raw = query.get("message") ?? "";
    let bytes = query.get("base64") === "1" ? Buffer.from(raw, "base64url") : new TextEncoder().encode(raw);
    const compression = query.get("compression");
    if (compression && compression !== "identity") {
      if (compression !== "gzip") return undefined;
      bytes = Buffer.from(gunzip(bytes));
    }
    const encoding = query.get("encoding");
    if (encoding === "proto") return meshIdOf(method, fromBinary(method.input, bytes));
    if (encoding === "json") return meshIdOfJson(method, bytes);
    return undefined;
  } catch {
    return undefined;
  }
}

/**
 * The mesh id of a JSON request message. A message that names it under one
 * spelling only, as a string, is read directly (the protobuf JSON mapping of
 * the whole message costs more than the rest of the routing); anything else
 * goes through that mapping, as the worker reads it.
 */
function meshIdOfJson(method: DescMethod, bytes: Uint8Array): string | undefined {
  const json = JSON.parse(new TextDecoder().decode(bytes)) as JsonValue;
  if (method.name !== "RedeemBootstrapToken" && json !== null && typeof json === "object" && !Array.isArray(json)) {
    const camel = json.meshId;
    const snake = json.mesh_id;
    const named = camel === undefined ? snake : snake === undefined ? camel : undefined;
    if (typeof named === "string") return named === "" ? undefined : named;
  }
  return meshIdOf(method, fromJson(method.input, json, { ignoreUnknownFields: true }));
}

function meshIdOf(method: DescMethod, message: object): string | undefined {
  if (method.name === "RedeemBootstrapToken") return meshIdOfToken((message as { token?: string }).token ?? "");
  const meshId = (message as { meshId?: unknown }).meshId;
  return typeof meshId === "string" && meshId !== "" ? meshId : undefined;
}

/**
 * The mesh a bootstrap token names (its `colony_id` claim), read without
 * verifying: the shard verifies the signature and single use.
 */
export function meshIdOfToken(token: string): string | undefined {
  const payload = token.split(".")[1];
  if (!payload || payload.length > 4096) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { colony_id?: unknown };
    return typeof claims.colony_id === "string" ? claims.colony_id : undefined;
  } catch {
    return undefined;
  }
}
