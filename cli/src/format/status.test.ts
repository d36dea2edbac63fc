import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { GetStatusResponseSchema, IngestHealthSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { describe, expect, it } from "vitest";
import { formatStatus } from "./status.ts";

const status = (ingest?: Parameters<typeof create<typeof IngestHealthSchema>>[1]) =>
  create(GetStatusResponseSchema, { colonyId: "shop-dev-1", appName: "shop", environment: "dev", ...(ingest ? { ingest: create(IngestHealthSchema, ingest) } : {}) });

describe("coral status: ingest health", () => {
  it("warns when telemetry was set aside in the last hour, saying the last reason and where to look", () => {
    const text = formatStatus(
      status({ batchesStored: 1200n, batchesSetAside: 5n, setAsideRecent: 2n, lastReason: "event #0 has no event_type", lastAgentId: "api-1", lastSetAsideAt: timestampFromDate(new Date("2026-06-01T12:34:56Z")) }),
      { color: false },
    );
    expect(text.split("\n").slice(-2)).toEqual([
      "Ingest: 2 telemetry batches set aside in the last hour (5 in all, 1200 stored). Last from api-1 at 12:34:56: event #0 has no event_type",
      "  (see: coral events --type ingest.dead_letter)",
    ]);
  });

  it("says nothing when nothing was set aside recently, or the colony does not report it", () => {
    expect(formatStatus(status({ batchesStored: 10n, batchesSetAside: 3n, setAsideRecent: 0n }), { color: false })).not.toContain("Ingest:");
    expect(formatStatus(status(), { color: false })).not.toContain("Ingest:");
  });

  it("counts one batch in the singular", () => {
    expect(formatStatus(status({ batchesSetAside: 1n, setAsideRecent: 1n, lastReason: "x" }), { color: false })).toContain("Ingest: 1 telemetry batch set aside");
  });
});
