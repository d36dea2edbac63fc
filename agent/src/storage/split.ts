// Splitting an outbox batch that is too big for one NATS message (the server's
// max_payload): its metrics, events and connections are packed, in order, into
// parts that fit. Part ids derive from the batch id, the part count and the
// limit, so a retry with the same limit publishes the same parts (deduped by
// Nats-Msg-Id and by the colony's batch ids) and a retry under another limit
// never reuses an id for different contents. An item that cannot fit even
// alone is dropped and counted. Linear in the payload's bytes.
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

export interface BatchPart {
  batchId: string;
  payload: Uint8Array;
}

export interface SplitResult {
  parts: BatchPart[];
  /** Items (metric summaries, events, connections) too big for any message, dropped. */
  droppedItems: number;
  /** Set when the payload is not a TelemetryBatch at all (nothing can be sent). */
  error?: string;
}

// TelemetryBatch's field numbers: batch_id, and the repeated items that may be spread over parts
// (metrics, events, connections, profile windows).
const batchIdField = 1;
const itemFields = new Set([5, 6, 7, 8]);

/**
 * Splits `payload` (an encoded TelemetryBatch) into parts of at most maxBytes
 * each. It works on the wire bytes: every part is the batch's own fields with a
 * new batch_id, plus a run of its items copied as they are (no re-encoding).
 */
export function splitBatch(batchId: string, payload: Uint8Array, maxBytes: number): SplitResult {
  if (payload.length <= maxBytes) return { parts: [{ batchId, payload }], droppedItems: 0 };
  const envelope: Uint8Array[] = [];
  const items: Uint8Array[] = [];
  try {
    const r = new BinaryReader(payload);
    while (r.pos < r.len) {
      const start = r.pos;
      const [no, wire] = r.tag();
      r.skip(wire, no);
      if (no === batchIdField) continue; // each part gets its own
      (itemFields.has(no) && wire === WireType.LengthDelimited ? items : envelope).push(payload.subarray(start, r.pos));
    }
  } catch (err) {
    return { parts: [], droppedItems: 0, error: `not a TelemetryBatch: ${(err as Error).message}` };
  }
  // Room for the part's batch_id field: the id, its suffix, tag and length.
  const envelopeBytes = envelope.reduce((n, e) => n + e.length, 0) + batchId.length + 48;
  const groups: Uint8Array[][] = [];
  let group: Uint8Array[] = [];
  let size = envelopeBytes;
  let droppedItems = 0;
  for (const item of items) {
    if (envelopeBytes + item.length > maxBytes) {
      droppedItems++;
      continue;
    }
    if (size + item.length > maxBytes) {
      groups.push(group);
      group = [];
      size = envelopeBytes;
    }
    group.push(item);
    size += item.length;
  }
  if (group.length > 0) groups.push(group);
  if (groups.length === 0 && droppedItems === 0) return { parts: [], droppedItems: 0, error: `the batch's own fields take more than ${maxBytes} bytes` };
  const parts = groups.map((g, i) => {
    const id = `${batchId}:${i + 1}/${groups.length}:${maxBytes}`;
    const idField = new BinaryWriter().tag(batchIdField, WireType.LengthDelimited).string(id).finish();
    const chunks = [idField, ...envelope, ...g];
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return { batchId: id, payload: out };
  });
  return { parts, droppedItems };
}
