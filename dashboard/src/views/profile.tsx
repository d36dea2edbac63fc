// Profile: a component's stored CPU profile (the agent's always-on profiler,
// one profile per minute, merged by the colony: ProfileService.QueryCpuProfile,
// read data) for a window, as an interactive flame graph and a table of top
// functions; with `compare` the same window earlier as the baseline, in red
// (hotter) and blue (colder). Window, comparison, search and zoom live in the
// URL, so a link shows the same picture.
import { useMemo, useState } from "preact/hooks";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { profiles } from "../api.ts";
import {
  buildFlameTree,
  compareOffsets,
  diffFunctions,
  findFrame,
  flameDeltas,
  framePath,
  profileHref,
  profileWindow,
  profileWindowPresets,
  searchFlame,
  topFunctions,
  type DiffRow,
  type FunctionRow,
} from "../logic/index.ts";
import { Link, navigate, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import { FlameGraph } from "./flame-graph.tsx";

const when = (ms: number) => new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
const pct = (n: number) => `${n.toFixed(n >= 10 ? 1 : 2)}%`;
const points = (n: number) => `${n > 0 ? "+" : n < 0 ? "−" : "±"}${Math.abs(n).toFixed(2)}`;
const topRows = 40;
/** The colony's note without the part the facts line says already ("2 minutes of the always-on profiler at 19 Hz"). */
const extraNote = (note: string) =>
  note
    .split("; ")
    .filter((part) => !/^\d+ minutes? of the always-on profiler at \d+ Hz$/.test(part))
    .join("; ");

export function ProfileView({ name }: { name: string; admin: boolean }) {
  const { query } = useLocation();
  const [tick, setTick] = useState(0);
  const windowKey = ["from", "to", "window", "compare"].map((k) => query.get(k) ?? "").join("|");
  // Now is taken when the window (or a refresh) changes, not on every render.
  const win = useMemo(() => profileWindow(query), [windowKey, tick]);
  const data = useAsync(
    () =>
      profiles.queryCpuProfile(
        {
          serviceName: name,
          start: timestampFromDate(new Date(win.from)),
          end: timestampFromDate(new Date(win.until)),
          ...(win.baseline ? { baselineStart: timestampFromDate(new Date(win.baseline.from)), baselineEnd: timestampFromDate(new Date(win.baseline.until)) } : {}),
        },
        { timeoutMs: 60_000 },
      ),
    [name, win],
  );
  const res = data.data;
  const tree = useMemo(() => (res?.profile && res.minutes > 0 ? buildFlameTree(res.profile, name) : undefined), [res, name]);
  const baselineTree = useMemo(() => (res?.baseline && res.baselineMinutes > 0 ? buildFlameTree(res.baseline, name) : undefined), [res, name]);
  const deltas = useMemo(() => (tree && baselineTree ? flameDeltas(baselineTree, tree) : undefined), [tree, baselineTree]);
  const search = query.get("q") ?? "";
  const focusPath = query.get("focus") ?? "";
  const focus = (tree && focusPath && findFrame(tree, focusPath)?.id) || 0;
  const found = useMemo(() => (tree ? searchFlame(tree, search, focus) : undefined), [tree, search, focus]);
  const [orientation, setOrientation] = useState<"icicle" | "flame">("icicle");

  const windowLink = (w: string) => profileHref(name, { window: w }, win.compare);
  const fixed = !win.window;
  return (
    <div class="profile" data-testid="profile" data-name={name}>
      <div class="toolbar">
        <h2>
          <Link href={`/components/${encodeURIComponent(name)}`}>{name}</Link> · CPU profile
        </h2>
        <span class="presets">
          {profileWindowPresets.map((w) => (
            <button class={win.window === w ? "active" : ""} data-window={w} onClick={() => navigate(windowLink(w), true)}>
              {w}
            </button>
          ))}
        </span>
        <label class="compare">
          compare with{" "}
          <select data-testid="compare" value={win.compare ?? ""} onChange={(e) => setQuery("compare", (e.target as HTMLSelectElement).value)}>
            <option value="">nothing</option>
            {[...new Set([...compareOffsets, ...(win.compare ? [win.compare] : [])])].map((c) => (
              <option value={c}>the same window {c} earlier</option>
            ))}
          </select>
        </label>
        <button class="link" onClick={() => setTick((t) => t + 1)}>
          refresh
        </button>
      </div>
      <p class="muted" data-testid="profile-window">
        {fixed ? "" : `the last ${win.window}: `}
        {when(win.from)} – {when(win.until)}
        {win.baseline && ` compared with ${when(win.baseline.from)} – ${when(win.baseline.until)}`}
      </p>
      {win.error && <p class="error">{win.error}</p>}
      {data.error && (
        <p class="error" data-testid="profile-error">
          {data.error}
        </p>
      )}
      {data.loading && !res && <p class="muted">Loading…</p>}
      {res && res.minutes === 0 && (
        <div class="empty" data-testid="profile-empty">
          <p>No stored CPU profile for {name} in this range.</p>
          <p class="muted">
            The agent's always-on profiler stores a profile per minute; none in this range. Pick a longer window, or check that the agent profiles {name} (
            <code>coral connect --profile-hz</code>).
          </p>
        </div>
      )}
      {res && tree && found && (
        <>
          <p class="facts" data-testid="profile-facts" data-minutes={res.minutes} data-total={tree.total}>
            {res.minutes} minute{res.minutes === 1 ? "" : "s"} at {res.profile!.hz} Hz · {tree.total.toLocaleString("en-US")} samples
            {extraNote(res.profile!.note) && <span class="muted"> · {extraNote(res.profile!.note)}</span>}
          </p>
          {win.baseline && !baselineTree && (
            <p class="warn-text" data-testid="no-baseline">
              Nothing stored in the baseline window ({win.compare} earlier): shown without comparison.
            </p>
          )}
          {baselineTree && (
            <p class="legend" data-testid="diff-legend">
              <span class="swatch hotter" /> a larger share than {win.compare} earlier ({baselineTree.total.toLocaleString("en-US")} samples in {res.baselineMinutes} min) <span class="swatch colder" /> a smaller one; width is now.
            </p>
          )}
          <div class="toolbar flame-tools">
            <input
              type="search"
              placeholder="search functions"
              data-testid="flame-search"
              value={search}
              onInput={(e) => setQuery("q", (e.target as HTMLInputElement).value)}
            />
            {search && (
              <span data-testid="search-share" data-percent={found.percent.toFixed(4)} data-matches={found.matches.size}>
                {found.matches.size === 0
                  ? "no frame matches"
                  : `matched: ${pct(found.percent)} of samples (${found.samples.toLocaleString("en-US")})${focus !== 0 ? `, ${pct(found.focusPercent)} of the zoomed frame` : ""}`}
              </span>
            )}
            {focus !== 0 && (
              <button class="link" data-testid="zoom-reset" onClick={() => setQuery("focus", null)}>
                reset zoom
              </button>
            )}
            <span class="presets">
              {(["icicle", "flame"] as const).map((o) => (
                <button class={orientation === o ? "active" : ""} onClick={() => setOrientation(o)}>
                  {o}
                </button>
              ))}
            </span>
          </div>
          <FlameGraph
            tree={tree}
            focus={focus}
            onFocus={(id) => setQuery("focus", id === 0 ? null : framePath(tree, id))}
            matches={found.matches}
            deltas={deltas}
            orientation={orientation}
          />
          <h3>Top functions</h3>
          {res.baseline && baselineTree ? (
            <DiffTable rows={diffFunctions(res.baseline, res.profile!)} onPick={(f) => setQuery("q", f)} />
          ) : (
            <TopTable rows={topFunctions(res.profile!)} onPick={(f) => setQuery("q", f)} />
          )}
        </>
      )}
    </div>
  );
}

