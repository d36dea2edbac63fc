// The internal endpoint the self-hosted front sends registrations to in
// batches (registration-batch-wire.ts, ../self-hosted/registration-batcher.ts).
// Each registration goes through the same route as when it comes alone (the
// router, with its caller's headers and body), so a batched one is answered
// exactly as a single one; only the call to its mesh's object is shared with
// the others that go to the same object (registry-batch.ts). One that fails
// is answered with its own error and touches none of the others.
import { Code, ConnectError } from "@connectrpc/connect";
import { bodiesInMemory, errorResponse, readBoundedBody, toConnectError } from "./http.ts";
import {
  decodeBatch,
  encodeBatch,
  isRequestHead,
  maxBatchBytes,
  registrationBatchPath,
  type BatchAnswerHead,
  type BatchPart,
} from "./registration-batch-wire.ts";
import { RegistryBatch, type Registrar } from "./registry-batch.ts";

/** Answers one registration of the batch as the worker answers it alone. */
export type Route = (request: Request, register: Registrar) => Promise<Response>;

const registrationPath = /^(?:\/v1\/mesh\/[^/]+\/register|\/coral\.discovery\.v1\.DiscoveryService\/Register(?:Colony|Agent))$/;

export async function serveRegistrationBatch(request: Request, env: DiscoveryEnv, route: Route): Promise<Response> {
  // Only a front sends batches, and only behind one does a caller's address come from the batch.
  if (!env.FRONT_SECRET)
    throw new ConnectError(
      `${registrationBatchPath} is coral-discovery's internal endpoint for its front's registration batches, and this worker runs without a front ` +
        "(FRONT_SECRET is unset); register with RegisterColony or RegisterAgent, or POST /v1/mesh/:mesh_id/register",
      Code.PermissionDenied,
    );
  if (request.method !== "POST") throw new ConnectError(`${request.method} is not allowed here: a registration batch is POSTed`, Code.InvalidArgument);
  const bytes = await readBoundedBody(request, maxBatchBytes);
  let parts: Array<BatchPart<unknown>>;
  try {
    parts = decodeBatch(bytes);
  } catch (err) {
    throw new ConnectError(`registration batch: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
  const batch = new RegistryBatch(parts.length);
  const origin = new URL(request.url).origin;
  const answers = await Promise.all(
    parts.map(async (part): Promise<BatchPart<BatchAnswerHead>> => {
      const item = batch.item();
      try {
        const response = await answerPart(part, origin, item.register, route);
        return { head: { status: response.status, headers: [...response.headers] }, body: new Uint8Array(await response.arrayBuffer()) };
      } finally {
        item.done();
      }
    }),
  );
  return new Response(encodeBatch(answers), { headers: { "content-type": "application/octet-stream" } });
}

async function answerPart(part: BatchPart<unknown>, origin: string, register: Registrar, route: Route): Promise<Response> {
  try {
    const head = part.head;
    if (!isRequestHead(head) || !registrationPath.test(head.path.split("?")[0]!))
      throw new ConnectError("registration batch: a part is not a registration (POST /v1/mesh/:mesh_id/register, RegisterColony or RegisterAgent)", Code.InvalidArgument);
    const request = new Request(origin + head.path, { method: "POST", headers: head.headers });
    bodiesInMemory.set(request, part.body);
    return await route(request, register);
  } catch (err) {
    return errorResponse(toConnectError(err));
  }
}
