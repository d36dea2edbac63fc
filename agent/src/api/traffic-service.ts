// AgentTrafficService: the traffic samples this agent keeps (see
// ../traffic/puller.ts), filtered here, and the SDK's sample rate. Every
// field is checked (InvalidArgument naming it) before the store is asked.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { AgentTrafficService } from "@coral/proto/gen/coral/agent/v1/traffic_pb";
import { TrafficSampleSchema } from "@coral/proto/gen/coral/sdk/v1/traffic_pb";
import { checkSampleRate, checkTrafficFilters } from "@coral/common/traffic-filters";
import type { AgentStore } from "../storage/index.ts";
import type { TrafficPuller } from "../traffic/puller.ts";

function invalid<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw new ConnectError((err as Error).message, Code.InvalidArgument);
  }
}

export function agentTrafficService(store: AgentStore, puller: TrafficPuller): ServiceImpl<typeof AgentTrafficService> {
  return {
    async queryTraffic(req) {
      const filters = invalid(() => checkTrafficFilters(req));
      const since = req.since ? timestampDate(req.since) : undefined;
      if (since && Number.isNaN(since.getTime())) throw new ConnectError("since: not a valid time", Code.InvalidArgument);
      const [page, stats] = await Promise.all([store.queryTraffic({ ...filters, since }), store.trafficStats()]);
      const st = puller.status();
      return {
        samples: page.rows.map((s) => ({ ...s, startTime: timestampFromDate(s.startTime) })),
        truncated: page.truncated,
        storedSamples: BigInt(stats.samples),
        storedBytes: BigInt(stats.bytes),
        sdkDropped: BigInt(st.sdkDropped),
        pruned: BigInt(st.pruned),
        sampleRate: st.sampleRate,
      };
    },
    async getTrafficSample(req) {
      if (!req.id || req.id.length > 256) throw new ConnectError("id: required, as coral traffic lists it (<service>.<hex>)", Code.InvalidArgument);
      const s = await store.getTrafficSample(req.id);
      if (!s) throw new ConnectError(`no traffic sample ${req.id} (samples are kept for an hour at most, within the agent's buffer)`, Code.NotFound);
      return {
        sample: create(TrafficSampleSchema, {
          ...s,
          startTime: timestampFromDate(s.startTime),
          requestBodySize: BigInt(s.requestBodySize),
          responseBodySize: BigInt(s.responseBodySize),
        }),
      };
    },
    async configureTraffic(req) {
      const rate = invalid(() => checkSampleRate(req.sampleRate));
      const r = await puller.configure(rate);
      return { sampleRate: r.sampleRate, deliveredToSdk: r.delivered };
    },
  };
}
