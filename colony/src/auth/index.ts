// Who may call the colony's API.
//
// - ColonyService: a bearer token from `coral token create` (read or admin
//   scope), or the colony's local token (.coral/local.token, admin) when the
//   caller is on this machine (loopback). Token management needs admin.
// - MeshService.Register: no token; the agent proves it holds the colony
//   secret. Heartbeat and Deregister: the agent token Register handed out,
//   checked by the handler against the agent's actor.
//
// CLI tokens expire (90 days unless made with `--ttl never`); the local token
// does not. The API server checks callers from the request head, before a
// byte of the body is read (../api/intake.ts), and hands the caller on in
// callerKey; the interceptor then checks the scope again.
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { MeshAdminService } from "@coral/proto/gen/coral/mesh/v1/peers_pb";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { IdentityService } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { ExecService } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";
import { bearerToken, relayedForHeader } from "@coral/proto";

/** exec: read, plus coral exec (commands beside services); admin does not include exec, exec no admin. */
export type Scope = "read" | "admin" | "exec";

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
  /** expiresAt null or absent: the token never expires. */
  findTokenByHash(hash: string): Promise<{ name: string; scope: Scope; revokedAt: Date | null; expiresAt?: Date | null } | null>;
  touchToken(name: string, at: Date): Promise<void>;
}

// Methods that change the colony (or reveal who may) need an admin token.
const adminMethods = new Set([
  "CreateToken",
  "RevokeToken",
  "ListTokens",
  "DismissInsight",
  "RevokePeer",
  "SetFlag",
  "StartRollback",
  "AttachUprobe",
  "DetachUprobe",
  // ProfileService: a profile samples the app's processes.
  "ProfileCpu",
  "ProfileHeap",
  // TrafficService: the share of requests the app keeps.
  "ConfigureTraffic",
  // IdentityService: every method (who may join is an admin's business).
  "CreateInvitation",
  "ListInvitations",
  "RevokeInvitation",
  "ListAgentIdentities",
  "RevokeAgent",
]);
// Methods that run commands on the agents' hosts need the exec scope; admin is not enough.
const execMethods = new Set(["Exec", "OpenShell", "SendShellInput", "ResizeShell"]);
// Who ran what, and what a shell showed: admin or exec.
const execAuditMethods = new Set(["ListExecs", "GetShellRecording"]);
// Services behind colony tokens (MeshService authenticates agents itself).
const tokenServices = new Set([ColonyService.typeName, MeshAdminService.typeName, ControlService.typeName, DebugService.typeName, ProfileService.typeName, TrafficService.typeName, IdentityService.typeName, QueryService.typeName, ExecService.typeName, ShellService.typeName]);

export const missingTokenMessage =
  "this colony needs a token for remote calls: pass --token or set CORAL_TOKEN " +
  "(create one on the colony's machine with: coral token create --name <name> --scope read)";

export interface AuthOptions {
  localToken: string;
  tokens: TokenLookup;
  /** Addresses besides loopback that are this machine (the local token works from them). */
  localAddresses?: string[];
  /** A known caller was refused a method its scope does not allow (the colony audits it). */
  onDenied?: (caller: Caller, method: string, message: string) => void;
}

/** authorize, telling `onDenied` about a refusal before it is thrown. */
function authorizeReported(method: string, caller: Caller, onDenied: AuthOptions["onDenied"]): void {
  try {
    authorize(method, caller);
  } catch (err) {
    onDenied?.(caller, method, (err as ConnectError).rawMessage);
    throw err;
  }
}

/** Whether calls to this service need a colony token (MeshService authenticates agents itself). */
export function needsToken(service: string): boolean {
  return tokenServices.has(service);
}

/** What the caller checks need: the call's head only, so they run before its body is read. */
export interface CallHead {
  /** Fully qualified service name, e.g. coral.colony.v1.ColonyService. */
  service: string;
  /** Method name, e.g. CreateToken. */
  method: string;
  authorization: string | null;
  /** The remote socket address. */
  peer: string;
  /**
   * x-coral-relayed-for: set by Coral's own relays (the MCP HTTP server) when
   * they call for a caller on another machine; the local token is refused then.
   */
  relayedFor?: string | null;
  /** A browser's Cookie header, x-coral-csrf header, Origin and Host: for dashboard sessions (../dashboard). */
  cookie?: string | null;
  csrf?: string | null;
  origin?: string | null;
  host?: string | null;
}

