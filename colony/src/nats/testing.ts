// Helpers for this folder's tests (not part of the public surface).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { NatsLogger } from "./logger.ts";
import { resolveNatsServerBinary } from "./managed-server.ts";

/** The nats-server binary, or null (the tests skip, saying why). */
export async function natsServerForTests(): Promise<string | null> {
  try {
    return await resolveNatsServerBinary();
  } catch (err) {
    console.warn(`SKIPPING NATS tests: ${(err as Error).message}`);
    return null;
  }
}

export interface CapturedLog {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every line, to look for leaked secrets and warnings. */
export function captureLogger(): NatsLogger & { lines: CapturedLog[]; text(): string } {
  const lines: CapturedLog[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, msg, fields });
  return {
    lines,
    text: () => lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`).join("\n"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}

export async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await mkdtemp(join(tmpdir(), `coral-${prefix}-`));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

export function makeBatch(agentId: string, batchId: string, metricName = "cpu_percent"): TelemetryBatch {
  return create(TelemetryBatchSchema, {
    batchId,
    agentId,
    serviceName: "api",
    createdAt: timestampFromDate(new Date()),
    metrics: [{ metricName, interval: "1m", p50: 1, p95: 2, p99: 3, mean: 1.5, max: 4, min: 0.5, count: 60n, timestamp: timestampFromDate(new Date()) }],
  });
}

export function encodeBatch(batch: TelemetryBatch): Uint8Array {
  return toBinary(TelemetryBatchSchema, batch);
}
