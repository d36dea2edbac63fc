// Filters the list views share, kept in the URL so a link shows the same list:
// the component (from the live status) and a time range preset.
import { useLive } from "../live.ts";
import { setQuery } from "../router.tsx";

/** `?service=`: every component the colony knows, or all. */
export function ComponentFilter({ value }: { value: string }) {
  const { status } = useLive();
  const names = [...new Set(status?.services.map((s) => s.name) ?? [])].sort();
  return (
    <label>
      component{" "}
      <select value={value} onChange={(e) => setQuery("service", (e.target as HTMLSelectElement).value)}>
        <option value="">all</option>
        {names.map((n) => (
          <option value={n}>{n}</option>
        ))}
      </select>
    </label>
  );
}

/** `?since=`: one button per preset, the chosen one marked. */
export function RangeButtons({ ranges, current }: { ranges: readonly { id: string }[]; current: string }) {
  return (
    <span class="presets">
      {ranges.map((r) => (
        <button class={r.id === current ? "active" : ""} onClick={() => setQuery("since", r.id)}>
          {r.id}
        </button>
      ))}
    </span>
  );
}
