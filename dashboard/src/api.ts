// The colony's API from the page: the same Connect services and protobuf
// types as the CLI. The browser's session cookie authenticates each call;
// the x-coral-csrf header proves the call comes from this page (a page of
// another site cannot add it without CORS, which the colony never grants).
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";

const csrf: Interceptor = (next) => (req) => {
  req.header.set("x-coral-csrf", "1");
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  interceptors: [csrf],
  fetch: (input, init) => fetch(input, { ...init, credentials: "same-origin" }),
});

export const colony = createClient(ColonyService, transport);
/** Live debugging sessions (the Debug view); attach and detach need an admin session. */
export const debug = createClient(DebugService, transport);
/** Flags and rollbacks (the Flags & rollbacks view); changes need an admin session. */
export const control = createClient(ControlService, transport);
/** Stored CPU profiles (the profile view): QueryCpuProfile is read data; the on-demand ProfileCpu/ProfileHeap need admin and are not used here. */
export const profiles = createClient(ProfileService, transport);
/** Sampled requests kept by the agents (the component view's Traffic panel): read data; ConfigureTraffic needs admin and is not used here. */
export const traffic = createClient(TrafficService, transport);
/** Read-only SQL (the Query view): the colony checks and audits every statement; a read session is enough. */
export const query = createClient(QueryService, transport);
/** Terminals beside components (the Terminal view): an exec session only; the colony records them. */
export const shell = createClient(ShellService, transport);

export interface SessionInfo {
  name: string;
  scope: "read" | "admin" | "exec";
  expiresAt: string;
}

/** Who the cookie signs in as; null when not signed in. */
export async function currentSession(): Promise<SessionInfo | null> {
  const res = await fetch("/dashboard/api/session", { credentials: "same-origin" });
  if (!res.ok) throw new Error(`session: HTTP ${res.status}`);
  const body = (await res.json()) as SessionInfo & { signedIn: boolean };
  return body.signedIn ? body : null;
}

/** Exchanges a one-time code for the session cookie. */
export async function signIn(code: string): Promise<SessionInfo> {
  const res = await fetch("/dashboard/api/sign-in", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code }),
  });
  const body = (await res.json()) as SessionInfo & { message?: string };
  if (!res.ok) throw new Error(body.message ?? `sign-in failed (HTTP ${res.status})`);
  return body;
}

export async function signOut(): Promise<void> {
  await fetch("/dashboard/api/sign-out", { method: "POST", credentials: "same-origin", headers: { "x-coral-csrf": "1" } });
}
