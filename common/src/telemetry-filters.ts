/**
 * The filters of `coral traces` and `coral logs` (SpanFilter and LogFilter
 * of coral/agent/v1/telemetry.proto), checked the same way at every edge
 * (CLI, colony, agent). Each check throws a RangeError whose message names
 * the field and says what is allowed; the result is what the agent's store
 * queries take (times already converted from the messages' Timestamps).
 */
/** 9999-12-31T23:59:59.999Z: the last time the stores hold. */
const maxTimeMs = 253_402_300_799_999;

export const telemetryLimits = { defaultLimit: 100, maxLimit: 10_000, maxText: 256 } as const;

interface Common {
  service: string;
  traceId: string;
  since?: Date;
  until?: Date;
  limit: number;
}

export interface CheckedCommon {
  service?: string;
  traceId?: string;
  since?: Date;
  until?: Date;
  limit: number;
}

function text(name: string, v: string): string | undefined {
  const s = v.trim();
  if (s.length > telemetryLimits.maxText) throw new RangeError(`${name}: at most ${telemetryLimits.maxText} characters, got ${s.length}`);
  return s || undefined;
}

function common(f: Common): CheckedCommon {
  const limit = f.limit || telemetryLimits.defaultLimit;
  if (!Number.isInteger(limit) || limit < 1 || limit > telemetryLimits.maxLimit) throw new RangeError(`limit: must be from 1 to ${telemetryLimits.maxLimit}, got ${f.limit}`);
  const traceId = f.traceId.trim().toLowerCase();
  if (traceId && !/^[0-9a-f]{32}$/.test(traceId)) throw new RangeError(`trace_id: must be 32 hex digits, got ${JSON.stringify(f.traceId.slice(0, 40))}`);
  for (const [name, d] of [["since", f.since], ["until", f.until]] as const)
    if (d && !(d.getTime() >= 0 && d.getTime() <= maxTimeMs)) throw new RangeError(`${name}: must be a time from 1970 to 9999`);
  if (f.since && f.until && f.since > f.until) throw new RangeError("since: must be before until");
  return { service: text("service", f.service), traceId: traceId || undefined, since: f.since, until: f.until, limit };
}

export function checkSpanFilter(f: Common & { operation: string; minDurationMs: number; errorsOnly: boolean }): CheckedCommon & { operation?: string; minDurationMs?: number; errorsOnly?: boolean } {
  if (!Number.isFinite(f.minDurationMs) || f.minDurationMs < 0 || f.minDurationMs > 86_400_000)
    throw new RangeError(`min_duration_ms: must be from 0 to 86400000 ms (a day), got ${f.minDurationMs}`);
  return { ...common(f), operation: text("operation", f.operation), minDurationMs: f.minDurationMs || undefined, errorsOnly: f.errorsOnly || undefined };
}

export function checkLogFilter(f: Common & { minSeverity: number; grep: string }): CheckedCommon & { minSeverity?: number; grep?: string } {
  if (!Number.isInteger(f.minSeverity) || f.minSeverity < 0 || f.minSeverity > 24) throw new RangeError(`min_severity: must be from 0 to 24 (9 INFO, 13 WARN, 17 ERROR, 21 FATAL), got ${f.minSeverity}`);
  return { ...common(f), minSeverity: f.minSeverity || undefined, grep: text("grep", f.grep) };
}

/** Severity names as `--severity` takes them → the lowest OpenTelemetry severity number of that level. */
export const severityNumbers: Readonly<Record<string, number>> = { trace: 1, debug: 5, info: 9, warn: 13, warning: 13, error: 17, fatal: 21 };
