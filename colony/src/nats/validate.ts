// The edge check of a TelemetryBatch: everything the store needs to hold true,
// checked before the store sees it, so a bad batch is set aside on its own
// instead of failing the transaction it would share with other agents' data.
// Pure; returns the first problem found, or null.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ConnectionObservation, Event, MetricSummary, ProfileWindow, TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { batchLimits as L, maxStoredCount } from "./limits.ts";

// The store's intervals ("" means "1m").
const intervals = new Set(["", "1m", "5m", "15m", "1h", "1d"]);
const metricName = /^[A-Za-z_:][A-Za-z0-9_:./-]*$/;
const labelKey = /^[A-Za-z_][A-Za-z0-9_.:/-]*$/;
const eventType = /^[A-Za-z][A-Za-z0-9_.:/-]*$/;
// eslint-disable-next-line no-control-regex -- control characters are what this looks for
const control = /[\u0000-\u001f\u007f]/;

const q = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

function textProblem(what: string, value: string, max: number, required: boolean): string | null {
  if (value === "") return required ? `${what} is empty` : null;
  if (value.length > max) return `${what} is longer than ${max} characters`;
  if (control.test(value)) return `${what} ${q(value)} contains control characters`;
  return null;
}

function timestampProblem(what: string, t: Timestamp | undefined, nowMs: number, required = true): string | null {
  if (!t) return required ? `${what} has no timestamp` : null;
  if (t.nanos < 0 || t.nanos > 999_999_999) return `${what} has nanos ${t.nanos} outside 0..999999999`;
  if (t.seconds < L.earliestSeconds) return `${what} has timestamp ${t.seconds} s, before 2000-01-01`;
  if (t.seconds > BigInt(Math.floor((nowMs + L.futureSlackMs) / 1000))) return `${what} has timestamp ${t.seconds} s, more than a day in the future`;
  return null;
}

function metricProblem(m: MetricSummary, nowMs: number): string | null {
  const name = textProblem("metric name", m.metricName, L.metricNameLength, true);
  if (name) return name;
  if (!metricName.test(m.metricName)) return `metric name ${q(m.metricName)} must match ${metricName.source}`;
  const what = `metric ${q(m.metricName)}`;
  if (!intervals.has(m.interval)) return `${what} has interval ${q(m.interval)} (expected 1m, 5m, 15m, 1h or 1d)`;
  const ts = timestampProblem(what, m.timestamp, nowMs);
  if (ts) return ts;
  for (const [field, v] of [["p50", m.p50], ["p95", m.p95], ["p99", m.p99], ["mean", m.mean], ["max", m.max], ["min", m.min]] as const)
    if (!Number.isFinite(v)) return `${what} has a non-finite ${field} (${v})`;
  if (m.count > maxStoredCount) return `${what} has count ${m.count}, more than the store holds (2^63-1)`;
  let labels = 0;
  for (const key in m.labels) {
    if (++labels > L.labels) return `${what} has more than ${L.labels} labels`;
    const keyProblem = textProblem("label name", key, L.labelKeyLength, true);
    if (keyProblem) return `${what}: ${keyProblem}`;
    if (!labelKey.test(key)) return `${what}: label name ${q(key)} must match ${labelKey.source}`;
    const value = m.labels[key]!;
    if (value.length > L.labelValueLength) return `${what}: label ${q(key)} is longer than ${L.labelValueLength} characters`;
  }
  return null;
}

/** details_json must be a JSON object (or empty). */
function detailsProblem(what: string, text: string): string | null {
  if (text === "") return null;
  if (text.length > L.detailsJsonLength) return `${what} details_json is longer than ${L.detailsJsonLength} characters`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return `${what} details_json is not JSON (${(err as Error).message.slice(0, 100)})`;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return `${what} details_json is not a JSON object`;
  const inner = jsonValueProblem(parsed, 0);
  return inner && `${what} details_json ${inner}`;
}

const maxJsonDepth = 64;
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** What JSON.parse accepts but the store's JSON type refuses: lone surrogates ("\ud800"), absurd depth. */
function jsonValueProblem(v: unknown, depth: number): string | null {
  if (depth > maxJsonDepth) return `nests deeper than ${maxJsonDepth} levels`;
  if (typeof v === "string") return loneSurrogate.test(v) ? "holds a string with a lone surrogate" : null;
  if (typeof v === "number") return Number.isFinite(v) ? null : "holds a number out of range";
  if (typeof v !== "object" || v === null) return null;
  if (Array.isArray(v)) {
    for (const item of v) {
      const problem = jsonValueProblem(item, depth + 1);
      if (problem) return problem;
    }
    return null;
  }
  for (const [key, item] of Object.entries(v)) {
    if (loneSurrogate.test(key)) return "holds a key with a lone surrogate";
    const problem = jsonValueProblem(item, depth + 1);
    if (problem) return problem;
  }
  return null;
}

