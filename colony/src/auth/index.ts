// Who may call the colony's API.
//
// - ColonyService: a bearer token from `coral token create` (read or admin
//   scope), or the colony's local token (.coral/local.token, admin) when the
//   caller is on this machine (loopback). Token management needs admin.
// - MeshService.Register: no token; the agent proves it holds the colony
//   secret. Heartbeat and Deregister: the agent token Register handed out,
//   checked by the handler against the agent's actor.
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { MeshAdminService } from "@coral/proto/gen/coral/mesh/v1/peers_pb";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { bearerToken } from "@coral/proto";

export type Scope = "read" | "admin";

export interface Caller {
  /** Token name, "local" for the local token, or "agent:<id>". */
  name: string;
  scope: Scope;
}

export const peerAddressKey = createContextKey<string>("", { description: "remote socket address" });
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export function isLoopback(address: string): boolean {
  const a = address.replace(/^::ffff:/, "");
  return a === "::1" || a.startsWith("127.");
}


export interface TokenLookup {
  findTokenByHash(hash: string): Promise<{ name: string; scope: Scope; revokedAt: Date | null } | null>;
  touchToken(name: string, at: Date): Promise<void>;
}

// Methods that change the colony (or reveal who may) need an admin token.
const adminMethods = new Set(["CreateToken", "RevokeToken", "ListTokens", "DismissInsight", "RevokePeer", "SetFlag", "StartRollback", "AttachUprobe", "DetachUprobe"]);
// Services behind colony tokens (MeshService authenticates agents itself).
const tokenServices = new Set([ColonyService.typeName, MeshAdminService.typeName, ControlService.typeName, DebugService.typeName]);

export const missingTokenMessage =
  "this colony needs a token for remote calls: pass --token or set CORAL_TOKEN " +
  "(create one on the colony's machine with: coral token create --name <name> --scope read)";

/** Authenticates ColonyService calls; MeshService handles its own auth. */
export function colonyAuthInterceptor(options: { localToken: string; tokens: TokenLookup; localAddresses?: string[] }): Interceptor {
  const local = new Set(options.localAddresses ?? []);
  const localHash = Buffer.from(hashToken(options.localToken), "hex");
  const touched = new Map<string, number>();
  return (next) => async (req) => {
    if (!tokenServices.has(req.service.typeName)) return next(req);
    const token = bearerToken(req.header.get("authorization"));
    if (!token) throw new ConnectError(missingTokenMessage, Code.Unauthenticated);
    const hash = hashToken(token);
    let caller: Caller | undefined;
    if (timingSafeEqual(Buffer.from(hash, "hex"), localHash)) {
      const peer = req.contextValues.get(peerAddressKey).replace(/^::ffff:/, "");
      if (!isLoopback(peer) && !local.has(peer))
        throw new ConnectError("the local token only works on the colony's own machine; create a token for remote use", Code.Unauthenticated);
      caller = { name: "local", scope: "admin" };
    } else {
      const row = await options.tokens.findTokenByHash(hash);
      if (!row) throw new ConnectError("token is not valid for this colony", Code.Unauthenticated);
      if (row.revokedAt) throw new ConnectError(`token "${row.name}" was revoked; ask for a new one`, Code.Unauthenticated);
      caller = { name: row.name, scope: row.scope };
      const now = Date.now();
      if ((touched.get(row.name) ?? 0) < now - 60_000) {
        touched.set(row.name, now);
        await options.tokens.touchToken(row.name, new Date(now));
      }
    }
    if (adminMethods.has(req.method.name) && caller.scope !== "admin")
      throw new ConnectError(`${req.method.name} needs an admin token; "${caller.name}" has scope ${caller.scope}`, Code.PermissionDenied);
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
}
