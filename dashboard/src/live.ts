// Live updates: one EventSource to /dashboard/api/live for the whole page.
// `status` events carry the colony's GetStatus answer; `changed` events name
// what to fetch again (events, insights, topology, debug sessions, flags and rollbacks). The connection state is
// shown in the header: lost, then back (the browser reconnects by itself;
// when the colony refused the stream, this reconnects after a pause).
import { fromJsonString } from "@bufbuild/protobuf";
import { GetStatusResponseSchema, type GetStatusResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { useEffect, useState } from "preact/hooks";

export type LiveState = "connecting" | "live" | "lost";
export type Topic = "events" | "insights" | "topology" | "debug" | "control";

interface Snapshot {
  state: LiveState;
  status: GetStatusResponse | undefined;
  /** When the last status arrived (ms). */
  receivedAt: number;
}

let snapshot: Snapshot = { state: "connecting", status: undefined, receivedAt: 0 };
const watchers = new Set<(s: Snapshot) => void>();
const topicWatchers = new Set<(topics: Topic[]) => void>();
let source: EventSource | undefined;
let retry: ReturnType<typeof setTimeout> | undefined;

function publish(next: Partial<Snapshot>): void {
  snapshot = { ...snapshot, ...next };
  for (const w of watchers) w(snapshot);
}

export function startLive(): void {
  if (source) return;
  const es = new EventSource("/dashboard/api/live");
  source = es;
  es.addEventListener("open", () => publish({ state: "live" }));
  es.addEventListener("status", (e) => {
    publish({ state: "live", status: fromJsonString(GetStatusResponseSchema, (e as MessageEvent<string>).data), receivedAt: Date.now() });
  });
  es.addEventListener("changed", (e) => {
    const { topics } = JSON.parse((e as MessageEvent<string>).data) as { topics: Topic[] };
    for (const w of topicWatchers) w(topics);
  });
  es.addEventListener("error", () => {
    publish({ state: "lost" });
    // CLOSED: the colony answered with an error (or is gone for good): start again after a pause.
    if (es.readyState === EventSource.CLOSED) {
      source = undefined;
      clearTimeout(retry);
      retry = setTimeout(startLive, 2000);
    }
  });
}

export function stopLive(): void {
  clearTimeout(retry);
  source?.close();
  source = undefined;
}

/** The connection state and the latest status, re-rendering on each update. */
export function useLive(): Snapshot {
  const [s, set] = useState(snapshot);
  useEffect(() => {
    watchers.add(set);
    set(snapshot);
    return () => void watchers.delete(set);
  }, []);
  return s;
}

/** Calls `onChange` whenever the colony stores new data of one of `topics`. */
export function useTopics(topics: Topic[], onChange: () => void): void {
  useEffect(() => {
    const w = (changed: Topic[]) => {
      if (changed.some((t) => topics.includes(t))) onChange();
    };
    topicWatchers.add(w);
    return () => void topicWatchers.delete(w);
  }, [topics.join(","), onChange]);
}