function eventProblem(e: Event, index: number, nowMs: number): string | null {
  const what = `event ${e.eventId ? q(e.eventId) : `#${index}`}`;
  const id = textProblem("event_id", e.eventId, L.eventIdLength, false);
  if (id) return `${what}: ${id}`;
  if (e.eventType === "") return `${what} has no event_type`;
  if (e.eventType.length > L.eventTypeLength || !eventType.test(e.eventType))
    return `${what} has event_type ${q(e.eventType)} (expected ${eventType.source}, at most ${L.eventTypeLength} characters)`;
  return timestampProblem(what, e.timestamp, nowMs) ?? detailsProblem(what, e.detailsJson);
}

/** Where an agent saw its connections; "" from agents older than the field. */
const connectionSources = new Set(["", "ebpf", "procfs"]);

function connectionProblem(c: ConnectionObservation, index: number, nowMs: number): string | null {
  const what = `connection #${index}`;
  return (
    textProblem(`${what} remote_addr`, c.remoteAddr, L.addrLength, true) ??
    textProblem(`${what} local_addr`, c.localAddr, L.addrLength, false) ??
    textProblem(`${what} state`, c.state, L.stateLength, false) ??
    (connectionSources.has(c.source) ? null : `${what} has source ${q(c.source.slice(0, 32))} (expected "ebpf", "procfs" or none)`) ??
    timestampProblem(what, c.observedAt, nowMs)
  );
}

/** An always-on profiler window: the store sums its samples per minute, so every count and index must hold. */
export function profileWindowProblem(w: ProfileWindow, index: number, nowMs: number): string | null {
  const what = `profile window #${index}`;
  const ts = timestampProblem(what, w.timestamp, nowMs);
  if (ts) return ts;
  if (w.hz < L.profileMinHz || w.hz > L.profileMaxHz) return `${what} has hz ${w.hz} (expected ${L.profileMinHz}..${L.profileMaxHz})`;
  if (w.durationMs === 0 || w.durationMs > L.profileMaxDurationMs) return `${what} has duration_ms ${w.durationMs} (expected 1..${L.profileMaxDurationMs})`;
  if (w.frames.length > L.profileFrames) return `${what} has ${w.frames.length} frames (at most ${L.profileFrames})`;
  if (w.stacks.length > L.profileStacks) return `${what} has ${w.stacks.length} stacks (at most ${L.profileStacks})`;
  for (let i = 0; i < w.frames.length; i++) {
    const f = w.frames[i]!;
    const problem =
      textProblem(`${what} frame #${i} function`, f.function, L.profileFunctionLength, true) ??
      textProblem(`${what} frame #${i} module`, f.module, L.profileModuleLength, false);
    if (problem) return problem;
  }
  // Sums in bigint: uint64 counts could overflow a double's exact range.
  let inStacks = 0n;
  for (let i = 0; i < w.stacks.length; i++) {
    const st = w.stacks[i]!;
    if (st.frameIds.length === 0) return `${what} stack #${i} has no frames`;
    if (st.frameIds.length > L.profileStackDepth) return `${what} stack #${i} has ${st.frameIds.length} frames (at most ${L.profileStackDepth})`;
    for (const id of st.frameIds) if (id >= w.frames.length) return `${what} stack #${i} has frame id ${id}, out of range (the window has ${w.frames.length} frames)`;
    inStacks += st.samples;
  }
  if (w.totalSamples > maxStoredCount) return `${what} has total_samples ${w.totalSamples}, more than the store holds (2^63-1)`;
  if (inStacks + w.otherSamples > w.totalSamples)
    return `${what}: its stacks' samples (${inStacks}) and other_samples (${w.otherSamples}) add up to more than total_samples (${w.totalSamples})`;
  return null;
}

/** Why this batch cannot be stored as sent, or null when it can. Never throws. */
export function validateTelemetryBatch(b: TelemetryBatch, nowMs = Date.now()): string | null {
  const basics =
    textProblem("batch_id", b.batchId, L.batchIdLength, true) ??
    textProblem("agent_id", b.agentId, 128, true) ??
    textProblem("service_name", b.serviceName, L.serviceNameLength, false) ??
    timestampProblem("created_at", b.createdAt, nowMs, false);
  if (basics) return basics;
  if (b.metrics.length > L.metrics) return `batch has ${b.metrics.length} metrics (at most ${L.metrics})`;
  if (b.events.length > L.events) return `batch has ${b.events.length} events (at most ${L.events})`;
  if (b.connections.length > L.connections) return `batch has ${b.connections.length} connections (at most ${L.connections})`;
  if (b.profiles.length > L.profileWindows) return `batch has ${b.profiles.length} profile windows (at most ${L.profileWindows})`;
  for (const m of b.metrics) {
    const problem = metricProblem(m, nowMs);
    if (problem) return problem;
  }
  for (let i = 0; i < b.events.length; i++) {
    const problem = eventProblem(b.events[i]!, i, nowMs);
    if (problem) return problem;
  }
  for (let i = 0; i < b.connections.length; i++) {
    const problem = connectionProblem(b.connections[i]!, i, nowMs);
    if (problem) return problem;
  }
  for (let i = 0; i < b.profiles.length; i++) {
    const problem = profileWindowProblem(b.profiles[i]!, i, nowMs);
    if (problem) return problem;
  }
  return null;
}
