// The page: sign-in, the header (views, live state, session) and the views.
import type { ComponentType } from "preact";
import { useEffect, useState } from "preact/hooks";
import { currentSession, signIn, signOut, type SessionInfo } from "./api.ts";
import { startLive, stopLive, useLive } from "./live.ts";
import { Link, navigate, useLocation } from "./router.tsx";
import { prefetchTopology } from "./topology-data.ts";
import { Overview } from "./views/overview.tsx";
import { Events } from "./views/events.tsx";
import { Insights } from "./views/insights.tsx";

type Phase = { kind: "loading" } | { kind: "signed-out"; message?: string } | { kind: "signed-in"; session: SessionInfo };

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: "loading" });
  useEffect(() => {
    (async () => {
      if (location.pathname === "/login") {
        // The code travels in the fragment (never sent to a server or logged); it is used once, then wiped from the address bar.
        const code = new URLSearchParams(location.hash.slice(1) || location.search).get("code");
        history.replaceState(null, "", "/login");
        if (!code) return setPhase({ kind: "signed-out", message: "This sign-in link has no code." });
        try {
          const session = await signIn(code);
          navigate("/", true);
          return setPhase({ kind: "signed-in", session });
        } catch (err) {
          return setPhase({ kind: "signed-out", message: err instanceof Error ? err.message : String(err) });
        }
      }
      const session = await currentSession();
      setPhase(session ? { kind: "signed-in", session } : { kind: "signed-out" });
    })().catch((err: unknown) => setPhase({ kind: "signed-out", message: String(err) }));
  }, []);
  useEffect(() => {
    if (phase.kind !== "signed-in") return;
    startLive();
    // The topology's chunk (25 KB gzipped) right away: people open it first. Once the page is idle, the charts' (uPlot).
    setTimeout(() => void lazyViews.topology!().catch(() => undefined), 0);
    const idle = window.requestIdleCallback ?? ((f: () => void) => setTimeout(f, 500));
    idle(() => void lazyViews.component!().catch(() => undefined));
    return stopLive;
  }, [phase.kind]);

  if (phase.kind === "loading") return <div class="center muted">Loading…</div>;
  if (phase.kind === "signed-out") return <SignedOut message={phase.message} />;
  return (
    <Shell session={phase.session} onSignOut={() => signOut().then(() => setPhase({ kind: "signed-out", message: "Signed out." }))} />
  );
}

function SignedOut({ message }: { message?: string }) {
  return (
    <div class="center signed-out" data-testid="signed-out">
      <h1>Coral</h1>
      {message && <p class="error" data-testid="sign-in-error">{message}</p>}
      <p>Not signed in. On a machine with the coral CLI, run</p>
      <pre>coral dashboard</pre>
      <p class="muted">It prints a sign-in link with a one-time code (and opens it when there is a desktop). For a remote colony add --colony-url and --token.</p>
    </div>
  );
}

/** What a view gets: the name in its path (a component, a debug session), whether the session may change things, and run commands (exec). */
export interface ViewProps {
  name: string;
  admin: boolean;
  exec?: boolean;
}

const lazyViews: Record<string, () => Promise<ComponentType<ViewProps>>> = {
  topology: () => import("./views/topology.tsx").then((m) => m.Topology as ComponentType<ViewProps>),
  component: () => import("./views/component.tsx").then((m) => m.ComponentView as ComponentType<ViewProps>),
  debug: () => import("./views/debug.tsx").then((m) => m.Debug),
  control: () => import("./views/control.tsx").then((m) => m.Control),
  profile: () => import("./views/profile.tsx").then((m) => m.ProfileView),
  traces: () => import("./views/traces.tsx").then((m) => m.Traces as ComponentType<ViewProps>),
  logs: () => import("./views/logs.tsx").then((m) => m.Logs as ComponentType<ViewProps>),
  query: () => import("./views/query.tsx").then((m) => m.QueryView as ComponentType<ViewProps>),
  terminal: () => import("./views/terminal.tsx").then((m) => m.TerminalView as ComponentType<ViewProps>),
};

