// ColonyService's insights methods: ListInsights and DismissInsight, and the
// active count `coral status` shows.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { InsightSchema, type ColonyService, type Insight } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { countActiveInsights, dismissInsight, listInsights, type InsightFilter, type InsightRecord } from "./index.ts";
import { callerKey } from "../auth/index.ts";
import type { ApiDeps } from "../api/deps.ts";

const statuses: readonly string[] = ["active", "dismissed", "expired", "all"];
const maxLimit = 1000;

export function insightToProto(r: InsightRecord): Insight {
  return create(InsightSchema, {
    id: BigInt(r.id),
    type: r.type,
    priority: r.priority,
    title: r.title,
    summary: r.summary,
    evidenceJson: JSON.stringify(r.evidence),
    affectedServices: r.affectedServices,
    confidence: r.confidence,
    status: r.status,
    createdAt: timestampFromDate(r.createdAt),
    lastSeen: timestampFromDate(r.lastSeen),
    expiresAt: timestampFromDate(r.expiresAt),
    detector: r.detector,
    service: r.service,
    recommendations: r.recommendations,
    occurrences: r.occurrences,
    evidenceLines: r.evidenceLines,
  });
}

/** For GetStatusResponse.insight_count. */
export function activeInsightCount(deps: Pick<ApiDeps, "store">): Promise<number> {
  return countActiveInsights(deps.store);
}

type InsightHandlers = Pick<ServiceImpl<typeof ColonyService>, "listInsights" | "dismissInsight">;

/** Spread into the ColonyService implementation. */
export function insightsHandlers(deps: Pick<ApiDeps, "store">): InsightHandlers {
  return {
    async listInsights(req) {
      const status = req.status || "active";
      if (!statuses.includes(status)) throw new ConnectError(`status: must be one of ${statuses.join(", ")} (got "${req.status.slice(0, 40)}")`, Code.InvalidArgument);
      if (req.limit > maxLimit) throw new ConnectError(`limit: must be at most ${maxLimit} (got ${req.limit})`, Code.InvalidArgument);
      const rows = await listInsights(deps.store, { status: status as InsightFilter, limit: req.limit || 50, service: req.service || undefined });
      return { insights: rows.map(insightToProto) };
    },

    async dismissInsight(req, ctx: HandlerContext) {
      if (req.id === 0n) throw new ConnectError("id: is required (see coral insights)", Code.InvalidArgument);
      if (req.id > BigInt(Number.MAX_SAFE_INTEGER)) throw new ConnectError(`no insight with id ${req.id}`, Code.NotFound);
      const by = ctx.values.get(callerKey)?.name ?? "unknown";
      const now = new Date();
      const row = await dismissInsight(deps.store, Number(req.id), { by, now });
      if (!row) throw new ConnectError(`no insight with id ${req.id}; list them with: coral insights --all`, Code.NotFound);
      await deps.store.appendAudit({ at: now, actor: by, action: "insight.dismiss", target: String(req.id), details: { title: row.title } });
      return { insight: insightToProto(row) };
    },
  };
}
