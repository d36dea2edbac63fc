// OTLP export requests off the wire, with the generated OTLP schemas
// (proto/vendor/opentelemetry): binary protobuf or OTLP/JSON. OTLP/JSON is
// proto3 JSON with one difference: trace and span ids are hex, not base64;
// they are rewritten before the standard decoder runs. Enums may be numbers
// (the decoder takes both). Anything malformed is an OtlpDecodeError, with a
// message naming what was wrong.
import { fromBinary, fromJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { ExportLogsServiceRequestSchema } from "@coral/proto/gen/opentelemetry/proto/collector/logs/v1/logs_service_pb";
import { ExportMetricsServiceRequestSchema } from "@coral/proto/gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb";
import { ExportTraceServiceRequestSchema } from "@coral/proto/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb";

export class OtlpDecodeError extends Error {}

export const otlpSchemas = {
  traces: ExportTraceServiceRequestSchema,
  metrics: ExportMetricsServiceRequestSchema,
  logs: ExportLogsServiceRequestSchema,
} as const;
export type OtlpSignal = keyof typeof otlpSchemas;
export type OtlpRequest<S extends OtlpSignal> = MessageShape<(typeof otlpSchemas)[S]>;

const idKeys = new Set(["traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"]);

/** Hex ids → base64, in place, everywhere in the tree (spans, links, logs, exemplars). */
function hexIdsToBase64(v: unknown, depth = 0): void {
  if (depth > 64 || v === null || typeof v !== "object") return;
  if (Array.isArray(v)) {
    for (const x of v) hexIdsToBase64(x, depth + 1);
    return;
  }
  const o = v as Record<string, unknown>;
  for (const [k, x] of Object.entries(o)) {
    if (idKeys.has(k) && typeof x === "string") {
      if (x !== "" && !/^(?:[0-9a-fA-F]{2})+$/.test(x)) throw new OtlpDecodeError(`${k} ${JSON.stringify(x.slice(0, 40))} is not hex`);
      o[k] = Buffer.from(x, "hex").toString("base64");
    } else hexIdsToBase64(x, depth + 1);
  }
}

function decodeWith<D extends DescMessage>(schema: D, body: Uint8Array, json: boolean): MessageShape<D> {
  try {
    if (!json) return fromBinary(schema, body);
    const parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8")) as JsonValue;
    hexIdsToBase64(parsed);
    return fromJson(schema, parsed, { ignoreUnknownFields: true });
  } catch (err) {
    if (err instanceof OtlpDecodeError) throw err;
    throw new OtlpDecodeError(`not a valid OTLP ${json ? "JSON" : "protobuf"} ${schema.name}: ${(err as Error).message}`);
  }
}

/** Decodes one export request of `signal` (protobuf, or OTLP/JSON when `json`). */
export function decodeOtlp<S extends OtlpSignal>(signal: S, body: Uint8Array, json: boolean): OtlpRequest<S> {
  return decodeWith(otlpSchemas[signal], body, json) as OtlpRequest<S>;
}
