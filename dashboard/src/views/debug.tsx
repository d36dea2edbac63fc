// Debug: live debugging sessions (eBPF uprobes through the colony). /debug
// lists the sessions (live, filtered by ?state=) and starts one with the
// limits of `coral debug attach`; /debug/<id> watches one: its calls as they
// stream, percentiles, a latency histogram (uPlot) and the Stop button.
// Starting and stopping need an admin session (the colony checks and audits).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { DebugSession } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import type { JSX } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { ViewProps } from "../app.tsx";
import { debug } from "../api.ts";
import { useLive, useTopics } from "../live.ts";
import {
  CallLog,
  checkStartForm,
  defaultStartForm,
  formatClock,
  formatNs,
  formatTime,
  isSessionOver,
  laterSession,
  sessionFilter,
  sessionFilters,
  type LatencyHistogram,
  type StartForm,
  type StartFormErrors,
} from "../logic/index.ts";
import { Link, navigate, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";

export function Debug({ name, admin }: ViewProps) {
  return name ? <SessionView id={name} admin={admin} key={name} /> : <Sessions admin={admin} />;
}

const errorText = (err: unknown) => ConnectError.from(err).rawMessage;
/** A Node logpoint or snapshot (functionName is then file:line). */
const isLineKind = (kind: string | undefined) => kind === "logpoint" || kind === "snapshot";
const when = (t: DebugSession["createdAt"]) => (t ? formatTime(timestampDate(t)) : "–");
const count = (n: number | bigint) => Number(n).toLocaleString("en-US");

function stateTone(state: string): string {
  if (state === "failed") return "bad";
  if (state === "active") return "good";
  return isSessionOver(state) ? "idle" : "warn";
}

function Sessions({ admin }: { admin: boolean }) {
  const { query } = useLocation();
  const filter = sessionFilter(query.get("state"));
  return (
    <div class="debug">
      <div class="toolbar">
        <h2>Debug sessions</h2>
        <span class="presets" data-testid="debug-filter">
          {sessionFilters.map((f) => (
            <button class={f.id === filter.id ? "active" : ""} data-state={f.id || "all"} onClick={() => setQuery("state", f.id || null)}>
              {f.label}
            </button>
          ))}
        </span>
      </div>
      <StartSession admin={admin} />
      <SessionList state={filter.id} />
    </div>
  );
}

function SessionList({ state }: { state: string }) {
  const sessions = useAsync(() => debug.listDebugSessions({ state, limit: 200 }), [state]);
  useTopics(["debug"], sessions.reload);
  if (sessions.error) return <p class="error">{sessions.error}</p>;
  if (!sessions.data) return <p class="muted">Loading…</p>;
  if (sessions.data.sessions.length === 0)
    return (
      <p class="muted" data-testid="no-debug-sessions">
        No {state ? `${state} ` : ""}debug sessions.
      </p>
    );
  return (
    <table class="grid" data-testid="debug-sessions">
      <thead>
        <tr>
          <th>session</th>
          <th>component</th>
          <th>function</th>
          <th>state</th>
          <th class="num">calls</th>
          <th class="num">p50</th>
          <th class="num">p95</th>
          <th class="num">p99</th>
          <th>by</th>
          <th>started</th>
          <th>ended</th>
        </tr>
      </thead>
      <tbody>
        {sessions.data.sessions.map((s) => (
          <tr key={s.sessionId} data-session={s.sessionId}>
            <td>
              <Link href={`/debug/${encodeURIComponent(s.sessionId)}`}>{s.sessionId}</Link>
            </td>
            <td data-field="service">{s.serviceName}</td>
            <td data-field="function" title={s.expression || s.condition ? [s.expression, s.condition && `if ${s.condition}`].filter(Boolean).join(" ") : undefined}>
              {isLineKind(s.kind) && <span class="muted">{s.kind} </span>}
              <code>{s.functionName}</code>
            </td>
            <td data-field="state" data-state={s.state} title={s.reason}>
              <span class={`pill ${stateTone(s.state)}`}>{s.outcome || s.state}</span>
            </td>
            <td class="num" data-field="calls">
              {s.summary ? count(isLineKind(s.kind) ? s.summary.entries : s.summary.calls) : "–"}
            </td>
            <td class="num">{s.summary ? formatNs(s.summary.p50Ns) : "–"}</td>
            <td class="num">{s.summary ? formatNs(s.summary.p95Ns) : "–"}</td>
            <td class="num">{s.summary ? formatNs(s.summary.p99Ns) : "–"}</td>
            <td data-field="by">{s.requestedBy}</td>
            <td class="nowrap muted">{when(s.startedAt ?? s.createdAt)}</td>
            <td class="nowrap muted">{s.endedAt ? when(s.endedAt) : ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Function names of a component that match what is typed (ListFunctions, debounced). */
function useFunctionSuggestions(service: string, typed: string, enabled: boolean): string[] {
  const [names, setNames] = useState<string[]>([]);
  useEffect(() => {
    if (!enabled || !service) return setNames([]);
    const abort = new AbortController();
    const timer = setTimeout(() => {
      debug.listFunctions({ serviceName: service, pattern: typed.trim(), limit: 50 }, { signal: abort.signal }).then(
        (res) => setNames(res.functions.map((f) => f.name)),
        // Suggestions only: an agent that cannot list them leaves the field free text.
        () => !abort.signal.aborted && setNames([]),
      );
    }, 300);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [service, typed, enabled]);
  return names;
}

function StartSession({ admin }: { admin: boolean }) {
  const { status } = useLive();
  const [form, setForm] = useState<StartForm>(defaultStartForm);
  const [errors, setErrors] = useState<StartFormErrors>({});
  const [apiError, setApiError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const services = [...new Set(status?.services.map((s) => s.name) ?? [])].sort();
  const suggestions = useFunctionSuggestions(form.service, form.functionName, admin);
  const set = (field: keyof StartForm) => (e: Event) => {
    const input = e.target as HTMLInputElement;
    const value = input.type === "checkbox" ? input.checked : input.value;
    setForm((f) => ({ ...f, [field]: value }));
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    setApiError(undefined);
    const checked = checkStartForm(form);
    if ("errors" in checked) return setErrors(checked.errors);
    setErrors({});
    setBusy(true);
    try {
      const res = await debug.attachUprobe(checked.request);
      navigate(`/debug/${encodeURIComponent(res.session!.sessionId)}`);
    } catch (err) {
      setApiError(errorText(err));
      setBusy(false);
    }
  };
  const field = (name: keyof StartForm, label: string, input: JSX.Element, hint?: string) => (
    <label class={errors[name] ? "invalid" : ""}>
      <span>{label}</span>
      {input}
      {errors[name] ? (
        <small class="error" data-error-for={name}>
          {errors[name]}
        </small>
      ) : (
        hint && <small class="muted">{hint}</small>
      )}
    </label>
  );
  return (
    <form class="debug-start" data-testid="debug-start" onSubmit={submit} noValidate>
      <h3>Start a session</h3>
      {!admin && (
        <p class="muted" data-testid="debug-needs-admin">
          Starting a session needs an admin session (sign in with an admin token).
        </p>
      )}
      <fieldset disabled={!admin || busy} title={admin ? undefined : "needs an admin session"}>
        {field(
          "service",
          "component",
          <select name="service" data-testid="debug-service" value={form.service} onChange={set("service")}>
            <option value="">choose…</option>
            {services.map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>,
        )}
        {field(
          "functionName",
          "function",
          <input
            name="functionName"
            data-testid="debug-function"
            list="debug-functions"
            autocomplete="off"
            spellcheck={false}
            placeholder="e.g. validate_card"
            value={form.functionName}
            onInput={set("functionName")}
          />,
        )}
        <datalist id="debug-functions">
          {suggestions.map((n) => (
            <option value={n} />
          ))}
        </datalist>
        {field("duration", "duration", <input name="duration" data-testid="debug-duration" size={6} value={form.duration} onInput={set("duration")} />, "1s to 10m")}
        {field(
          "captureArgs",
          "capture args",
          <input name="captureArgs" data-testid="debug-capture-args" type="number" min={0} max={6} value={form.captureArgs} onInput={set("captureArgs")} />,
          "0 to 6 integers",
        )}
        <label class="check">
          <input name="captureReturn" data-testid="debug-capture-return" type="checkbox" checked={form.captureReturn} onChange={set("captureReturn")} />
          <span>capture return</span>
        </label>
        {field("slow", "slow above", <input name="slow" data-testid="debug-slow" size={6} value={form.slow} onInput={set("slow")} />)}
        {field("sampleRate", "every nth call", <input name="sampleRate" data-testid="debug-sample-rate" type="number" min={1} value={form.sampleRate} onInput={set("sampleRate")} />)}
        {field("maxEvents", "max events", <input name="maxEvents" data-testid="debug-max-events" type="number" min={1} value={form.maxEvents} onInput={set("maxEvents")} />)}
        <button type="submit" class="primary" data-testid="debug-start-submit" title={admin ? "trace every call of the function for the duration" : "needs an admin session"}>
          {busy ? "Starting…" : "Start"}
        </button>
      </fieldset>
      {apiError && (
        <p class="error" data-testid="debug-start-error">
          {apiError}
        </p>
      )}
    </form>
  );
}

type StreamState = "connecting" | "live" | "reconnecting" | "done" | "failed";

/**
 * A session's events, live: StreamUprobeEvents until it says done, resumed
 * with after_seq when it breaks, aborted when the view goes. Re-renders at
 * most every 200 ms however fast the calls come.
 */
function useSessionStream(id: string, onSession: (s: DebugSession) => void) {
  const log = useRef(new CallLog(100));
  const [, setVersion] = useState(0);
  const [state, setState] = useState<StreamState>("connecting");
  const [error, setError] = useState<string | undefined>(undefined);
  const sessionSink = useRef(onSession);
  sessionSink.current = onSession;
  useEffect(() => {
    log.current = new CallLog(100);
    setVersion((v) => v + 1);
    const abort = new AbortController();
    let pending: ReturnType<typeof setTimeout> | undefined;
    const render = () => {
      pending ??= setTimeout(() => {
        pending = undefined;
        setVersion((v) => v + 1);
      }, 200);
    };
    const pause = (ms: number) => new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
    });
    (async () => {
      let failures = 0;
      while (!abort.signal.aborted) {
        try {
          for await (const msg of debug.streamUprobeEvents({ sessionId: id, afterSeq: log.current.lastSeq }, { signal: abort.signal })) {
            failures = 0;
            setState("live");
            log.current.add(msg.events);
            if (msg.session) sessionSink.current(msg.session);
            render();
            if (msg.done) {
              clearTimeout(pending);
              pending = undefined;
              setVersion((v) => v + 1);
              return setState("done");
            }
          }
          // Ended without done (a proxy, a colony restart): resume after the last event seen.
        } catch (err) {
          if (abort.signal.aborted) return;
          const ce = ConnectError.from(err);
          if (ce.code === Code.NotFound || ce.code === Code.PermissionDenied || ce.code === Code.Unauthenticated || ce.code === Code.InvalidArgument) {
            setError(ce.rawMessage);
            return setState("failed");
          }
        }
        if (abort.signal.aborted) return;
        setState("reconnecting");
        await pause(Math.min(5000, 500 * 2 ** failures++));
      }
    })();
    return () => {
      abort.abort();
      clearTimeout(pending);
    };
  }, [id]);
  return { log: log.current, state, error };
}

function SessionView({ id, admin }: { id: string; admin: boolean }) {
  const [session, setSession] = useState<DebugSession | undefined>(undefined);
  const update = (s: DebugSession) => setSession((current) => laterSession(current, s));
  const fetched = useAsync(() => debug.getDebugSession({ sessionId: id }), [id]);
  useTopics(["debug"], fetched.reload);
  useEffect(() => {
    if (fetched.data?.session) update(fetched.data.session);
  }, [fetched.data]);
  const stream = useSessionStream(id, update);
  const [stopError, setStopError] = useState<string | undefined>(undefined);
  const [stopping, setStopping] = useState(false);
  const stop = async () => {
    setStopError(undefined);
    setStopping(true);
    try {
      const res = await debug.detachUprobe({ sessionId: id });
      if (res.session) update(res.session);
    } catch (err) {
      setStopError(errorText(err));
    } finally {
      setStopping(false);
    }
  };

  const back = (
    <Link href="/debug" class="back">
      ← all sessions
    </Link>
  );
  if (!session) {
    if (fetched.error)
      return (
        <div class="debug">
          {back}
          <p class="error" data-testid="debug-error">
            {fetched.error}
          </p>
        </div>
      );
    return <p class="muted">Loading…</p>;
  }
  if (isLineKind(session.kind)) return <LineSessionView session={session} stream={stream} back={back} admin={admin} stopping={stopping} stop={stop} stopError={stopError} />;
  const over = isSessionOver(session.state);
  const summary = over ? session.summary : undefined;
  const seen = stream.log.stats(session.slowThresholdMs);
  const calls = summary ? Number(summary.calls) : seen.calls;
  const figures = summary
    ? { p50: summary.p50Ns, p95: summary.p95Ns, p99: summary.p99Ns, max: summary.maxNs, avg: summary.avgNs }
    : { p50: seen.p50Ns, p95: seen.p95Ns, p99: seen.p99Ns, max: seen.maxNs, avg: seen.avgNs };
  const streamWords: Record<StreamState, string> = {
    connecting: "waiting for events…",
    live: "live",
    reconnecting: "stream lost, resuming…",
    done: "all events received",
    failed: "stream refused",
  };
  return (
    <div class="debug" data-testid="debug-session" data-session={id}>
      {back}
      <div class="toolbar">
        <h2>
          <code>{session.functionName}</code> in <Link href={`/components/${encodeURIComponent(session.serviceName)}`}>{session.serviceName}</Link>
        </h2>
        <span class={`pill ${stateTone(session.state)}`} data-testid="debug-state" data-state={session.state}>
          {session.outcome || session.state}
        </span>
        <span class="muted" data-testid="debug-stream" data-state={stream.state}>
          {streamWords[stream.state]}
        </span>
        {!over && (
          <button
            class="danger"
            data-testid="debug-stop"
            disabled={!admin || stopping}
            title={admin ? "stop the session now; the agent detaches its probes" : "needs an admin session"}
            onClick={stop}
          >
            {stopping ? "Stopping…" : "Stop"}
          </button>
        )}
      </div>
      {stopError && (
        <p class="error" data-testid="debug-stop-error">
          {stopError}
        </p>
      )}
      {stream.error && <p class="error">{stream.error}</p>}
      <dl class="debug-facts" data-testid="debug-facts">
        <dt>session</dt>
        <dd>{session.sessionId}</dd>
        <dt>agent</dt>
        <dd>{session.agentId || "–"}</dd>
        <dt>pid</dt>
        <dd>
          {session.pid || "–"}
          {session.isGo ? " (Go)" : ""}
        </dd>
        <dt>processes probed</dt>
        <dd>{session.summary?.processCount ? count(session.summary.processCount) : "–"}</dd>
        <dt>state</dt>
        <dd>
          {session.state}
          {session.outcome && session.outcome !== session.state ? ` · ${session.outcome}` : ""}
        </dd>
        <dt>requested by</dt>
        <dd>{session.requestedBy}</dd>
        <dt>started</dt>
        <dd>{when(session.startedAt ?? session.createdAt)}</dd>
        <dt>{over ? "ended" : "expires at"}</dt>
        <dd>{over ? when(session.endedAt) : when(session.expiresAt)}</dd>
        <dt>capturing</dt>
        <dd>
          {[session.captureArgs ? `${session.captureArgs} argument(s)` : "", session.captureReturn ? "return values" : ""].filter(Boolean).join(", ") || "timings only"}
          {session.sampleRate > 1 ? `, every ${session.sampleRate}th call` : ""} · slow above {session.slowThresholdMs}ms · at most {count(session.maxEvents)} events
        </dd>
        {session.reason && (
          <>
            <dt>reason</dt>
            <dd data-testid="debug-reason">{session.reason}</dd>
          </>
        )}
        {session.summary?.note && (
          <>
            <dt>note</dt>
            <dd class="warn-text">{session.summary.note}</dd>
          </>
        )}
      </dl>
      <div class="cards">
        <div class="card">
          <div class="value" data-testid="debug-calls" data-calls={calls} data-seen={seen.calls}>
            {count(calls)}
          </div>
          <div class="label">calls{!summary && seen.calls > 0 ? " so far" : ""}</div>
        </div>
        {(["p50", "p95", "p99", "max"] as const).map((k) => (
          <div class="card">
            <div class="value" data-testid={`debug-${k}`}>
              {calls ? formatNs(figures[k]) : "–"}
            </div>
            <div class="label">{k}</div>
          </div>
        ))}
      </div>
      {summary && <FinalSummary session={session} slowCalls={seen.slowCalls} />}
      <section>
        <h3>Latency</h3>
        <LatencyChart histogram={stream.log.histogram()} />
      </section>
      <section>
        <h3>Latest calls</h3>
        <RecentCalls log={stream.log} slowThresholdMs={session.slowThresholdMs} />
      </section>
    </div>
  );
}

/**
 * The agent's summary when the session ended. Slow calls are counted from the
 * events against the session's threshold, as `coral debug attach` counts them
 * (the agent's own count uses its default threshold).
 */
function FinalSummary({ session, slowCalls }: { session: DebugSession; slowCalls: number }) {
  const s = session.summary!;
  const calls = Number(s.calls);
  const share = (n: number) => (calls ? ` (${((100 * n) / calls).toFixed(1)}%)` : "");
  return (
    <section class="debug-summary" data-testid="debug-summary">
      <h3>Summary</h3>
      <ul>
        <li>
          {session.outcome || session.state}
          {session.reason ? ` (${session.reason})` : ""}
        </li>
        <li>
          {count(calls)} calls, avg {formatNs(s.avgNs)}, p50 {formatNs(s.p50Ns)}, p95 {formatNs(s.p95Ns)}, p99 {formatNs(s.p99Ns)}, max {formatNs(s.maxNs)}
        </li>
        {Number(s.entries) > calls && <li>{count(Number(s.entries) - calls)} call(s) still running at the end</li>}
        <li>
          slow calls (&gt;{session.slowThresholdMs}ms): {count(slowCalls)}
          {share(slowCalls)}
        </li>
        {s.processCount > 0 && <li>processes probed: {count(s.processCount)}</li>}
        {Number(s.lostEvents) > 0 && <li class="warn-text">lost events (bpftrace buffer full): {count(s.lostEvents)}</li>}
        {s.stopDetail && <li>{s.stopDetail}</li>}
      </ul>
    </section>
  );
}

function RecentCalls({ log, slowThresholdMs }: { log: CallLog; slowThresholdMs: number }) {
  if (log.recent.length === 0)
    return (
      <p class="muted" data-testid="debug-no-calls">
        No calls yet.
      </p>
    );
  return (
    <table class="grid" data-testid="debug-recent">
      <thead>
        <tr>
          <th>time</th>
          <th class="num">pid</th>
          <th class="num">tid</th>
          <th class="num">duration</th>
          <th>args</th>
          <th>return</th>
        </tr>
      </thead>
      <tbody>
        {log.recent.map((c) => (
          <tr key={String(c.seq)} class={c.durationNs > slowThresholdMs * 1e6 ? "slow" : ""}>
            <td class="nowrap muted">{formatClock(c.atMs)}</td>
            <td class="num">{c.pid}</td>
            <td class="num">{c.tid}</td>
            <td class="num">{formatNs(c.durationNs)}</td>
            <td class="details">{c.args.join(", ")}</td>
            <td class="details">{c.returnValue}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The calls' durations as bars, one per log2 bucket (uPlot). */
function LatencyChart({ histogram }: { histogram: LatencyHistogram }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const labels = useRef<string[]>(histogram.labels);
  labels.current = histogram.labels;
  const total = histogram.counts.reduce((a, b) => a + b, 0);
  const data = useMemo(() => [histogram.counts.map((_, n) => n), histogram.counts] as uPlot.AlignedData, [histogram.counts.join(",")]);
  const empty = histogram.counts.length === 0;
  useEffect(() => {
    const el = box.current;
    if (!el || empty) return;
    const size = () => ({ width: Math.max(300, el.clientWidth), height: 220 });
    const p = new uPlot(
      {
        ...size(),
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] } },
        series: [{}, { label: "calls", fill: "rgba(37, 99, 235, 0.35)", stroke: "#2563eb", width: 1, paths: uPlot.paths.bars!({ size: [0.85, 80] }), points: { show: false } }],
        axes: [
          { splits: (u) => (u.data[0] as number[]).slice(), values: (_u, ticks) => ticks.map((t) => labels.current[t]?.split("–")[0] ?? ""), size: 40 },
          { size: 50, values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : "")) },
        ],
      },
      data,
      el,
    );
    plot.current = p;
    const resize = new ResizeObserver(() => p.setSize(size()));
    resize.observe(el);
    return () => {
      resize.disconnect();
      p.destroy();
      plot.current = undefined;
    };
  }, [empty]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return (
    <figure class="chart debug-histogram" data-testid="debug-histogram" data-buckets={histogram.counts.length} data-total={total}>
      <figcaption>
        calls by duration <span class="muted">(log2 buckets, {count(total)} calls)</span>
      </figcaption>
      {empty ? <p class="muted">No calls yet.</p> : null}
      <div ref={box} title={histogram.labels.map((l, n) => `${l}: ${histogram.counts[n]}`).join("\n")} />
    </figure>
  );
}

/**
 * A logpoint's or snapshot's session: what it records, how many so far, and
 * the latest values (a snapshot's names and values) as they stream.
 */
function LineSessionView(props: {
  session: DebugSession;
  stream: { log: CallLog; state: string; error: string | undefined };
  back: JSX.Element;
  admin: boolean;
  stopping: boolean;
  stop: () => void;
  stopError: string | undefined;
}) {
  const { session, stream, back, admin, stopping, stop, stopError } = props;
  const over = isSessionOver(session.state);
  const records = over && session.summary ? Number(session.summary.entries) : stream.log.records;
  const snapshot = session.kind === "snapshot";
  return (
    <div class="debug" data-testid="debug-session" data-session={session.sessionId} data-kind={session.kind}>
      {back}
      <div class="toolbar">
        <h2>
          {session.kind} <code>{session.functionName}</code> in <Link href={`/components/${encodeURIComponent(session.serviceName)}`}>{session.serviceName}</Link>
        </h2>
        <span class={`pill ${stateTone(session.state)}`} data-testid="debug-state" data-state={session.state}>
          {session.outcome || session.state}
        </span>
        {!over && (
          <button class="danger" data-testid="debug-stop" disabled={!admin || stopping} title={admin ? "stop the session now" : "needs an admin session"} onClick={stop}>
            {stopping ? "Stopping…" : "Stop"}
          </button>
        )}
      </div>
      {stopError && <p class="error">{stopError}</p>}
      {stream.error && <p class="error">{stream.error}</p>}
      <dl class="debug-facts" data-testid="debug-facts">
        <dt>session</dt>
        <dd>{session.sessionId}</dd>
        <dt>pid</dt>
        <dd>{session.pid || "–"}</dd>
        {!snapshot && (
          <>
            <dt>expression</dt>
            <dd>
              <code data-testid="debug-expression">{session.expression}</code>
            </dd>
          </>
        )}
        {session.condition && (
          <>
            <dt>condition</dt>
            <dd>
              <code>{session.condition}</code>
            </dd>
          </>
        )}
        <dt>requested by</dt>
        <dd>{session.requestedBy}</dd>
        <dt>{over ? "ended" : "expires at"}</dt>
        <dd>{over ? when(session.endedAt) : when(session.expiresAt)}</dd>
        {session.reason && (
          <>
            <dt>reason</dt>
            <dd data-testid="debug-reason">{session.reason}</dd>
          </>
        )}
      </dl>
      <div class="cards">
        <div class="card">
          <div class="value" data-testid="debug-records" data-records={records}>
            {count(records)}
            {snapshot ? ` / ${session.snapshotCount}` : ""}
          </div>
          <div class="label">{snapshot ? "snapshots" : "values"}</div>
        </div>
        {session.summary && Number(session.summary.lostEvents) > 0 && (
          <div class="card">
            <div class="value">{count(session.summary.lostEvents)}</div>
            <div class="label">lost (rate cap)</div>
          </div>
        )}
      </div>
      <section>
        <h3>{snapshot ? "Snapshots" : "Latest values"}</h3>
        {stream.log.recentRecords.length === 0 ? (
          <p class="muted" data-testid="debug-no-records">
            Nothing recorded yet: the line has not run{session.condition ? " with the condition true" : ""}.
          </p>
        ) : snapshot ? (
          stream.log.recentRecords.map((r) => (
            <table class="grid" data-testid="debug-snapshot" key={String(r.seq)}>
              <caption class="muted">
                {formatClock(r.atMs)} · pid {r.pid}
              </caption>
              <tbody>
                {(r.values ?? []).map(([k, v]) => (
                  <tr key={k}>
                    <td>
                      <code>{k}</code>
                    </td>
                    <td class="details">{v}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))
        ) : (
          <table class="grid" data-testid="debug-values">
            <thead>
              <tr>
                <th>time</th>
                <th class="num">pid</th>
                <th>value</th>
              </tr>
            </thead>
            <tbody>
              {stream.log.recentRecords.map((r) => (
                <tr key={String(r.seq)} class={r.value.startsWith("!") ? "slow" : ""}>
                  <td class="nowrap muted">{formatClock(r.atMs)}</td>
                  <td class="num">{r.pid}</td>
                  <td class="details">{r.value}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
