// Keeps the colony registered with discovery: registers at start, then every
// interval (60 s by default) so the 300 s TTL never lapses; failures are
// retried with backoff and reported as the status GetStatus shows.
import { createConnectTransport } from "@connectrpc/connect-node";
import { backoffMs } from "@coral/common/async";
import { DiscoveryClient, type ColonyRegistrationFields, type IdentityKey } from "@coral/proto";

export interface RegistrationLoopOptions {
  discoveryUrl: string;
  fields: ColonyRegistrationFields;
  identity: IdentityKey;
  intervalMs: number;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export interface RegistrationLoop {
  status(): string;
  /** Resolves after the first attempt (successful or not). */
  firstAttempt: Promise<void>;
  stop(): Promise<void>;
}

export function startRegistrationLoop(options: RegistrationLoopOptions): RegistrationLoop {
  const client = new DiscoveryClient({
    transport: createConnectTransport({ baseUrl: options.discoveryUrl, httpVersion: "1.1" }),
    url: options.discoveryUrl,
    retry: { attempts: 3, baseDelayMs: 500, maxDelayMs: 5000 },
  });
  const abort = new AbortController();
  let status = "registering";
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let failures = 0;

  const attempt = async () => {
    try {
      const res = await client.registerColony(options.fields, options.identity, abort.signal);
      if (status !== "registered") options.log.info({ ttl_seconds: res.ttl }, "Successfully registered with discovery service");
      status = "registered";
      failures = 0;
    } catch (err) {
      if (abort.signal.aborted) return;
      failures++;
      status = `error: ${err instanceof Error ? err.message : String(err)}`;
      options.log.warn({ error: status.slice(7), attempt: failures }, "Registration with discovery failed; will retry");
    }
  };

  const schedule = () => {
    if (abort.signal.aborted) return;
    // After a failure retry sooner: 2 s doubling up to 64 s, never later than the interval.
    const delay = failures === 0 ? options.intervalMs : backoffMs(failures, 1000, Math.min(options.intervalMs, 64_000), { jitter: "none" });
    timer = setTimeout(() => {
      running = attempt().then(schedule);
    }, delay);
    timer.unref();
  };

  options.log.info({ mesh_id: options.fields.meshId, discovery: options.discoveryUrl }, "Starting registration manager");
  const firstAttempt = attempt().then(schedule);
  running = firstAttempt;
  return {
    status: () => status,
    firstAttempt,
    async stop() {
      abort.abort();
      if (timer) clearTimeout(timer);
      await running.catch(() => undefined);
    },
  };
}
