// Events: what the agents reported (process found, exited, restart, health
// changed, …), newest first, filtered by component, type and time; live.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { colony } from "../api.ts";
import { useTopics } from "../live.ts";
import { eventDetails, formatTime } from "../logic/format.ts";
import { Link, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";
import { ComponentFilter, RangeButtons } from "./filters.tsx";

export const eventRanges = [
  { id: "15m", seconds: 900 },
  { id: "1h", seconds: 3600 },
  { id: "24h", seconds: 86_400 },
  { id: "7d", seconds: 7 * 86_400 },
] as const;

export function EventList(props: { service: string; type: string; sinceSeconds: number; limit?: number; showService?: boolean }) {
  const events = useAsync(
    () =>
      colony.queryEvents({
        service: props.service,
        eventType: props.type,
        since: timestampFromDate(new Date(Date.now() - props.sinceSeconds * 1000)),
        limit: props.limit ?? 200,
      }),
    [props.service, props.type, props.sinceSeconds, props.limit],
  );
  useTopics(["events"], events.reload);
  if (events.error) return <p class="error">{events.error}</p>;
  if (!events.data) return <p class="muted">Loading…</p>;
  if (events.data.events.length === 0) return <p class="muted" data-testid="no-events">No events in this range.</p>;
  return (
    <table class="grid" data-testid="events">
      <thead>
        <tr>
          <th>time</th>
          {props.showService !== false && <th>component</th>}
          <th>type</th>
          <th>details</th>
        </tr>
      </thead>
      <tbody>
        {events.data.events.map((e) => (
          <tr key={e.eventId} data-event={e.eventId}>
            <td class="muted nowrap">{e.timestamp ? formatTime(timestampDate(e.timestamp)) : ""}</td>
            {props.showService !== false && (
              <td>
                <Link href={`/components/${encodeURIComponent(e.service)}`}>{e.service}</Link>
              </td>
            )}
            <td data-field="type">{e.eventType}</td>
            <td class="details">{eventDetails(e.detailsJson)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Events() {
  const { query } = useLocation();
  const service = query.get("service") ?? "";
  const type = query.get("type") ?? "";
  const range = eventRanges.find((r) => r.id === query.get("since")) ?? eventRanges[1];
  return (
    <div>
      <div class="toolbar">
        <h2>Events</h2>
        <ComponentFilter value={service} />
        <label>
          type{" "}
          <input
            value={type}
            placeholder="e.g. restart"
            onChange={(e) => setQuery("type", (e.target as HTMLInputElement).value.trim())}
          />
        </label>
        <RangeButtons ranges={eventRanges} current={range.id} />
      </div>
      <EventList service={service} type={type} sinceSeconds={range.seconds} />
    </div>
  );
}