function TopTable({ rows, onPick }: { rows: FunctionRow[]; onPick(fn: string): void }) {
  return (
    <table class="grid top-functions" data-testid="top-functions">
      <thead>
        <tr>
          <th>function</th>
          <th>module</th>
          <th class="num">self</th>
          <th class="num">total</th>
          <th class="num">self samples</th>
        </tr>
      </thead>
      <tbody>
        {rows.slice(0, topRows).map((r) => (
          <tr data-function={r.function}>
            <td class="details">
              <button class="link" title="search for it in the flame graph" onClick={() => onPick(r.function)}>
                {r.function}
              </button>
            </td>
            <td class="muted">{r.module}</td>
            <td class="num" data-field="self">
              {pct(r.selfPercent)}
            </td>
            <td class="num" data-field="total">
              {pct(r.totalPercent)}
            </td>
            <td class="num">{r.self.toLocaleString("en-US")}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function DiffTable({ rows, onPick }: { rows: DiffRow[]; onPick(fn: string): void }) {
  return (
    <table class="grid top-functions" data-testid="top-functions">
      <thead>
        <tr>
          <th>function</th>
          <th>module</th>
          <th class="num">self before</th>
          <th class="num">self now</th>
          <th class="num">change (points)</th>
          <th class="num">total now</th>
        </tr>
      </thead>
      <tbody>
        {rows.slice(0, topRows).map((r) => (
          <tr data-function={r.function} class={r.delta > 0.005 ? "hotter" : r.delta < -0.005 ? "colder" : ""}>
            <td class="details">
              <button class="link" title="search for it in the flame graph" onClick={() => onPick(r.function)}>
                {r.function}
              </button>
            </td>
            <td class="muted">{r.module}</td>
            <td class="num">{pct(r.beforePercent)}</td>
            <td class="num" data-field="self">
              {pct(r.selfPercent)}
            </td>
            <td class="num" data-field="delta">
              {points(r.delta)}
            </td>
            <td class="num">{pct(r.totalPercent)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
