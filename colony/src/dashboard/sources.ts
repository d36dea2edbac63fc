// What the live feed reads: the same GetStatus the CLI calls, and one small
// query for whether events, insights or the topology changed.
import { create, toJson, toJsonString } from "@bufbuild/protobuf";
import { createHandlerContext } from "@connectrpc/connect";
import { ColonyService, GetStatusRequestSchema, GetStatusResponseSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { all } from "@coral/common/duckdb";
import { colonyService } from "../api/colony-service.ts";
import type { ApiDeps } from "../api/deps.ts";
import type { LiveSources } from "./live.ts";

export function liveSources(deps: ApiDeps): LiveSources {
  const colony = colonyService(deps);
  return {
    async status() {
      const ctx = createHandlerContext({
        service: ColonyService,
        method: ColonyService.method.getStatus,
        protocolName: "dashboard",
        requestMethod: "GET",
        url: "http://colony/dashboard/api/live",
      });
      const res = create(GetStatusResponseSchema, await colony.getStatus(create(GetStatusRequestSchema), ctx));
      const json = toJsonString(GetStatusResponseSchema, res);
      // Uptimes move every second: they alone are no change worth sending.
      const plain = toJson(GetStatusResponseSchema, res) as { uptimeSeconds?: unknown; services?: { uptimeSeconds?: unknown; lastSeen?: unknown }[] };
      delete plain.uptimeSeconds;
      for (const s of plain.services ?? []) {
        delete s.uptimeSeconds;
        delete s.lastSeen;
      }
      return { json, fingerprint: JSON.stringify(plain) };
    },
    async fingerprints() {
      const [row] = await deps.store.read((c) =>
        all(
          c,
          `SELECT
             (SELECT concat(count(*), '/', max(ingested_at)) FROM events) AS events,
             (SELECT concat(count(*), '/', max(id), '/', count(*) FILTER (WHERE status = 'active')) FROM insights) AS insights,
             (SELECT concat(count(*), '/', sum(connection_count), '/', max(last_observed)) FROM service_connections) AS topology,
             (SELECT concat(count(*), '/', max(updated_at)) FROM debug_sessions) AS debug,
             (SELECT concat(count(*), '/', max(updated_at)) FROM feature_flags) || '|' ||
               (SELECT concat(count(*), '/', max(coalesce(completed_at, started_at)), '/', sum(hash(rollback_id || state || coalesce(json_array_length(steps), 0)))) FROM rollback_history) AS control`,
        ),
      );
      const text = (v: unknown) => String(v ?? "");
      return { events: text(row?.events), insights: text(row?.insights), topology: text(row?.topology), debug: text(row?.debug), control: text(row?.control) };
    },
  };
}