/** A view in its own chunk (the topology's layouts, uPlot), loaded when first opened. */
function Lazy({ view, name, admin, exec }: { view: keyof typeof lazyViews } & ViewProps) {
  const [Loaded, setLoaded] = useState<ComponentType<ViewProps> | undefined>(undefined);
  useEffect(() => {
    let live = true;
    if (view === "topology") prefetchTopology();
    lazyViews[view]!().then((c) => {
      performance.mark(`coral:${view}-loaded`);
      if (live) setLoaded(() => c);
    });
    return () => void (live = false);
  }, [view]);
  return Loaded ? <Loaded name={name} admin={admin} exec={exec} /> : <div class="muted">Loading…</div>;
}

function Shell({ session, onSignOut }: { session: SessionInfo; onSignOut: () => void }) {
  const { path } = useLocation();
  const live = useLive();
  const status = live.status;
  const nav = [
    ["/", "Overview"],
    ["/topology", "Topology"],
    ["/events", "Events"],
    ["/traces", "Traces"],
    ["/logs", "Logs"],
    ["/insights", "Insights"],
    ["/debug", "Debug"],
    ["/control", "Flags & rollbacks"],
    ["/query", "Query"],
  ] as const;
  const admin = session.scope === "admin";
  const component = /^\/components\/([^/]+)$/.exec(path);
  const profile = /^\/components\/([^/]+)\/profile$/.exec(path);
  const terminal = /^\/components\/([^/]+)\/terminal$/.exec(path);
  const debugSession = /^\/debug(?:\/([^/]+))?$/.exec(path);
  const trace = /^\/traces(?:\/([^/]+))?$/.exec(path);
  let view;
  if (path === "/") view = <Overview admin={admin} />;
  else if (path === "/topology") view = <Lazy view="topology" name="" admin={admin} />;
  else if (component) view = <Lazy view="component" name={decodeURIComponent(component[1]!)} admin={admin} />;
  else if (profile) view = <Lazy view="profile" name={decodeURIComponent(profile[1]!)} admin={admin} />;
  else if (terminal) view = <Lazy view="terminal" name={decodeURIComponent(terminal[1]!)} admin={admin} exec={session.scope === "exec"} />;
  else if (debugSession) view = <Lazy view="debug" name={decodeURIComponent(debugSession[1] ?? "")} admin={admin} />;
  else if (trace) view = <Lazy view="traces" name={decodeURIComponent(trace[1] ?? "")} admin={admin} />;
  else if (path === "/logs") view = <Lazy view="logs" name="" admin={admin} />;
  else if (path === "/control") view = <Lazy view="control" name="" admin={admin} />;
  else if (path === "/query") view = <Lazy view="query" name="" admin={admin} />;
  else if (path === "/events") view = <Events />;
  else if (path === "/insights") view = <Insights admin={session.scope === "admin"} />;
  else view = <p>No such view. <Link href="/">Overview</Link></p>;
  const stateText = { connecting: "connecting…", live: "live", lost: "connection lost, reconnecting…" }[live.state];
  return (
    <div class="shell">
      <header>
        <Link href="/" class="brand">
          Coral
        </Link>
        {status && (
          <span class="colony" title={`colony ${status.colonyId}, version ${status.version}`}>
            {status.appName} · {status.environment}
          </span>
        )}
        <nav>
          {nav.map(([href, label]) => (
            <Link href={href} class={path === href || (href !== "/" && path.startsWith(`${href}/`)) ? "active" : ""}>
              {label}
            </Link>
          ))}
        </nav>
        <span class={`live live-${live.state}`} data-testid="live-state" data-state={live.state}>
          ● {stateText}
        </span>
        <span class="session" data-testid="session" title={`session ends ${session.expiresAt}`}>
          {session.name} · {session.scope}
        </span>
        <button class="link" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main>{view}</main>
    </div>
  );
}
