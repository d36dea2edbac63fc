/** The request middleware: RED aggregates and traffic samples the agent drains. */
export { RequestRecorder, frameworkRoute, type CapturedRequest, type TrafficSampleData, type RouteOf } from "./recorder.ts";
export { resolveRequestOptions, type RequestOptions, type ResolvedRequestOptions } from "./options.ts";
export { instrumentServer, wrapListener } from "./node.ts";
export { expressMiddleware, expressRoute, type ExpressMiddleware } from "./express.ts";
export { fastifyPlugin, type FastifyPlugin } from "./fastify.ts";
export { Sampler, checkSampleRate, alwaysKept } from "./sampler.ts";
export { BoundedQueue, defaultQueueBounds, type QueueBounds } from "./queue.ts";
export { REDACTED, defaultRedactedHeaders, redactionSet, redactPairs } from "./redact.ts";
export { BodyCapture } from "./body.ts";
export { RedAggregator, statusClassOf, type DrainedSeries } from "./red.ts";
export { bucketIndex, bucketValue, LatencyHistogram } from "./histogram.ts";
export { drainRequestsResponse, drainTrafficResponse, maxDrainSamples } from "./wire.ts";
