// AgentService.QuerySpans and QueryLogs: the OpenTelemetry data this agent
// received (agent/src/otlp), filtered here so only matches cross the mesh;
// KeepTraces: traces other agents keep, for this agent's keep rules.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { checkLogFilter, checkSpanFilter } from "@coral/common/telemetry-filters";
import { checkKeptTraceIds } from "@coral/proto";
import { LogFilterSchema, SpanFilterSchema, type KeepTracesRequest, type KeepTracesResponseSchema, type QueryLogsRequest, type QueryLogsResponseSchema, type QuerySpansRequest, type QuerySpansResponseSchema } from "@coral/proto/gen/coral/agent/v1/telemetry_pb";
import type { AgentStore } from "../storage/index.ts";

function invalid<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw new ConnectError((err as Error).message, Code.InvalidArgument);
  }
}

export function telemetryHandlers(store: Pick<AgentStore, "querySpans" | "queryLogs">, keepTraces?: (traceIds: readonly string[]) => number) {
  return {
    keepTraces(req: KeepTracesRequest): MessageInitShape<typeof KeepTracesResponseSchema> {
      const ids = invalid(() => checkKeptTraceIds(req.traceIds));
      return { spansKept: keepTraces?.(ids) ?? 0 };
    },
    async querySpans(req: QuerySpansRequest): Promise<MessageInitShape<typeof QuerySpansResponseSchema>> {
      const f = req.filter ?? create(SpanFilterSchema);
      const q = invalid(() => checkSpanFilter({ ...f, since: f.since && timestampDate(f.since), until: f.until && timestampDate(f.until) }));
      const page = await store.querySpans(q);
      return {
        truncated: page.truncated,
        spans: page.rows.map((s) => ({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId,
          service: s.service,
          pid: s.pid,
          name: s.name,
          kind: s.kind,
          startUnixNano: s.startNs,
          durationMs: s.durationMs,
          error: s.error,
          statusMessage: s.statusMessage,
          attributesJson: s.attributes,
        })),
      };
    },
    async queryLogs(req: QueryLogsRequest): Promise<MessageInitShape<typeof QueryLogsResponseSchema>> {
      const f = req.filter ?? create(LogFilterSchema);
      const q = invalid(() => checkLogFilter({ ...f, since: f.since && timestampDate(f.since), until: f.until && timestampDate(f.until) }));
      const page = await store.queryLogs(q);
      return {
        truncated: page.truncated,
        records: page.rows.map((l) => ({
          timeUnixNano: l.timeNs,
          service: l.service,
          pid: l.pid,
          severityNumber: l.severityNumber,
          severityText: l.severityText,
          body: l.body,
          attributesJson: l.attributes,
          traceId: l.traceId,
          spanId: l.spanId,
        })),
      };
    },
  };
}