/**
 * Checks a call to a token service from its head: the token's presence, its
 * lookup, revocation and expiry, the local token's loopback rule, and the
 * method's scope. Returns the caller, or throws a ConnectError to answer.
 */
export function colonyAuthenticator(options: AuthOptions): (call: CallHead) => Promise<Caller> {
  const local = new Set(options.localAddresses ?? []);
  const localHash = Buffer.from(hashToken(options.localToken), "hex");
  const touched = new Map<string, number>();
  return async (call) => {
    const token = bearerToken(call.authorization);
    if (!token) throw new ConnectError(missingTokenMessage, Code.Unauthenticated);
    const hash = hashToken(token);
    let caller: Caller;
    if (timingSafeEqual(Buffer.from(hash, "hex"), localHash)) {
      const peer = call.peer.replace(/^::ffff:/, "");
      if ((!isLoopback(peer) && !local.has(peer)) || call.relayedFor)
        throw new ConnectError("the local token only works on the colony's own machine; create a token for remote use", Code.Unauthenticated);
      caller = { name: "local", scope: "admin" };
    } else {
      const row = await options.tokens.findTokenByHash(hash);
      if (!row) throw new ConnectError("token is not valid for this colony", Code.Unauthenticated);
      if (row.revokedAt) throw new ConnectError(`token "${row.name}" was revoked; ask for a new one`, Code.Unauthenticated);
      const now = Date.now();
      if (row.expiresAt && row.expiresAt.getTime() <= now)
        throw new ConnectError(
          `token "${row.name}" expired at ${row.expiresAt.toISOString()}; create a new one (coral token create --name <name> --ttl 90d)`,
          Code.Unauthenticated,
        );
      caller = { name: row.name, scope: row.scope };
      // last_used_at is for people: one write a minute per token is enough.
      if ((touched.get(row.name) ?? 0) < now - 60_000) {
        touched.set(row.name, now);
        await options.tokens.touchToken(row.name, new Date(now));
      }
    }
    authorizeReported(call.method, caller, options.onDenied);
    return caller;
  };
}

/** Throws PermissionDenied when the method needs admin and the caller is not. */
export function authorize(method: string, caller: Caller): void {
  if (adminMethods.has(method) && caller.scope !== "admin")
    throw new ConnectError(`${method} needs an admin token; "${caller.name}" has scope ${caller.scope}`, Code.PermissionDenied);
  if (execMethods.has(method) && caller.scope !== "exec")
    throw new ConnectError(
      `${method} needs a token with the exec scope (admin does not include it); "${caller.name}" has scope ${caller.scope}. An admin creates one with: coral token create --name <name> --scope exec`,
      Code.PermissionDenied,
    );
  if (execAuditMethods.has(method) && caller.scope !== "exec" && caller.scope !== "admin")
    throw new ConnectError(`${method} needs an admin or exec token; "${caller.name}" has scope ${caller.scope}`, Code.PermissionDenied);
}

/**
 * Authenticates calls to token services in Connect's interceptor chain. The
 * colony's API server checks callers before reading a body and hands the
 * caller over in callerKey; then only the scope is checked again here.
 */
export function colonyAuthInterceptor(options: AuthOptions): Interceptor {
  const authenticate = colonyAuthenticator(options);
  return (next) => async (req) => {
    if (!tokenServices.has(req.service.typeName)) return next(req);
    const checked = req.contextValues.get(callerKey);
    if (checked) authorizeReported(req.method.name, checked, options.onDenied);
    const caller =
      checked ??
      (await authenticate({
        service: req.service.typeName,
        method: req.method.name,
        authorization: req.header.get("authorization"),
        peer: req.contextValues.get(peerAddressKey),
        relayedFor: req.header.get(relayedForHeader),
      }));
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
}
