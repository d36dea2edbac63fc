// coral_query_traffic and coral_get_traffic_sample: the requests the app's
// Coral SDK middleware sampled (a share, and every 5xx), kept by the
// component's agent and filtered there through the colony, as `coral traffic`
// and `coral traffic show` print them. Read-only: headers and bodies come as
// the agent keeps them (secrets already redacted in the app's process).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { checkTrafficFilters, trafficLimits, trafficSampleService } from "@coral/common/traffic-filters";
import { z } from "zod";
import { trafficRow, trafficSampleJson, type TrafficRow } from "../format/traffic.ts";
import { clip, defineTool, need, fitLines, iso, num, sharedCheck, textBudgetChars, timeArg, timeRange, toolArgs, serviceArg } from "./common.ts";
import { ToolError, type ToolContext } from "./types.ts";

function trafficClient(ctx: ToolContext) {
  if (!ctx.traffic) throw new ToolError("traffic samples are not available through this connection", "unavailable");
  return ctx.traffic;
}

const sampleLine = (s: TrafficRow) => `- ${s.time.replace(/\.000Z$/, "Z")} ${s.method} ${clip(s.path, 120)} → ${s.status} in ${num(s.durationMs)} ms (${s.reason}) id=${s.id}`;

/** Headers listed per request or response; values are cut at 300 characters. */
const maxHeaders = 40;

/** The SDK's share as people say it: "10 %". */
const share = (rate: number) => `${num(Math.round(rate * 1000) / 10)} %`;

export const queryTrafficTool = defineTool({
  name: "coral_query_traffic",
  title: "Sampled requests",
  description:
    "Requests of one component that the app's Coral SDK middleware sampled (a share of them, 10 % by default, and every 5xx), newest first: " +
    "time, method, path, status, duration and the sample id. Filter by path prefix, method and status (404 or a class like 5xx). " +
    "Show one request and its response in full (headers, bodies; secrets redacted) with coral_get_traffic_sample.",
  inputSchema: toolArgs({
    service: serviceArg(),
    path: z.string().optional().describe("Only paths starting with this, e.g. /checkout"),
    method: z.string().optional().describe("Only this HTTP method, e.g. POST"),
    status: z.string().optional().describe('Only this status ("404") or class ("5xx")'),
    since: timeArg('Start of the range: ISO time or a duration ago like "10m" (default 10m; agents keep samples about an hour)').optional(),
    limit: z.number().int().min(1).max(trafficLimits.maxLimit).default(50).describe(`At most this many samples, newest first (1-${trafficLimits.maxLimit}, default 50)`),
  }).superRefine(sharedCheck((a) => checkTrafficFilters({ pathPrefix: a.path ?? "", method: a.method ?? "", status: a.status ?? "", limit: a.limit }), { path_prefix: "path" })),
  readOnly: true,
  async run(ctx, args) {
    const from = timeRange(ctx, args.since, undefined, "10m").since;
    const res = await trafficClient(ctx).queryTraffic({
      serviceName: args.service,
      pathPrefix: args.path ?? "",
      method: args.method ?? "",
      status: args.status ?? "",
      since: timestampFromDate(from),
      limit: args.limit,
    });
    const samples = res.samples.map(trafficRow);
    const filters = [args.path ? `path=${args.path}` : "", args.method ? `method=${args.method.toUpperCase()}` : "", args.status ? `status=${args.status}` : ""].filter(Boolean).join(", ");
    const kept = res.sampleRate < 0 ? "the agent has not reached the app's Coral SDK middleware yet" : `the SDK keeps ${share(res.sampleRate)} of requests and every 5xx`;
    const data = { service: args.service, agentId: res.agentId, since: iso(from), sampleRate: res.sampleRate, truncated: res.truncated, storedSamples: Number(res.storedSamples), samples };
    const head = `${args.service}: ${samples.length}${res.truncated ? "+" : ""} sampled request(s) since ${iso(from)}${filters ? ` (${filters})` : ""}, newest first; ${kept}.`;
    if (samples.length === 0)
      return {
        text:
          `${head}\nNone match. ${res.sampleRate < 0 ? "The app needs the SDK's request middleware (coral.instrumentServer(server), app.use(coral.express()) or app.register(coral.fastify)). " : ""}` +
          "Try a longer since, fewer filters, or coral_query_requests for the counts per route (which need no sampling).",
        data,
      };
    const lines = [head];
    const { shown, omitted } = fitLines(samples.map(sampleLine), textBudgetChars - head.length - 300);
    lines.push(...shown);
    if (res.truncated || omitted > 0)
      lines.push(`More samples match${omitted > 0 ? ` (${omitted} of this answer not shown to keep it short)` : ""}: narrow path/method/status or since, or lower limit.`);
    lines.push("One in full (headers and bodies): coral_get_traffic_sample id=<id>.");
    return { text: lines.join("\n"), data };
  },
});

