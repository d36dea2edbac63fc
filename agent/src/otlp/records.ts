// OTLP requests flattened into the rows the agent keeps: one per span and
// one per log record, with the service and pid they are attributed to
// (attribute below: the resource's service.name and process.pid, or the
// sending process's) on each. Attribute sets are JSON, values as text
// where they are not plain scalars, and capped so one huge attribute cannot
// blow a row up.
import type { AnyValue, KeyValue } from "@coral/proto/gen/opentelemetry/proto/common/v1/common_pb";
import { Status_StatusCode } from "@coral/proto/gen/opentelemetry/proto/trace/v1/trace_pb";
import type { OtlpRequest } from "./decode.ts";

export const maxAttributeChars = 1024;
export const maxAttributesJson = 8192;
export const maxLogBodyChars = 8192;

export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  service: string;
  /** process.pid of the resource, else the sending process's (found from a loopback connection), 0 when neither. */
  pid: number;
  name: string;
  /** SPAN_KIND_… without the prefix, lower case: server, client, internal, producer, consumer, unspecified. */
  kind: string;
  startNs: bigint;
  endNs: bigint;
  durationMs: number;
  error: boolean;
  statusMessage: string;
  /** JSON object of the span's attributes. */
  attributes: string;
}

export interface LogRecordRow {
  timeNs: bigint;
  service: string;
  pid: number;
  /** 1–24, 0 unspecified. */
  severityNumber: number;
  severityText: string;
  body: string;
  attributes: string;
  traceId: string;
  spanId: string;
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** An attribute value as JSON-able data (nested lists and maps kept, depth-limited). */
function plain(v: AnyValue | undefined, depth = 0): unknown {
  const x = v?.value;
  if (!x) return null;
  switch (x.case) {
    case "stringValue":
      return cut(x.value, maxAttributeChars);
    case "boolValue":
    case "doubleValue":
      return x.value;
    case "intValue":
      return Number.isSafeInteger(Number(x.value)) ? Number(x.value) : String(x.value);
    case "bytesValue":
      return Buffer.from(x.value).toString("base64");
    case "arrayValue":
      return depth > 4 ? "[…]" : x.value.values.slice(0, 100).map((e) => plain(e, depth + 1));
    case "kvlistValue":
      return depth > 4 ? "{…}" : attributeObject(x.value.values, depth + 1);
    default:
      return null;
  }
}

export function attributeObject(list: readonly KeyValue[], depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list.slice(0, 128)) out[cut(kv.key, 256)] = plain(kv.value, depth);
  return out;
}

function attributesJson(list: readonly KeyValue[]): string {
  if (list.length === 0) return "{}";
  const json = JSON.stringify(attributeObject(list));
  return json.length > maxAttributesJson ? JSON.stringify({ "coral.truncated": cut(json, maxAttributesJson - 40) }) : json;
}

/** A log body as text: strings as they are, anything else as JSON. */
function bodyText(v: AnyValue | undefined): string {
  if (v?.value.case === "stringValue") return cut(v.value.value, maxLogBodyChars);
  const p = plain(v);
  return p === null ? "" : cut(typeof p === "string" ? p : JSON.stringify(p), maxLogBodyChars);
}

export function resourceOf(attrs: readonly KeyValue[] | undefined, fallbackService: string): { service: string; pid: number } {
  let service = "";
  let pid = 0;
  for (const kv of attrs ?? []) {
    if (kv.key === "service.name" && kv.value?.value.case === "stringValue") service = kv.value.value.value;
    if (kv.key === "process.pid" && kv.value?.value.case === "intValue") pid = Number(kv.value.value.value);
  }
  // The spec's default for an SDK that was given no name.
  return { service: cut(service || fallbackService, 200), pid: Number.isSafeInteger(pid) && pid > 0 ? pid : 0 };
}

/** Where a resource's data goes: a service and a pid (0 = none). */
export type Attribution = (attrs: readonly KeyValue[] | undefined) => { service: string; pid: number };

/** The process that sent a request (found from its loopback connection) and the observed service it belongs to, if any. */
export interface OtlpSender {
  pid: number;
  service?: string;
}

export interface Attributed {
  service: string;
  pid: number;
  /** The resource named no service, or the SDK's default (unknown_service[:<process>]): the sender's service stands in. */
  byProcess: boolean;
  /** The resource names a service, and the sender belongs to another observed one (the name stands: users name things on purpose). */
  disagrees: boolean;
}

/** service.name as the OTel SDKs set it when they were given none: "unknown_service", or "unknown_service:<process>". */
export const isDefaultServiceName = (name: string) => name === "" || name === "unknown_service" || name.startsWith("unknown_service:");

/**
 * By service.name and by the sending process: a resource without a name of
 * its own (none, or the SDK's default) from a process of an observed
 * service is that service's; one without any name from elsewhere is
 * `fallbackService`'s. process.pid, when the resource has none, is the
 * sender's.
 */
export function attribute(attrs: readonly KeyValue[] | undefined, fallbackService: string, sender: OtlpSender | undefined): Attributed {
  const named = resourceOf(attrs, "");
  const pid = named.pid || sender?.pid || 0;
  const byProcess = isDefaultServiceName(named.service) && sender?.service !== undefined;
  const service = byProcess ? sender!.service! : named.service || fallbackService;
  return { service: cut(service, 200), pid, byProcess, disagrees: !byProcess && sender?.service !== undefined && sender.service !== named.service };
}

const byResource = (fallbackService: string): Attribution => (attrs) => resourceOf(attrs, fallbackService);

const kindNames = ["unspecified", "internal", "server", "client", "producer", "consumer"];

/** `to`: a service for resources without service.name, or how to attribute each resource. */
export function spanRecords(req: OtlpRequest<"traces">, to: string | Attribution = "unknown_service"): SpanRecord[] {
  const attributeTo = typeof to === "string" ? byResource(to) : to;
  const out: SpanRecord[] = [];
  for (const rs of req.resourceSpans) {
    const { service, pid } = attributeTo(rs.resource?.attributes);
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        const durationNs = s.endTimeUnixNano > s.startTimeUnixNano ? s.endTimeUnixNano - s.startTimeUnixNano : 0n;
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          service,
          pid,
          name: cut(s.name, 512),
          kind: kindNames[s.kind] ?? "unspecified",
          startNs: s.startTimeUnixNano,
          endNs: s.endTimeUnixNano,
          durationMs: Number(durationNs) / 1e6,
          error: s.status?.code === Status_StatusCode.ERROR,
          statusMessage: cut(s.status?.message ?? "", 1024),
          attributes: attributesJson(s.attributes),
        });
      }
    }
  }
  return out;
}

export function logRecords(req: OtlpRequest<"logs">, to: string | Attribution = "unknown_service"): LogRecordRow[] {
  const attributeTo = typeof to === "string" ? byResource(to) : to;
  const out: LogRecordRow[] = [];
  for (const rl of req.resourceLogs) {
    const { service, pid } = attributeTo(rl.resource?.attributes);
    for (const sl of rl.scopeLogs) {
      for (const r of sl.logRecords) {
        out.push({
          // The spec: when time is unset, the observed time stands in.
          timeNs: r.timeUnixNano || r.observedTimeUnixNano,
          service,
          pid,
          severityNumber: r.severityNumber,
          severityText: cut(r.severityText, 32),
          body: bodyText(r.body),
          attributes: attributesJson(r.attributes),
          traceId: hex(r.traceId),
          spanId: hex(r.spanId),
        });
      }
    }
  }
  return out;
}
