// Why a sink call failed decides what ingestion does next:
//  - "store-unavailable": the store cannot take anything now (closed, out of
//    disk or memory). The batches are held and retried; nothing is set aside.
//  - "batch-rejected": the store refused this data for good (a conversion or
//    constraint error, or its own validation). Alone, the batch is set aside.
//  - "unknown": anything else. A group is split to find the culprit; a batch
//    that keeps failing alone is set aside after a bounded number of deliveries.
import { errorMessage } from "./logger.ts";

export type SinkFailure = "store-unavailable" | "batch-rejected" | "unknown";

const unavailable = /closed|IO Error|No space left|Out of Memory|could not set lock|database has been invalidated|ENOSPC|EIO/i;
const rejected = /Conversion Error|Invalid Input Error|Constraint Error|Out of Range Error|Malformed JSON|Mismatch Type Error|not (valid )?JSON/i;

function messages(err: unknown): string {
  let text = "";
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; e = (e as { cause?: unknown }).cause, depth++) text += ` ${errorMessage(e)}`;
  return text;
}

export function classifySinkError(err: unknown): SinkFailure {
  const name = (err as { name?: unknown } | null)?.name;
  if (name === "StoreClosedError") return "store-unavailable";
  const text = messages(err);
  if (unavailable.test(text)) return "store-unavailable";
  // The store's own checks name the batch they refused.
  if (name === "IngestError" && typeof (err as { batchId?: unknown }).batchId === "string") return "batch-rejected";
  if (rejected.test(text)) return "batch-rejected";
  return "unknown";
}
