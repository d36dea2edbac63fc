/** Header values that never leave the app: replaced by "[redacted]" before a sample is handed over. */
export const REDACTED = "[redacted]";
export const defaultRedactedHeaders = ["authorization", "cookie", "set-cookie", "proxy-authorization"] as const;

export function redactionSet(extra: readonly string[] = []): ReadonlySet<string> {
  return new Set([...defaultRedactedHeaders, ...extra.map((n) => n.trim().toLowerCase()).filter(Boolean)]);
}

export interface HeaderLine {
  name: string;
  value: string;
}

/** Name/value pairs (Node's rawHeaders layout) with the secret ones redacted. */
export function redactPairs(raw: readonly string[], redact: ReadonlySet<string>): HeaderLine[] {
  const out: HeaderLine[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    out.push({ name, value: redact.has(name.toLowerCase()) ? REDACTED : raw[i + 1]! });
  }
  return out;
}

/** The header lines of a response head as written ("HTTP/1.1 200 OK\r\nName: value\r\n…"), as pairs. */
export function headPairs(head: string): string[] {
  const out: string[] = [];
  const lines = head.split("\r\n");
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    out.push(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return out;
}

/** res.getHeaders() as pairs (an array value is one line per element). */
export function objectPairs(headers: Record<string, number | string | readonly string[] | undefined>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value as readonly string[]) out.push(name, String(v));
    else out.push(name, String(value));
  }
  return out;
}
