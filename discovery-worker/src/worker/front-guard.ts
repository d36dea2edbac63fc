// Refuses requests that did not come through the self-hosted front (when the
// worker runs behind one: FRONT_SECRET is set; on Cloudflare it is not).
import { Code, ConnectError } from "@connectrpc/connect";
import { frontSecretHeader } from "./front-secret.ts";
import { errorResponse } from "./http.ts";

const encoder = new TextEncoder();

export function refuseUnlessFromFront(request: Request, env: DiscoveryEnv): Response | undefined {
  const expected = env.FRONT_SECRET;
  if (!expected) return undefined;
  const given = encoder.encode(request.headers.get(frontSecretHeader) ?? "");
  const want = encoder.encode(expected);
  if (given.byteLength === want.byteLength && crypto.subtle.timingSafeEqual(given, want)) return undefined;
  return errorResponse(
    new ConnectError("this discovery shard answers coral-discovery's front only; send requests to the port coral-discovery listens on", Code.PermissionDenied),
  );
}
