/**
 * Routes from request targets: the query and fragment dropped, identifiers
 * replaced by placeholders (`/users/123` → `/users/{id}`), and a cap on the
 * distinct method+route pairs of a service (the rest are counted as `other`),
 * so that cardinality stays bounded whatever clients send. Shared by the
 * agent's eBPF tracer and the SDK's request middleware (runtime-neutral: the
 * SDK depends on @coral/proto only), so both name routes alike.
 */

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const absoluteRe = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/** The route a cap sends everything beyond it to. */
export const OTHER_ROUTE = "other";
/** Default distinct method+route pairs per service. */
export const DEFAULT_ROUTE_CAP = 100;
/** Longer normalised routes are counted as `other` (metric names are at most 256 characters). */
export const MAX_ROUTE_LENGTH = 200;

// Character classes of a path segment, one bit each, found in one pass
// (this runs for every request the SDK middleware or the eBPF tracer sees).
const DIGIT = 1;
const HEX_LETTER = 2;
const TOKEN = 4;
const OTHER_CHAR = 8;
const classes = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (ch >= "0" && ch <= "9") classes[c] = DIGIT;
  else if ((ch >= "a" && ch <= "f") || (ch >= "A" && ch <= "F")) classes[c] = HEX_LETTER;
  else if ((ch >= "a" && ch <= "z") || (ch >= "A" && ch <= "Z") || "_~=+.%-".includes(ch)) classes[c] = TOKEN;
  else classes[c] = OTHER_CHAR;
}

/**
 * The placeholder for path[from, to) if it is an identifier: all digits
 * `{id}`, a UUID `{uuid}`, 8+ hex characters with a digit `{hex}`, 24+ token
 * characters with a digit `{token}`; undefined if it is a name.
 */
function placeholder(path: string, from: number, to: number): string | undefined {
  const length = to - from;
  if (length === 0) return undefined;
  let seen = 0;
  for (let i = from; i < to; i++) {
    const c = path.charCodeAt(i);
    seen |= c < 128 ? classes[c]! : OTHER_CHAR;
  }
  if (seen === DIGIT) return "{id}";
  if (length === 36 && uuidRe.test(path.slice(from, to))) return "{uuid}";
  if ((seen & DIGIT) === 0) return undefined;
  if (length >= 8 && (seen & ~(DIGIT | HEX_LETTER)) === 0) return "{hex}";
  if (length >= 24 && (seen & OTHER_CHAR) === 0) return "{token}";
  return undefined;
}

/** `/users/123?x=1` → `/users/{id}`; absolute-form targets lose scheme and host. */
export function normaliseRoute(target: string): string {
  let start = 0;
  if (target.charCodeAt(0) !== 47 /* "/" */) {
    const abs = absoluteRe.exec(target);
    if (abs) start = abs[0].length;
  }
  let end = target.length;
  for (let i = start; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 63 /* "?" */ || c === 35 /* "#" */) end = i;
  }
  if (end === start) return "/";
  if (end - start === 1 && target.charCodeAt(start) === 42 /* "*" */) return "*";
  // Segment by segment; a new string only where a segment is replaced.
  let route = "";
  let copied = start;
  let from = start;
  while (from <= end) {
    let to = target.indexOf("/", from);
    if (to < 0 || to > end) to = end;
    const p = placeholder(target, from, to);
    if (p !== undefined) {
      route += target.slice(copied, from) + p;
      copied = to;
    }
    from = to + 1;
  }
  if (copied === start) route = target.slice(start, end);
  else route += target.slice(copied, end);
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
