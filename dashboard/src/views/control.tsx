// Flags & rollbacks: the feature flags the colony keeps (per component, live)
// and the rollback history, a running rollback followed step by step. Admin
// sessions change flags and start rollbacks (audited like the CLI's; a dry
// run by default, a real one only after a confirmation); read sessions see
// everything and change nothing.
import { useEffect, useState } from "preact/hooks";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import type { Rollback } from "@coral/proto/gen/coral/control/v1/control_pb";
import type { Flag } from "@coral/proto/gen/coral/control/v1/flags_pb";
import type { ViewProps } from "../app.tsx";
import { control } from "../api.ts";
import { useLive, useTopics } from "../live.ts";
import { formatDuration, formatTime } from "../logic/format.ts";
import {
  componentPattern,
  confirmationText,
  currentRollback,
  dryRunLines,
  flagChange,
  flagOutcome,
  flagState,
  groupFlags,
  isRollbackOver,
  rollbackRequest,
  rollbackSeconds,
  rollbackStateText,
  rollbackStrategies,
  rollbackVersions,
  stepMark,
  type FlagChangeInput,
  type RollbackForm,
  type RollbackRequest,
} from "../logic/control.ts";
import { Link, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";

const needsAdmin = "needs an admin session";
const errorText = (err: unknown) => ConnectError.from(err).rawMessage;

export function Control({ admin }: ViewProps) {
  const { query } = useLocation();
  const { status } = useLive();
  const asked = query.get("service") ?? "";
  const service = componentPattern.test(asked) ? asked : "";
  const flags = useAsync(() => control.listFlags({ service }), [service]);
  const rollbacks = useAsync(() => control.listRollbacks({ service, limit: 50 }), [service]);
  useTopics(["control"], flags.reload);
  useTopics(["control"], rollbacks.reload);
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const toggle = (id: string) => setOpen((s) => (s.has(id) ? new Set([...s].filter((x) => x !== id)) : new Set([...s, id])));
  const running = status?.services ?? [];
  const names = [...new Set([...running.map((s) => s.name), ...(flags.data?.flags.map((f) => f.service) ?? []), ...(service ? [service] : [])])].sort();
  return (
    <div class="control" data-testid="control">
      <div class="toolbar">
        <h2>Flags &amp; rollbacks</h2>
        <label>
          component{" "}
          <select data-testid="service-filter" value={service} onChange={(e) => setQuery("service", (e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            {names.map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>
        </label>
      </div>
      {asked && !service && <p class="error">"{asked.slice(0, 40)}" is not a component name: showing every component.</p>}
      {!admin && (
        <p class="muted" data-testid="read-only">
          Read-only session: changing flags and starting rollbacks {needsAdmin} (coral dashboard with an admin token).
        </p>
      )}
      <section>
        <h3>Feature flags</h3>
        {flags.error && <p class="error">{flags.error}</p>}
        {flags.data && <FlagTables flags={flags.data.flags} service={service} admin={admin} onChanged={flags.reload} />}
        {!flags.data && !flags.error && <p class="muted">Loading…</p>}
        <NewFlag admin={admin} services={names} service={service} onChanged={flags.reload} />
      </section>
      <section>
        <h3>Rollbacks</h3>
        <StartRollback
          admin={admin}
          services={[...new Set(running.map((s) => s.name))].sort()}
          service={service}
          versionOf={(name) => running.find((s) => s.name === name)?.version ?? ""}
          onStarted={(id) => {
            setOpen((s) => new Set([...s, id]));
            rollbacks.reload();
          }}
        />
        {rollbacks.error && <p class="error">{rollbacks.error}</p>}
        {rollbacks.data && <RollbackHistory rollbacks={rollbacks.data.rollbacks} open={open} toggle={toggle} onEnded={rollbacks.reload} />}
      </section>
    </div>
  );
}

/** A component's flags, for its own view (changes as in the Flags & rollbacks view). */
export function ComponentFlags({ service, admin }: { service: string; admin: boolean }) {
  const flags = useAsync(() => control.listFlags({ service }), [service]);
  useTopics(["control"], flags.reload);
  return (
    <section data-testid="component-flags">
      <h3>
        Feature flags <Link href={`/control?service=${encodeURIComponent(service)}`} class="muted">(flags &amp; rollbacks)</Link>
      </h3>
      {flags.error && <p class="error">{flags.error}</p>}
      {flags.data && <FlagTables flags={flags.data.flags} service={service} admin={admin} onChanged={flags.reload} />}
    </section>
  );
}

function FlagTables(props: { flags: Flag[]; service: string; admin: boolean; onChanged: () => void }) {
  const groups = groupFlags(props.flags, props.service);
  if (groups.length === 0)
    return (
      <p class="muted" data-testid="no-flags">
        No flags{props.service ? ` of ${props.service}` : ""} yet. Apps read them with the Coral SDK; create one below or with coral flags enable &lt;flag&gt; --service &lt;component&gt;.
      </p>
    );
  return (
    <div data-testid="flags">
      {groups.map((g) => (
        <div class="flag-group" data-service={g.service} key={g.service}>
          <h4>
            <Link href={`/components/${encodeURIComponent(g.service)}`}>{g.service}</Link>
          </h4>
          <table class="grid">
            <thead>
              <tr>
                <th>flag</th>
                <th>enabled</th>
                <th class="num">rollout</th>
                <th class="num">users</th>
                <th>updated</th>
                <th>by</th>
                <th>change</th>
              </tr>
            </thead>
            <tbody>
              {g.flags.map((f) => (
                <FlagRow flag={f} admin={props.admin} onChanged={props.onChanged} key={`${f.service}/${f.name}`} />
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

type Outcome = { ok: boolean; lines: string[] } | undefined;

/** Sends a flag change (checked first, as the CLI checks it); the outcome says which agents got it. */
function useFlagChange(onChanged: () => void): { busy: boolean; outcome: Outcome; apply: (c: FlagChangeInput) => Promise<boolean> } {
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>(undefined);
  const apply = async (change: FlagChangeInput) => {
    const checked = flagChange(change);
    if ("error" in checked) {
      setOutcome({ ok: false, lines: [checked.error] });
      return false;
    }
    setBusy(true);
    try {
      const res = await control.setFlag(checked.request);
      setOutcome({ ok: true, lines: flagOutcome(res) });
      onChanged();
      return true;
    } catch (err) {
      setOutcome({ ok: false, lines: [errorText(err)] });
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, outcome, apply };
}

function OutcomeLines({ outcome }: { outcome: Outcome }) {
  if (!outcome) return null;
  return (
    <div class={outcome.ok ? "outcome muted" : "outcome error"} data-field="outcome" data-ok={String(outcome.ok)}>
      {outcome.lines.map((l) => (
        <div>{l}</div>
      ))}
    </div>
  );
}

function FlagRow({ flag, admin, onChanged }: { flag: Flag; admin: boolean; onChanged: () => void }) {
  const [rollout, setRollout] = useState(String(flag.rolloutPercentage));
  // A change from elsewhere (the CLI, another page) shows in the input too.
  useEffect(() => setRollout(String(flag.rolloutPercentage)), [flag.rolloutPercentage]);
  const { busy, outcome, apply } = useFlagChange(onChanged);
  const id = { service: flag.service, name: flag.name };
  return (
    <tr data-flag={`${flag.service}/${flag.name}`} title={flagState(flag)}>
      <td data-field="name">
        <code>{flag.name}</code>
      </td>
      <td>
        <span class={`pill ${flag.enabled ? "good" : "idle"}`} data-field="enabled">
          {flag.enabled ? "on" : "off"}
        </span>
      </td>
      <td class="num" data-field="rollout">
        {flag.rolloutPercentage}%
      </td>
      <td class="num" data-field="users" title={flag.userIds.slice(0, 20).join(", ")}>
        {flag.userIds.length}
      </td>
      <td class="muted nowrap" data-field="updated">
        {flag.updatedAt ? formatTime(timestampDate(flag.updatedAt)) : "–"}
      </td>
      <td data-field="updated-by">{flag.updatedBy || "–"}</td>
      <td>
        <div class="flag-change">
          <button data-action="toggle" disabled={!admin || busy} title={admin ? `turn ${flag.name} ${flag.enabled ? "off" : "on"}` : needsAdmin} onClick={() => void apply({ ...id, enabled: !flag.enabled })}>
            {flag.enabled ? "Turn off" : "Turn on"}
          </button>
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void apply({ ...id, rollout });
            }}
          >
            <input
              data-field="rollout-input"
              class="percent"
              inputMode="numeric"
              value={rollout}
              disabled={!admin || busy}
              title={admin ? "share of users it is on for, 0-100" : needsAdmin}
              onInput={(e) => setRollout((e.target as HTMLInputElement).value)}
            />
            <button type="submit" data-action="set-rollout" disabled={!admin || busy} title={admin ? "set the rollout" : needsAdmin}>
              Set %
            </button>
          </form>
          <OutcomeLines outcome={outcome} />
        </div>
      </td>
    </tr>
  );
}

/** A new flag (or any flag by name): off, or on for a share of users. */
function NewFlag(props: { admin: boolean; services: string[]; service: string; onChanged: () => void }) {
  const [form, setForm] = useState({ service: props.service, name: "", rollout: "100" });
  const { busy, outcome, apply } = useFlagChange(props.onChanged);
  const service = form.service || props.service;
  return (
    <form
      class="new-flag toolbar"
      data-testid="new-flag"
      title={props.admin ? "" : needsAdmin}
      onSubmit={async (e) => {
        e.preventDefault();
        if (await apply({ service, name: form.name.trim(), enabled: true, rollout: form.rollout })) setForm({ ...form, name: "" });
      }}
    >
      <fieldset disabled={!props.admin || busy}>
        <span class="muted">Turn on a flag:</span>{" "}
        <select data-field="service" value={service} onChange={(e) => setForm({ ...form, service: (e.target as HTMLSelectElement).value })}>
          <option value="">component…</option>
          {props.services.map((n) => (
            <option value={n}>{n}</option>
          ))}
        </select>{" "}
        <input data-field="name" placeholder="flag name, e.g. new-checkout" value={form.name} onInput={(e) => setForm({ ...form, name: (e.target as HTMLInputElement).value })} />{" "}
        for{" "}
        <input data-field="rollout" class="percent" inputMode="numeric" value={form.rollout} onInput={(e) => setForm({ ...form, rollout: (e.target as HTMLInputElement).value })} />% of users{" "}
        <button type="submit" data-action="create-flag">
          Turn on
        </button>
        {!props.admin && <span class="muted"> ({needsAdmin})</span>}
      </fieldset>
      <OutcomeLines outcome={outcome} />
    </form>
  );
}

type StartResult = { kind: "dry"; rollback: Rollback } | { kind: "started"; rollback: Rollback } | { kind: "error"; message: string } | undefined;

function StartRollback(props: { admin: boolean; services: string[]; service: string; versionOf: (name: string) => string; onStarted: (id: string) => void }) {
  const [form, setForm] = useState<RollbackForm>({ service: props.service, target: "", strategy: "auto", dryRun: true });
  const [confirming, setConfirming] = useState<RollbackRequest | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<StartResult>(undefined);
  const service = form.service || props.service;
  const send = async (request: RollbackRequest) => {
    setBusy(true);
    setConfirming(undefined);
    try {
      const res = await control.startRollback(request);
      if (!res.rollback) throw new Error("the colony answered without a rollback");
      if (res.dryRun) setResult({ kind: "dry", rollback: res.rollback });
      else {
        setResult({ kind: "started", rollback: res.rollback });
        // The next one is a dry run again unless unchecked again.
        setForm((f) => ({ ...f, dryRun: true }));
        props.onStarted(res.rollback.rollbackId);
      }
    } catch (err) {
      setResult({ kind: "error", message: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    const checked = rollbackRequest({ ...form, service });
    if ("error" in checked) return setResult({ kind: "error", message: checked.error });
    setResult(undefined);
    if (checked.request.dryRun) void send(checked.request);
    else setConfirming(checked.request);
  };
  const set = (patch: Partial<RollbackForm>) => {
    setConfirming(undefined);
    setForm({ ...form, ...patch });
  };
  return (
    <div class="start-rollback" data-testid="start-rollback">
      <form onSubmit={submit} title={props.admin ? "" : needsAdmin}>
        <fieldset disabled={!props.admin || busy}>
          <legend>Start a rollback{!props.admin && <span class="muted"> ({needsAdmin})</span>}</legend>
          <label>
            component{" "}
            <select data-field="service" value={service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value })}>
              <option value="">choose…</option>
              {props.services.map((n) => (
                <option value={n}>
                  {n}
                  {props.versionOf(n) && ` (runs ${props.versionOf(n)})`}
                </option>
              ))}
            </select>
          </label>{" "}
          <label>
            to version{" "}
            <input data-field="target" placeholder="empty: the previous one" value={form.target} onInput={(e) => set({ target: (e.target as HTMLInputElement).value })} />
          </label>{" "}
          <label>
            strategy{" "}
            <select data-field="strategy" value={form.strategy} onChange={(e) => set({ strategy: (e.target as HTMLSelectElement).value })}>
              {rollbackStrategies.map((s) => (
                <option value={s.id} title={s.label}>
                  {s.id}
                </option>
              ))}
            </select>
          </label>{" "}
          <label title="show the plan and change nothing">
            <input type="checkbox" data-field="dry-run" checked={form.dryRun} onChange={(e) => set({ dryRun: (e.target as HTMLInputElement).checked })} /> dry run
          </label>{" "}
          <button type="submit" data-action="start-rollback">
            {form.dryRun ? "Show the plan" : "Roll back…"}
          </button>
        </fieldset>
      </form>
      {confirming && (
        <div class="confirm" data-testid="confirm-rollback">
          <p>{confirmationText(confirming, props.versionOf(confirming.service))}</p>
          <button class="danger" data-action="confirm" onClick={() => void send(confirming)}>
            Roll back now
          </button>{" "}
          <button data-action="cancel" onClick={() => setConfirming(undefined)}>
            Cancel
          </button>
        </div>
      )}
      {busy && <p class="muted">Asking the agent…</p>}
      {result?.kind === "error" && (
        <p class="error" data-testid="rollback-error">
          {result.message}
        </p>
      )}
      {result?.kind === "dry" && <DryRun rollback={result.rollback} />}
      {result?.kind === "started" && (
        <p data-testid="rollback-started" data-rollback-id={result.rollback.rollbackId}>
          Started rollback <code>{result.rollback.rollbackId}</code> of {result.rollback.service} ({rollbackVersions(result.rollback)}, {result.rollback.strategy}): follow it below.
        </p>
      )}
    </div>
  );
}

function DryRun({ rollback }: { rollback: Rollback }) {
  const lines = dryRunLines(rollback);
  const state = rollbackStateText(rollback.state);
  return (
    <div class="dry-run" data-testid="dry-run" data-strategy={rollback.strategy}>
      <p>
        <span class={`pill ${state.tone}`} data-field="state">
          {rollback.state}
        </span>{" "}
        <span data-field="headline">{lines.headline}</span>
      </p>
      {lines.first && <p class="muted">first: {lines.first}</p>}
      <ol data-field="plan">
        {lines.plan.map((p) => (
          <li>
            <code>{p}</code>
          </li>
        ))}
      </ol>
      {lines.undo.length > 0 && (
        <>
          <p class="muted">if a step fails, undo it:</p>
          <ol data-field="undo-plan">
            {lines.undo.map((p) => (
              <li>
                <code>{p}</code>
              </li>
            ))}
          </ol>
        </>
      )}
      <p class="muted">{lines.then}</p>
      <p>Nothing was changed.</p>
    </div>
  );
}

function RollbackHistory(props: { rollbacks: Rollback[]; open: ReadonlySet<string>; toggle: (id: string) => void; onEnded: () => void }) {
  if (props.rollbacks.length === 0)
    return (
      <p class="muted" data-testid="no-rollbacks">
        No rollbacks yet.
      </p>
    );
  return (
    <table class="grid rollbacks" data-testid="rollbacks">
      <thead>
        <tr>
          <th></th>
          <th>id</th>
          <th>component</th>
          <th>versions</th>
          <th>strategy</th>
          <th>state</th>
          <th>by</th>
          <th>started</th>
          <th class="num">took</th>
          <th>error</th>
        </tr>
      </thead>
      {props.rollbacks.map((r) => (
        <RollbackRow listed={r} open={props.open.has(r.rollbackId)} toggle={() => props.toggle(r.rollbackId)} onEnded={props.onEnded} key={r.rollbackId} />
      ))}
    </table>
  );
}

/** One rollback; while it runs, WatchRollback keeps it current (the stream ends with it, or when the row goes away). */
function RollbackRow({ listed, open, toggle, onEnded }: { listed: Rollback; open: boolean; toggle: () => void; onEnded: () => void }) {
  const [watched, setWatched] = useState<Rollback | undefined>(undefined);
  const [watchError, setWatchError] = useState<string | undefined>(undefined);
  const over = isRollbackOver(listed.state);
  useEffect(() => {
    if (over) return;
    const abort = new AbortController();
    void (async () => {
      try {
        for await (const update of control.watchRollback({ rollbackId: listed.rollbackId }, { signal: abort.signal })) if (update.rollback) setWatched(update.rollback);
        onEnded();
      } catch (err) {
        if (!abort.signal.aborted) setWatchError(errorText(err));
      }
    })();
    return () => abort.abort();
  }, [listed.rollbackId, over]);
  const r = currentRollback(listed, watched);
  const state = rollbackStateText(r.state);
  const seconds = rollbackSeconds(r);
  return (
    <tbody>
      <tr data-rollback={r.rollbackId} data-state={r.state} class="clickable" onClick={toggle}>
        <td>
          <button class="link" data-action="expand" aria-expanded={open} title="steps and plan">
            {open ? "▾" : "▸"}
          </button>
        </td>
        <td>
          <code>{r.rollbackId}</code>
        </td>
        <td data-field="service">{r.service}</td>
        <td data-field="versions">{rollbackVersions(r)}</td>
        <td data-field="strategy">{r.strategy}</td>
        <td>
          <span class={`pill ${state.tone}`} data-field="state">
            {state.text}
          </span>
        </td>
        <td data-field="initiated-by">{r.initiatedBy}</td>
        <td class="muted nowrap" data-field="started">
          {r.startedAt ? formatTime(timestampDate(r.startedAt)) : "–"}
        </td>
        <td class="num" data-field="duration">
          {seconds === undefined ? "–" : formatDuration(seconds)}
        </td>
        <td class="error" data-field="error">
          {r.error}
          {watchError && <span class="muted"> (live updates stopped: {watchError})</span>}
        </td>
      </tr>
      {open && (
        <tr class="details" data-rollback-details={r.rollbackId}>
          <td></td>
          <td colSpan={9}>
            <ul class="steps" data-field="steps">
              {r.steps.map((s) => (
                <li data-outcome={s.outcome || "running"}>
                  <span class={`mark ${s.outcome || "running"}`}>{stepMark(s.outcome)}</span> {s.description}
                  {s.at && <span class="muted"> · {formatTime(timestampDate(s.at))}</span>}
                </li>
              ))}
              {r.steps.length === 0 && <li class="muted">No steps yet.</li>}
            </ul>
            {r.recordRevision && (
              <p class="muted">
                first: <code>{r.recordRevision}</code>
              </p>
            )}
            {r.plan.length > 0 && (
              <>
                <p class="muted">plan:</p>
                <ol data-field="plan">
                  {r.plan.map((p) => (
                    <li>
                      <code>{p}</code>
                    </li>
                  ))}
                </ol>
              </>
            )}
            {r.undoPlan.length > 0 && (
              <>
                <p class="muted">undo plan (if a step fails):</p>
                <ol data-field="undo-plan">
                  {r.undoPlan.map((p) => (
                    <li>
                      <code>{p}</code>
                    </li>
                  ))}
                </ol>
              </>
            )}
          </td>
        </tr>
      )}
    </tbody>
  );
}