/** A body for the model: its text (base64 when binary) up to `max` characters, and what was cut where. */
function bodyLines(title: string, body: string, encoding: string, truncated: boolean, size: number, max: number): string[] {
  if (size === 0) return [`${title}: none.`];
  const cut = body.length > max;
  return [
    `${title} (${size} bytes${truncated ? `, the SDK kept the first ${encoding === "base64" ? Buffer.from(body, "base64").length : Buffer.byteLength(body)}` : ""}${encoding === "base64" ? ", binary, base64" : ""}):`,
    cut ? `${body.slice(0, max)}… (${body.length - max} more characters not shown here)` : body,
  ];
}

export const getTrafficSampleTool = defineTool({
  name: "coral_get_traffic_sample",
  title: "One sampled request in full",
  description:
    "One request the app's Coral SDK sampled, with its response: method, path, route, status, duration, request and response headers and bodies " +
    "(bodies up to the SDK's size limit; authorization, cookies and configured headers arrive redacted). Take the id from coral_query_traffic.",
  inputSchema: toolArgs({
    id: z
      .string(need('a sample id like "api.0a1b2c3d4e5f6a7b", from coral_query_traffic'))
      .refine((v) => trafficSampleService(v) !== undefined, { message: 'Must be a sample id "<service>.<hex>", as coral_query_traffic lists it' })
      .describe("The sample id, from coral_query_traffic"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await trafficClient(ctx).getTrafficSample({ id: args.id });
    if (!res.sample) throw new ToolError(`the colony answered no sample for ${args.id}`, "not_found");
    const j = trafficSampleJson(res.sample);
    const headers = (list: { name: string; value: string }[]) => [
      ...(list.length ? list.slice(0, maxHeaders).map((h) => `  ${h.name}: ${clip(h.value, 300)}`) : ["  (none)"]),
      ...(list.length > maxHeaders ? [`  … ${list.length - maxHeaders} more header(s) not shown`] : []),
    ];
    const lines = [
      `${j.method} ${j.path} (route ${j.route}) → ${j.status} in ${num(j.durationMs)} ms at ${j.time.replace(/\.000Z$/, "Z")}, service ${res.serviceName}, kept because ${j.reason === "error" ? "it is a 5xx" : "it was sampled"}; id ${j.id}.`,
      "Request headers:",
      ...headers(j.requestHeaders),
    ];
    const responseHead = ["Response headers:", ...headers(j.responseHeaders)];
    // What is left of the budget, shared by the two bodies.
    const room = Math.max(200, Math.floor((textBudgetChars - [...lines, ...responseHead].join("\n").length - 400) / 2));
    lines.push(...bodyLines("Request body", j.requestBody, j.requestBodyEncoding, j.requestBodyTruncated, j.requestBodySize, room));
    lines.push(...responseHead);
    lines.push(...bodyLines("Response body", j.responseBody, j.responseBodyEncoding, j.responseBodyTruncated, j.responseBodySize, room));
    return { text: lines.join("\n"), data: { service: res.serviceName, agentId: res.agentId, ...j } };
  },
});
