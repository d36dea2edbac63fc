// The topology's data, asked for as soon as its view is opened, while the
// view's chunk (dagre, d3-force) is still loading: the two wait in parallel
// rather than one after the other.
import type { GetTopologyResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { colony } from "./api.ts";

let pending: { at: number; answer: Promise<GetTopologyResponse> } | undefined;

export function prefetchTopology(): void {
  const answer = colony.getTopology({});
  answer.catch(() => undefined); // the view asks again and shows the error
  pending = { at: Date.now(), answer };
}

/** The prefetched answer when it is fresh (a few seconds), else a new one. */
export function topologyData(): Promise<GetTopologyResponse> {
  const fresh = pending && Date.now() - pending.at < 5000 ? pending.answer : undefined;
  pending = undefined;
  return fresh ?? colony.getTopology({});
}
