/**
 * Routes from request targets: the query and fragment dropped, identifiers
 * replaced by placeholders (`/users/123` → `/users/{id}`), and a cap on the
 * distinct method+route pairs of a service (the rest are counted as `other`),
 * so that cardinality stays bounded whatever clients send. Shared by the
 * agent's eBPF tracer and the SDK's request middleware (runtime-neutral: the
 * SDK depends on @coral/proto only), so both name routes alike.
 */

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const digitsRe = /^\d+$/;
const hexRe = /^[0-9a-f]{8,}$/i;
const hasDigitRe = /\d/;
const tokenRe = /^[A-Za-z0-9_~=+.%-]{24,}$/;

/** The route a cap sends everything beyond it to. */
export const OTHER_ROUTE = "other";
/** Default distinct method+route pairs per service. */
export const DEFAULT_ROUTE_CAP = 100;
/** Longer normalised routes are counted as `other` (metric names are at most 256 characters). */
export const MAX_ROUTE_LENGTH = 200;

function segment(s: string): string {
  if (s === "") return s;
  if (digitsRe.test(s)) return "{id}";
  if (uuidRe.test(s)) return "{uuid}";
  if (hexRe.test(s) && hasDigitRe.test(s)) return "{hex}";
  if (tokenRe.test(s) && hasDigitRe.test(s)) return "{token}";
  return s;
}

/** `/users/123?x=1` → `/users/{id}`; absolute-form targets lose scheme and host. */
export function normaliseRoute(target: string): string {
  let path = target;
  const abs = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(path);
  if (abs) path = path.slice(abs[0].length) || "/";
  const cut = path.search(/[?#]/);
  if (cut >= 0) path = path.slice(0, cut);
  if (path === "*") return path;
  if (path === "") return "/";
  const route = path.split("/").map(segment).join("/");
  return route.length > MAX_ROUTE_LENGTH ? OTHER_ROUTE : route;
}

/** Remembers the first `cap` method+route pairs; later new ones become `other`. */
export class RouteCap {
  readonly #known = new Set<string>();
  #overflow = 0;

  constructor(readonly cap: number = DEFAULT_ROUTE_CAP) {}

  /** The route to count `route` under (itself, or `other` once the cap is reached). */
  route(method: string, route: string): string {
    if (route === OTHER_ROUTE) {
      this.#overflow++;
      return route;
    }
    const key = `${method} ${route}`;
    if (this.#known.has(key)) return route;
    if (this.#known.size < this.cap) {
      this.#known.add(key);
      return route;
    }
    this.#overflow++;
    return OTHER_ROUTE;
  }

  /** Distinct method+route pairs kept. */
  size(): number {
    return this.#known.size;
  }

  /** Requests counted as `other`. */
  overflow(): number {
    return this.#overflow;
  }
}
