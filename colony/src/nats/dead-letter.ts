// Telemetry set aside by ingestion: what is recorded about it, and its copy on
// the colony's dead-letter subject (kept by the stream, outside the ingest
// filter, so the whole message can be inspected or replayed; it is never
// ingested by itself).
import { createHash } from "node:crypto";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { errorMessage, type NatsLogger } from "./logger.ts";
import { deadLetterSubject } from "./subjects.ts";

export interface DeadLetter {
  /** Stable for one stream message, so recording it twice (a redelivery) keeps one row. */
  key: string;
  at: Date;
  /** The agent the subject names ("" if the subject names none). */
  agentId: string;
  subject: string;
  /** From the batch, or its Nats-Msg-Id when it could not be decoded; may be "". */
  batchId: string;
  reason: string;
  /** The whole message body; the store keeps only its first bytes. */
  payload: Uint8Array;
  streamSeq: number;
  deliveries: number;
}

export function deadLetterKey(streamSeq: number, subject: string, payload: Uint8Array): string {
  const digest = createHash("sha256").update(subject).update("\n").update(payload).digest("hex").slice(0, 16);
  return `${streamSeq}-${digest}`;
}

/** The agent token of "coral.<colony>.agent.<agent>.telemetry", whatever it holds, capped. */
export function agentOfSubject(subject: string): string {
  const parts = subject.split(".");
  return parts.length === 5 && parts[2] === "agent" ? parts[3]!.slice(0, 128) : "";
}

// Header values are one line of printable text.
// eslint-disable-next-line no-control-regex -- control characters are what this strips
const headerValue = (s: string, max = 512) => s.replace(/[\u0000-\u001f\u007f]+/g, " ").slice(0, max);

const headerRoom = 4096;

/** Republishes a set-aside message on the dead-letter subject; best effort (the store holds the record). */
export function publishDeadLetter(nc: NatsConnection, colonyId: string, letter: DeadLetter, log: NatsLogger): void {
  if (nc.isClosed()) return;
  const h: MsgHdrs = headers();
  h.set("Nats-Msg-Id", `deadletter-${letter.key}`);
  h.set("Coral-Reason", headerValue(letter.reason));
  h.set("Coral-Subject", headerValue(letter.subject, 256));
  if (letter.agentId) h.set("Coral-Agent-Id", headerValue(letter.agentId, 128));
  if (letter.batchId) h.set("Coral-Batch-Id", headerValue(letter.batchId, 256));
  h.set("Coral-Stream-Seq", String(letter.streamSeq));
  h.set("Coral-Deliveries", String(letter.deliveries));
  // The original fitted the stream's message cap; with these headers it may not fit the server's payload cap.
  const room = Math.max(0, (nc.info?.max_payload ?? 1024 * 1024) - headerRoom);
  let payload = letter.payload;
  if (payload.length > room) {
    payload = payload.subarray(0, room);
    h.set("Coral-Truncated", String(letter.payload.length));
  }
  try {
    nc.publish(deadLetterSubject(colonyId), payload, { headers: h });
  } catch (err) {
    log.warn({ err: errorMessage(err), key: letter.key }, "Could not republish a set-aside telemetry message");
  }
}
