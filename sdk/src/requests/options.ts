/** Settings of the request middleware and traffic samples (coral.init({ requests })). */
import { checkSampleRate } from "./sampler.ts";
import { defaultQueueBounds, type QueueBounds } from "./queue.ts";

export interface RequestOptions {
  /** Share of requests kept as traffic samples, 0..1 (default 0.1); every 5xx is kept whatever it is. */
  sampleRate?: number;
  /** Bytes of each body kept per sample (default 4096); longer bodies are cut and marked truncated. */
  maxBodyBytes?: number;
  /** More header names to redact (authorization, cookie, set-cookie and proxy-authorization always are). */
  redactHeaders?: string[];
  /** Samples waiting for the agent at most (default 1000 and 8 MiB); beyond, the oldest are dropped. */
  queue?: Partial<QueueBounds>;
  /** Distinct method+route pairs (default 100); the rest are counted as route "other". */
  routeCap?: number;
  /** Keep traffic samples at all (default true); RED aggregates are always kept. */
  samples?: boolean;
}

export interface ResolvedRequestOptions {
  sampleRate: number;
  maxBodyBytes: number;
  redactHeaders: string[];
  queue: QueueBounds;
  routeCap: number;
  samples: boolean;
}

const maxBodyLimit = 1024 * 1024;

export function resolveRequestOptions(o: RequestOptions = {}): ResolvedRequestOptions {
  const maxBodyBytes = o.maxBodyBytes ?? 4096;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0 || maxBodyBytes > maxBodyLimit)
    throw new RangeError(`requests.maxBodyBytes: must be an integer from 0 to ${maxBodyLimit}, got ${String(maxBodyBytes)}`);
  const routeCap = o.routeCap ?? 100;
  if (!Number.isSafeInteger(routeCap) || routeCap < 1) throw new RangeError(`requests.routeCap: must be a positive integer, got ${String(routeCap)}`);
  return {
    sampleRate: checkSampleRate(o.sampleRate ?? 0.1, "requests.sampleRate"),
    maxBodyBytes,
    redactHeaders: o.redactHeaders ?? [],
    queue: { ...defaultQueueBounds, ...o.queue },
    routeCap,
    samples: o.samples ?? true,
  };
}
