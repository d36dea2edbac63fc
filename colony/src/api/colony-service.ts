// ColonyService: what the CLI, dashboard and MCP clients read.
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ColonyService,
  IngestHealthSchema,
  ServiceInfoSchema,
  type IngestHealth,
  TokenScope,
  type ServiceInfo,
} from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { intervals, type AgentRow, type Interval } from "../store/types.ts";
import { readIngestHealth } from "../store/index.ts";
import { callerKey, hashToken } from "../auth/index.ts";
import { rawMetricsFromAgents } from "../agents/queries.ts";
import { telemetryQueryHandlers } from "../agents/telemetry.ts";
import type { ApiDeps } from "./deps.ts";
import type { SdkReportRow } from "../control/store.ts";
import { activeInsightCount, insightsHandlers } from "../insights/service.ts";

const tokenNamePattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const maxEventLimit = 10_000;

// CLI tokens expire unless asked not to (`--ttl never`); the local token is not one of them.
export const defaultTokenTtlSeconds = 90 * 86_400;
const maxTokenTtlSeconds = 3650 * 86_400;

/** When a new token expires (null: never), from CreateToken's ttl_seconds and never_expires. */
function tokenExpiry(ttlSeconds: bigint, neverExpires: boolean, now: Date): Date | null {
  if (neverExpires) {
    if (ttlSeconds !== 0n) throw invalid("ttl_seconds: must be 0 with never_expires (a token either expires or not)");
    return null;
  }
  const ttl = ttlSeconds === 0n ? defaultTokenTtlSeconds : Number(ttlSeconds);
  if (ttl < 60 || ttl > maxTokenTtlSeconds)
    throw invalid(`ttl_seconds: must be from 60 (1m) to ${maxTokenTtlSeconds} (3650d), got ${ttlSeconds}; use never_expires for a token that does not expire`);
  return new Date(now.getTime() + ttl * 1000);
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

// The range protobuf's Timestamp allows (0001-01-01 to 9999-12-31): beyond it a time is the caller's mistake.
const minSeconds = -62_135_596_800n;
const maxSeconds = 253_402_300_799n;

function optionalDate(ts: Timestamp | undefined, field: string): Date | undefined {
  if (!ts) return undefined;
  if (ts.seconds < minSeconds || ts.seconds > maxSeconds || ts.nanos < 0 || ts.nanos > 999_999_999)
    throw invalid(`${field}: must be a time from 0001-01-01 to 9999-12-31`);
  return timestampDate(ts);
}

export function serviceInfo(row: AgentRow, state: string, now: number): ServiceInfo {
  const started = row.processStartedAt?.getTime();
  return create(ServiceInfoSchema, {
    name: row.serviceName,
    agentId: row.agentId,
    status: state,
    // Connected but no process listens on the port (yet): say so, not a healthy-looking "unknown".
    health: (state === "online" || state === "degraded") && row.pid === 0 && (row.health === "unknown" || row.health === "") ? "waiting" : row.health,
    version: row.version,
    port: row.port,
    address: row.address,
    uptimeSeconds: BigInt(started && state !== "offline" && state !== "expired" ? Math.max(0, Math.floor((now - started) / 1000)) : 0),
    restartCount: row.restartCount,
    lastSeen: timestampFromDate(row.lastSeen),
    labels: row.tags,
    cpuPercent: row.cpuPercent,
    memoryBytes: BigInt(Math.max(0, Math.round(row.memoryBytes))),
    pid: row.pid,
    processCount: row.processCount ?? 0,
  });
}

/** Adds what the app's Coral SDK reported through this agent. */
function withSdk(info: ServiceInfo, report: SdkReportRow | undefined): ServiceInfo {
  if (!report) return info;
  info.sdkEnabled = true;
  info.gitCommit = report.gitCommit;
  info.components = report.components;
  if (report.version) info.version = report.version;
  return info;
}

/** What ingestion stored and set aside; "recent" is the last hour. */
async function ingestHealth(deps: ApiDeps): Promise<IngestHealth> {
  const h = await deps.store.read((c) => readIngestHealth(c, new Date(Date.now() - 60 * 60_000)));
  return create(IngestHealthSchema, {
    batchesStored: BigInt(h.batchesStored),
    batchesSetAside: BigInt(h.batchesSetAside),
    setAsideRecent: BigInt(h.setAsideRecent),
    lastReason: h.last?.reason ?? "",
    lastSetAsideAt: h.last ? timestampFromDate(h.last.at) : undefined,
    lastAgentId: h.last?.agentId ?? "",
  });
}

export function colonyService(deps: ApiDeps) {
  async function services(): Promise<ServiceInfo[]> {
    const now = Date.now();
    const rows = await deps.store.listAgents();
    const sdk = (await deps.control?.sdkReports()) ?? new Map();
    return rows
      .map((row) => withSdk(serviceInfo(row, deps.agents.get(row.agentId)?.state ?? "unknown", now), sdk.get(row.agentId)))
      .filter((s) => s.status !== "expired")
      .sort((a, b) => a.name.localeCompare(b.name) || a.agentId.localeCompare(b.agentId));
  }

  function caller(ctx: HandlerContext): string {
    return ctx.values.get(callerKey)?.name ?? "unknown";
  }

  const impl: ServiceImpl<typeof ColonyService> = {
    ...insightsHandlers(deps),
    ...telemetryQueryHandlers(deps),
    async getStatus() {
      // Independent reads: side by side.
      const [list, insightCount, ingest] = await Promise.all([services(), activeInsightCount(deps), ingestHealth(deps)]);
      return {
        colonyId: deps.colonyId,
        appName: deps.appName,
        environment: deps.environment,
        version: deps.version,
        uptimeSeconds: BigInt(Math.floor((Date.now() - deps.startedAt.getTime()) / 1000)),
        services: list,
        natsStatus: deps.natsStatus(),
        discoveryStatus: deps.discoveryStatus(),
        meshMode: deps.meshMode,
        startedAt: timestampFromDate(deps.startedAt),
        insightCount,
        ingest,
      };
    },

    async listServices() {
      return { services: await services() };
    },

    async getTopology() {
      const edges = await deps.store.connectionEdges();
      return {
        services: await services(),
        edges: edges.map((e) => ({
          fromService: e.fromService,
          toService: e.toService,
          protocol: e.protocol,
          external: e.external,
          connectionCount: BigInt(e.connectionCount),
          openedTotal: BigInt(e.openedTotal),
          openedLastMinute: BigInt(e.openedLastMinute),
          firstObserved: timestampFromDate(e.firstObserved),
          lastObserved: timestampFromDate(e.lastObserved),
        })),
      };
    },

    async queryEvents(req) {
      if (req.limit > maxEventLimit) throw invalid(`limit: must be at most ${maxEventLimit} (got ${req.limit})`);
      const since = optionalDate(req.since, "since");
      const until = optionalDate(req.until, "until");
      if (since && until && since > until) throw invalid("since: must be before until");
      const events = await deps.store.queryEvents({
        service: req.service || undefined,
        eventType: req.eventType || undefined,
        since,
        until,
        limit: req.limit || 100,
      });
      return {
        events: events.map((e) => ({
          eventId: e.eventId,
          timestamp: timestampFromDate(e.timestamp),
          service: e.service,
          eventType: e.eventType,
          detailsJson: e.detailsJson,
        })),
      };
    },

    async queryMetrics(req) {
      if (req.raw) {
        // Raw points come from each agent of one service; summaries may span every service.
        if (!req.service) throw invalid("service: is required with raw, e.g. api");
        if (req.limit > 100_000) throw invalid("limit: must be at most 100000");
        const agents = (await deps.store.listAgents()).filter(
          (a) => a.serviceName === req.service && deps.agents.get(a.agentId)?.state !== "expired",
        );
        if (agents.length === 0) throw new ConnectError(`no agent observes ${req.service}`, Code.NotFound);
        const raw = await rawMetricsFromAgents(agents, deps.identity, {
          metricName: req.metricName,
          since: req.since,
          until: req.until,
          limit: req.limit || 1000,
        });
        return { series: [], rawPoints: raw.points, unavailable: raw.unavailable, truncated: raw.truncated };
      }
      const until = optionalDate(req.until, "until") ?? new Date();
      const since = optionalDate(req.since, "since") ?? new Date(until.getTime() - 3600_000);
      if (since > until) throw invalid("since: must be before until");
      if (req.interval && !intervals.includes(req.interval as Interval))
        throw invalid(`interval: must be one of ${intervals.join(", ")} (got "${req.interval}")`);
      const interval = (req.interval as Interval) || deps.store.pickInterval(since, until);
      const series = await deps.store.queryMetrics({ service: req.service || undefined, metricName: req.metricName || undefined, since, until, interval });
      return {
        series: series.map((s) => ({
          service: s.service,
          metricName: s.metricName,
          interval: s.interval,
          points: s.points.map((p) => ({
            timestamp: timestampFromDate(p.timestamp),
            p50: p.p50,
            p95: p.p95,
            p99: p.p99,
            mean: p.mean,
            max: p.max,
            min: p.min,
            count: BigInt(p.count),
          })),
        })),
      };
    },

    async getHistory(req) {
      if (!req.service) throw invalid("service: is required");
      if (req.limit > 1000) throw invalid("limit: must be at most 1000");
      const at = optionalDate(req.at, "at") ?? new Date();
      const rows = (await deps.store.listAgents()).filter((a) => a.serviceName === req.service || a.agentId === req.service);
      if (rows.length === 0) throw new ConnectError(`no agent has ever observed ${req.service}`, Code.NotFound);
      // The agent that was registered most recently at `at`.
      const candidates = rows.filter((a) => a.registeredAt <= at);
      const agent = (candidates.length ? candidates : rows).sort((a, b) => b.registeredAt.getTime() - a.registeredAt.getTime())[0]!;
      const transitions = await deps.store.transitionsFor(agent.agentId, { until: at, limit: req.limit || 50 });
      const stateAt = (await deps.store.stateAt(agent.agentId, at)) ?? "unknown";
      return {
        service: agent.serviceName,
        agentId: agent.agentId,
        stateAt,
        at: timestampFromDate(at),
        transitions: transitions.map((t) => ({
          actorId: t.actorId,
          at: timestampFromDate(t.at),
          fromState: t.fromState,
          toState: t.toState,
          event: t.event,
          reason: t.reason,
        })),
      };
    },

    async createToken(req, ctx) {
      if (!tokenNamePattern.test(req.name))
        throw invalid(`name: "${req.name.slice(0, 40)}" must be 1-63 lowercase letters, digits, ".", "_" or "-"`);
      if (req.scope !== TokenScope.READ && req.scope !== TokenScope.ADMIN && req.scope !== TokenScope.EXEC) throw invalid("scope: must be read, admin or exec");
      const existing = (await deps.store.listTokens()).find((t) => t.name === req.name && !t.revokedAt);
      if (existing) throw new ConnectError(`a token named "${req.name}" exists; revoke it first or pick another name`, Code.AlreadyExists);
      const createdAt = new Date();
      const expiresAt = tokenExpiry(req.ttlSeconds, req.neverExpires, createdAt);
      const token = `coral_${randomBytes(32).toString("base64url")}`;
      const scope = req.scope === TokenScope.ADMIN ? "admin" : req.scope === TokenScope.EXEC ? "exec" : "read";
      await deps.store.createToken({ name: req.name, scope, tokenHash: hashToken(token), createdAt, lastUsedAt: null, revokedAt: null, expiresAt });
      await deps.store.appendAudit({
        at: new Date(),
        actor: caller(ctx),
        action: "token.create",
        target: req.name,
        details: { scope, expires_at: expiresAt?.toISOString() ?? "never" },
      });
      return { name: req.name, scope: req.scope, token, expiresAt: expiresAt ? timestampFromDate(expiresAt) : undefined };
    },

    async revokeToken(req, ctx) {
      if (!req.name) throw invalid("name: is required");
      const revoked = await deps.store.revokeToken(req.name);
      if (!revoked) throw new ConnectError(`no active token named "${req.name}"`, Code.NotFound);
      await deps.store.appendAudit({ at: new Date(), actor: caller(ctx), action: "token.revoke", target: req.name, details: {} });
      return { revoked };
    },

    async listTokens() {
      const tokens = await deps.store.listTokens();
      const now = Date.now();
      return {
        tokens: tokens.map((t) => ({
          name: t.name,
          scope: t.scope === "admin" ? TokenScope.ADMIN : t.scope === "exec" ? TokenScope.EXEC : TokenScope.READ,
          createdAt: timestampFromDate(t.createdAt),
          lastUsedAt: t.lastUsedAt ? timestampFromDate(t.lastUsedAt) : undefined,
          revoked: t.revokedAt !== null,
          expiresAt: t.expiresAt ? timestampFromDate(t.expiresAt) : undefined,
          expired: t.expiresAt ? t.expiresAt.getTime() <= now : false,
          neverExpires: !t.expiresAt,
        })),
      };
    },
  };
  return impl;
}
