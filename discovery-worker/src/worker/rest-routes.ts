// The seed's small REST API, on the same operations as the Connect service.
// Bodies and answers use the protobuf JSON mapping with snake_case names.
import { create, fromJson, toJson, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { discoveryPb as pb } from "@coral/proto";
import { expiryHeaders } from "./answer-expiry.ts";
import { clientIp, readBoundedBody } from "./http.ts";
import type { Registrar } from "./registry-batch.ts";
import { discoveryOps, type CallContext } from "./service.ts";

const jsonOut = { useProtoFieldName: true } as const;

function call(request: Request, env: DiscoveryEnv, register?: Registrar): CallContext {
  return { env, clientIp: clientIp(request), register };
}

async function readJsonObject(request: Request): Promise<JsonObject> {
  const text = new TextDecoder().decode(await readBoundedBody(request));
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ConnectError("body: is not valid JSON", Code.InvalidArgument);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw new ConnectError("body: must be a JSON object", Code.InvalidArgument);
  return body as JsonObject;
}

function parseMessage<D extends DescMessage>(schema: D, json: JsonObject): MessageShape<D> {
  try {
    return fromJson(schema, json);
  } catch (err) {
    throw new ConnectError(`body: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}

/** `register`: how the registration reaches its mesh's object (a batch's, see registration-batch.ts); default alone. */
export async function restRegister(request: Request, env: DiscoveryEnv, meshId: string, register?: Registrar): Promise<Response> {
  const { type = "colony", ...rest } = await readJsonObject(request);
  const bodyMesh = rest.mesh_id ?? rest.meshId;
  if (bodyMesh !== undefined && bodyMesh !== meshId)
    throw new ConnectError(`mesh_id: body says "${String(bodyMesh)}" but the path says "${meshId}"`, Code.InvalidArgument);
  const json: JsonObject = { ...rest, mesh_id: meshId };
  delete json.meshId;
  let answer: pb.RegisterColonyResponse | pb.RegisterAgentResponse;
  const headers = new Headers();
  if (type === "colony") answer = await discoveryOps.registerColony(call(request, env, register), parseMessage(pb.RegisterColonyRequestSchema, json), headers);
  else if (type === "agent") answer = await discoveryOps.registerAgent(call(request, env, register), parseMessage(pb.RegisterAgentRequestSchema, json), headers);
  else throw new ConnectError(`type: must be "colony" or "agent" (got ${JSON.stringify(type)})`, Code.InvalidArgument);
  return Response.json({
    ok: answer.success,
    ttl: answer.ttl,
    ...(toJson(type === "colony" ? pb.RegisterColonyResponseSchema : pb.RegisterAgentResponseSchema, answer as never, jsonOut) as JsonObject),
  }, { headers });
}

export async function restLookupColony(request: Request, env: DiscoveryEnv, meshId: string): Promise<Response> {
  const answer = await discoveryOps.lookupColony(call(request, env), create(pb.LookupColonyRequestSchema, { meshId }));
  return Response.json(toJson(pb.LookupColonyResponseSchema, answer, jsonOut), { headers: expiryHeaders(answer.expiresAt) });
}

export async function restLookupAgent(request: Request, env: DiscoveryEnv, meshId: string, agentId: string): Promise<Response> {
  const answer = await discoveryOps.lookupAgent(call(request, env), create(pb.LookupAgentRequestSchema, { meshId, agentId }));
  return Response.json(toJson(pb.LookupAgentResponseSchema, answer, jsonOut), { headers: expiryHeaders(answer.expiresAt) });
}

export async function restHealth(request: Request, env: DiscoveryEnv): Promise<Response> {
  const health = await discoveryOps.health(call(request, env));
  return Response.json(toJson(pb.HealthResponseSchema, health, { ...jsonOut, alwaysEmitImplicit: true }));
}
