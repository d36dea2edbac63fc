// Updates a kept lookup answer to what a pure refresh of its registration
// changed (see refreshedHeader in ../worker/answer-expiry.ts): the
// signature, the observed address, lastSeen and expiresAt. The answer is
// decoded and encoded again with the same protobuf code and options the
// worker answers with (Connect JSON and binary through connect-es, REST
// through toJson with proto field names), so the updated bytes are what the
// worker itself would now answer to the same request. Answers of other keys
// of the mesh are unchanged by the refresh and go back as they were.
import { create, fromBinary, fromJsonString, toBinary, toJson, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { discoveryPb as pb } from "@coral/proto";
import { expiresAtHeader, type RefreshNote } from "../worker/answer-expiry.ts";
import type { Answer } from "./answer-cache.ts";
import { bodyFormat, connectPrefix } from "./route-key.ts";

/** What a kept answer answers, read from the request that got it. */
interface LookupShape {
  kind: "colony" | "agent";
  encoding: "json" | "binary" | "rest";
}

const restLookupPath = /^\/v1\/mesh\/[^/]+\/(colony|agents\/[^/]+)$/;

function lookupShape(path: string, contentType: string | undefined): LookupShape | undefined {
  const queryAt = path.indexOf("?");
  const bare = queryAt < 0 ? path : path.slice(0, queryAt);
  const rest = restLookupPath.exec(bare);
  if (rest) return { kind: rest[1] === "colony" ? "colony" : "agent", encoding: "rest" };
  const kind = bare === `${connectPrefix}LookupColony` ? "colony" : bare === `${connectPrefix}LookupAgent` ? "agent" : undefined;
  const format = bodyFormat(contentType ?? "");
  if (!kind || !format || format.enveloped) return undefined;
  return { kind, encoding: format.binary ? "binary" : "json" };
}

/** The note of a registration's answer, or undefined when it has none or it is not one. */
export function parseRefreshNote(value: string | string[] | undefined): RefreshNote | undefined {
  if (typeof value !== "string") return undefined;
  try {
    const note = JSON.parse(value) as Partial<RefreshNote>;
    const strings = [note.key, note.identityPubkey, note.signedAtMs, note.signature, note.observedIp];
    if (strings.some((s) => typeof s !== "string") || typeof note.lastSeenMs !== "number" || typeof note.expiresAtMs !== "number") return undefined;
    if (!/^\d{1,20}$/.test(note.signedAtMs!)) return undefined;
    return note as RefreshNote;
  } catch {
    return undefined;
  }
}

function decode<D extends DescMessage>(schema: D, encoding: LookupShape["encoding"], body: Buffer): MessageShape<D> {
  if (encoding === "binary") return fromBinary(schema, body);
  return fromJsonString(schema, body.toString("utf8"));
}

function encode<D extends DescMessage>(schema: D, encoding: LookupShape["encoding"], message: MessageShape<D>): Buffer {
  if (encoding === "binary") return Buffer.from(toBinary(schema, message));
  if (encoding === "json") return Buffer.from(toJsonString(schema, message));
  return Buffer.from(JSON.stringify(toJson(schema, message, { useProtoFieldName: true })));
}

/**
 * The kept answer as it reads after the refresh: updated when it is an answer
 * of the refreshed key, the same answer when it is another key's, and
 * undefined when it cannot be read (then it is not put back).
 */
export function refreshedAnswer(request: { path: string; contentType: string | undefined }, answer: Answer, note: RefreshNote): Answer | undefined {
  const shape = lookupShape(request.path, request.contentType);
  if (!shape) return undefined;
  try {
    const schema = shape.kind === "colony" ? pb.LookupColonyResponseSchema : pb.LookupAgentResponseSchema;
    const message = decode(schema, shape.encoding, answer.body);
    const key = "agentId" in message ? `agent:${message.agentId}` : "colony";
    if (key !== note.key) return answer;
    message.signature = create(pb.SignatureSchema, {
      identityPubkey: note.identityPubkey,
      signedAtMs: BigInt(note.signedAtMs),
      signature: note.signature,
    });
    message.lastSeen = timestampFromMs(note.lastSeenMs);
    message.expiresAt = timestampFromMs(note.expiresAtMs);
    message.observedEndpoint = note.observedIp;
    const body = encode(schema, shape.encoding, message);
    const headers: string[] = [];
    for (let i = 0; i < answer.headers.length; i += 2) {
      const name = answer.headers[i]!;
      const value = name === expiresAtHeader ? String(note.expiresAtMs) : name === "content-length" ? String(body.byteLength) : answer.headers[i + 1]!;
      headers.push(name, value);
    }
    return { status: answer.status, headers, body, expiresAtMs: note.expiresAtMs };
  } catch {
    return undefined;
  }
}
