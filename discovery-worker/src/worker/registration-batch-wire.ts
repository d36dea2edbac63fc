// The self-hosted front sends registrations that arrive together for one
// shard as one request to this internal path, and the worker answers them
// all in one response (see registration-batch.ts and
// ../self-hosted/registration-batcher.ts). Shared by both sides, so it holds
// no runtime-specific code. The body is a sequence of parts, each a JSON head
// and raw bytes, every length a big-endian u32:
//   request part:  {path, headers: [[name, value], …]}  + the request body
//   response part: {status, headers: [[name, value], …]} + the answer body
import { limits } from "@coral/proto";

/** Refused by the front when a client asks for it; answered by the worker only with the front secret. */
export const registrationBatchPath = "/_coral/registration-batch";

/** Registrations in one batch, at most. */
export const maxBatchItems = 64;

/** A part's head is a path and a few request headers, far below this. */
const maxHeadBytes = 16 * 1024;

/** The largest batch body the worker reads: every part at its limits. */
export const maxBatchBytes = maxBatchItems * (8 + maxHeadBytes + limits.maxBodyBytes);

export interface BatchPart<H> {
  head: H;
  body: Uint8Array;
}

export interface BatchRequestHead {
  path: string;
  headers: Array<[string, string]>;
}

export interface BatchAnswerHead {
  status: number;
  headers: Array<[string, string]>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeBatch(parts: ReadonlyArray<BatchPart<unknown>>): Uint8Array {
  const heads = parts.map((p) => encoder.encode(JSON.stringify(p.head)));
  const size = parts.reduce((n, p, i) => n + 8 + heads[i]!.byteLength + p.body.byteLength, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  parts.forEach((part, i) => {
    for (const bytes of [heads[i]!, part.body]) {
      view.setUint32(at, bytes.byteLength);
      out.set(bytes, at + 4);
      at += 4 + bytes.byteLength;
    }
  });
  return out;
}

/** The parts of a batch; throws on a malformed one. Bodies are views into `bytes`. */
export function decodeBatch(bytes: Uint8Array, maxBodyBytes: number = limits.maxBodyBytes): Array<BatchPart<unknown>> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Array<BatchPart<unknown>> = [];
  let at = 0;
  const next = (max: number): Uint8Array => {
    if (at + 4 > bytes.byteLength) throw new Error(`batch ends inside a length at byte ${at}`);
    const length = view.getUint32(at);
    if (length > max || at + 4 + length > bytes.byteLength) throw new Error(`batch part at byte ${at} is ${length} bytes, more than it holds or may`);
    const slice = bytes.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    return slice;
  };
  while (at < bytes.byteLength) {
    if (parts.length === maxBatchItems) throw new Error(`batch holds more than ${maxBatchItems} parts`);
    const head = JSON.parse(decoder.decode(next(maxHeadBytes))) as unknown;
    parts.push({ head, body: next(maxBodyBytes) });
  }
  return parts;
}

function isHeaderList(value: unknown): value is Array<[string, string]> {
  return Array.isArray(value) && value.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === "string" && typeof h[1] === "string");
}

export function isRequestHead(head: unknown): head is BatchRequestHead {
  const h = head as Partial<BatchRequestHead> | null;
  return typeof h === "object" && h !== null && typeof h.path === "string" && h.path.startsWith("/") && isHeaderList(h.headers);
}

export function isAnswerHead(head: unknown): head is BatchAnswerHead {
  const h = head as Partial<BatchAnswerHead> | null;
  return typeof h === "object" && h !== null && typeof h.status === "number" && isHeaderList(h.headers);
}
