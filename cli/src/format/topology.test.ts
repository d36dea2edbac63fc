// Connections opened per minute beside the peak held open (short-lived connections, issue 18).
import { create } from "@bufbuild/protobuf";
import { GetTopologyResponseSchema, ServiceInfoSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { describe, expect, it } from "vitest";
import { formatTopology, topologyToDot } from "./index.ts";

const services = [
  create(ServiceInfoSchema, { name: "web", address: "127.0.0.1", port: 3000, status: "online" }),
  create(ServiceInfoSchema, { name: "api", address: "127.0.0.1", port: 8080, status: "online" }),
  create(ServiceInfoSchema, { name: "db", address: "127.0.0.1", port: 5432, status: "online" }),
];

describe("topology with opened counts", () => {
  const res = create(GetTopologyResponseSchema, {
    services,
    edges: [
      // only short connections: none open at peak
      { fromService: "web", toService: "api", connectionCount: 0n, openedTotal: 240n, openedLastMinute: 120n },
      { fromService: "web", toService: "db", connectionCount: 3n, openedTotal: 5n, openedLastMinute: 0n },
      // an older agent: no opened counts
      { fromService: "api", toService: "db", connectionCount: 4n },
    ],
  });

  it("shows connections opened in the last minute when the agent counts them", () => {
    expect(formatTopology(res, { color: false }).split("\n").slice(3, 9)).toEqual([
      "api (127.0.0.1:8080)",
      "  → db (127.0.0.1:5432)   [4 connections]",
      "",
      "web (127.0.0.1:3000)",
      "  → api (127.0.0.1:8080)  [120/min]",
      "  → db (127.0.0.1:5432)   [3 connections, 0/min]",
    ]);
  });

  it("labels dot edges with the rate too", () => {
    const dot = topologyToDot(res);
    expect(dot).toContain('  "web" -> "api" [label="0 (120/min)"];');
    expect(dot).toContain('  "api" -> "db" [label="4"];');
  });
});
