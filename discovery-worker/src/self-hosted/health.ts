// Health over several shards: each shard counts only its own meshes, so the
// front asks every shard and answers with the sums, in the caller's encoding.
import { create, fromBinary, fromJson, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { discoveryPb as pb } from "@coral/proto";

export type HealthEncoding = "rest" | "json" | "proto";

export function parseHealth(encoding: HealthEncoding, body: Uint8Array): pb.HealthResponse {
  if (encoding === "proto") return fromBinary(pb.HealthResponseSchema, body);
  const json = JSON.parse(new TextDecoder().decode(body)) as JsonValue;
  return fromJson(pb.HealthResponseSchema, json, { ignoreUnknownFields: true });
}

export function sumHealth(answers: pb.HealthResponse[]): pb.HealthResponse {
  const first = answers[0] ?? create(pb.HealthResponseSchema, { status: "ok" });
  return create(pb.HealthResponseSchema, {
    status: answers.find((a) => a.status !== "ok")?.status ?? first.status,
    version: first.version,
    uptimeSeconds: answers.reduce((max, a) => (a.uptimeSeconds > max ? a.uptimeSeconds : max), 0n),
    registeredColonies: answers.reduce((n, a) => n + a.registeredColonies, 0),
    registeredAgents: answers.reduce((n, a) => n + a.registeredAgents, 0),
  });
}

/** Encodes as the worker does: REST with snake_case and zeros; Connect JSON as connect-es. */
export function encodeHealth(encoding: HealthEncoding, health: pb.HealthResponse): Uint8Array {
  if (encoding === "proto") return toBinary(pb.HealthResponseSchema, health);
  const json =
    encoding === "rest"
      ? toJson(pb.HealthResponseSchema, health, { useProtoFieldName: true, alwaysEmitImplicit: true })
      : toJson(pb.HealthResponseSchema, health);
  return new TextEncoder().encode(JSON.stringify(json));
}
