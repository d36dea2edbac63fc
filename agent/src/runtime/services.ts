// The services one agent observes: `name:port[/health-path]` as the upstream
// CLI writes them, checked as a set (one name, one port, each once).

export interface ServiceSpec {
  name: string;
  port: number;
  /** An http(s) URL to GET, or tcp://host:port; default: is the port still listening. */
  healthUrl?: string;
  /** A Prometheus endpoint to scrape. */
  metricsUrl?: string;
  tags?: Record<string, string>;
  /** The app's Coral SDK port; default: found from the SDK's announcement. */
  sdkPort?: number;
  /** false: coral exec is refused for this service (default allowed, unless the agent's --no-exec). */
  exec?: boolean;
}

export class ServiceSpecError extends Error {
  override name = "ServiceSpecError";
}

const namePattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkServiceName(name: string): string {
  if (!namePattern.test(name)) throw new ServiceSpecError(`"${name}" must be lowercase letters, digits and inner hyphens (at most 63), e.g. api`);
  return name;
}

export function checkServicePort(port: unknown, what = "port"): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) throw new ServiceSpecError(`${what} must be a port from 1 to 65535`);
  return port;
}

const endpointPattern = /^(https?|tcp):\/\/\S+$/;

/** An endpoint the agent may be given: an http(s):// URL to GET, or tcp://host:port. */
export function isEndpointUrl(url: string): boolean {
  return endpointPattern.test(url);
}

/** A health check given as a path on the service's port (`/health`) or as an endpoint URL. */
export function healthUrlFor(health: string, port: number): string {
  if (health.startsWith("/")) return `http://127.0.0.1:${port}${health}`;
  if (isEndpointUrl(health)) return health;
  throw new ServiceSpecError(`health "${health}" must be a path (/health) or an http(s):// or tcp:// URL`);
}

/** `api:3001` or `store:3002/health` (the health check becomes http://127.0.0.1:3002/health). */
export function parseServiceSpec(text: string): ServiceSpec {
  const m = /^([^:/\s]+):(\d{1,5})(\/\S*)?$/.exec(text.trim());
  if (!m) throw new ServiceSpecError(`"${text}" is not name:port[/health-path], e.g. api:3001 or store:3002/health`);
  const name = checkServiceName(m[1]!);
  const port = checkServicePort(Number(m[2]), `"${text}": the port`);
  const spec: ServiceSpec = { name, port };
  if (m[3]) spec.healthUrl = healthUrlFor(m[3], port);
  return spec;
}

/** The same set, refused when two services share a name or a port. */
export function checkServiceSet(specs: readonly ServiceSpec[]): ServiceSpec[] {
  const byName = new Map<string, ServiceSpec>();
  const byPort = new Map<number, ServiceSpec>();
  for (const s of specs) {
    checkServiceName(s.name);
    checkServicePort(s.port, `${s.name}: the port`);
    if (byName.has(s.name)) throw new ServiceSpecError(`the service "${s.name}" is named twice; each service once`);
    const other = byPort.get(s.port);
    if (other) throw new ServiceSpecError(`"${s.name}" and "${other.name}" both name port ${s.port}; one service per port`);
    byName.set(s.name, s);
    byPort.set(s.port, s);
  }
  return [...specs];
}

/** The changes that turn `from` into `to`: services to stop, to start, and to restart with other settings. */
export function diffServices(from: readonly ServiceSpec[], to: readonly ServiceSpec[]): { remove: string[]; add: ServiceSpec[]; change: ServiceSpec[] } {
  const before = new Map(from.map((s) => [s.name, s]));
  const after = new Map(to.map((s) => [s.name, s]));
  const same = (a: ServiceSpec, b: ServiceSpec) => JSON.stringify(normal(a)) === JSON.stringify(normal(b));
  return {
    remove: [...before.keys()].filter((n) => !after.has(n)),
    add: to.filter((s) => !before.has(s.name)),
    change: to.filter((s) => before.has(s.name) && !same(before.get(s.name)!, s)),
  };
}

function normal(s: ServiceSpec) {
  return { name: s.name, port: s.port, healthUrl: s.healthUrl ?? "", metricsUrl: s.metricsUrl ?? "", sdkPort: s.sdkPort ?? 0, tags: Object.entries(s.tags ?? {}).sort() };
}
