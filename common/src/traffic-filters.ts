/**
 * The filters of a traffic query and the SDK's sample rate, checked the same
 * way at every edge (CLI, colony, agent). Each check throws a RangeError
 * whose message names the field and says what is allowed.
 */
export const trafficLimits = { defaultLimit: 50, maxLimit: 1000, maxPathPrefix: 2048 } as const;

/** One status (404) or a class (5 = 5xx). */
export interface StatusFilter {
  kind: "exact" | "class";
  value: number;
}

export interface TrafficFilters {
  pathPrefix?: string;
  method?: string;
  status?: StatusFilter;
  limit: number;
}

export function parseStatusFilter(status: string): StatusFilter | undefined {
  const s = status.trim().toLowerCase();
  if (s === "") return undefined;
  if (/^[1-5]xx$/.test(s)) return { kind: "class", value: Number(s[0]) };
  if (/^[1-5]\d\d$/.test(s)) return { kind: "exact", value: Number(s) };
  throw new RangeError(`status: must be a status code from 100 to 599 ("404") or a class ("5xx"), got ${JSON.stringify(status.slice(0, 20))}`);
}

export function checkTrafficFilters(q: { pathPrefix: string; method: string; status: string; limit: number }): TrafficFilters {
  const limit = q.limit || trafficLimits.defaultLimit;
  if (!Number.isInteger(limit) || limit < 1 || limit > trafficLimits.maxLimit)
    throw new RangeError(`limit: must be from 1 to ${trafficLimits.maxLimit} samples, got ${q.limit}`);
  if (q.pathPrefix && (!q.pathPrefix.startsWith("/") || q.pathPrefix.length > trafficLimits.maxPathPrefix))
    throw new RangeError(`path_prefix: must start with "/" and be at most ${trafficLimits.maxPathPrefix} characters, got ${JSON.stringify(q.pathPrefix.slice(0, 40))}`);
  const method = q.method.trim().toUpperCase();
  if (method && !/^[A-Z]{1,16}$/.test(method)) throw new RangeError(`method: must be an HTTP method such as GET or POST, got ${JSON.stringify(q.method.slice(0, 20))}`);
  return { pathPrefix: q.pathPrefix || undefined, method: method || undefined, status: parseStatusFilter(q.status), limit };
}

export function checkSampleRate(rate: number): number {
  if (typeof rate !== "number" || !Number.isFinite(rate) || rate < 0 || rate > 1)
    throw new RangeError(`sample_rate: must be from 0 to 1 (0.05 keeps 5 % of requests; 5xx are always kept), got ${String(rate)}`);
  return rate;
}

/** Sample ids are "<service>.<hex>": the service they belong to, or undefined when the id is not one. */
export function trafficSampleService(id: string): string | undefined {
  const m = /^(.{1,128})\.([0-9a-f]{8,64})$/.exec(id);
  return m ? m[1] : undefined;
}
