// Logging with pino. The default "console" format prints the seed's
// `INF message key=value` lines; `json` keeps pino's JSON lines for machines.
import { Writable } from "node:stream";
import pino, { type Logger } from "pino";

export type LogLevel = "debug" | "info" | "warn" | "error";
export const logLevels: readonly LogLevel[] = ["debug", "info", "warn", "error"];

const levelTags: Record<number, string> = { 10: "TRC", 20: "DBG", 30: "INF", 40: "WRN", 50: "ERR", 60: "FTL" };
const hidden = new Set(["level", "time", "msg", "pid", "hostname"]);

function formatValue(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

/** Turns one pino JSON line into `INF message key=value ...`. */
export function consoleLine(jsonLine: string): string {
  const entry = JSON.parse(jsonLine) as Record<string, unknown>;
  const fields = Object.entries(entry)
    .filter(([k]) => !hidden.has(k))
    .map(([k, v]) => `${k}=${formatValue(v)}`);
  return [levelTags[entry.level as number] ?? "INF", String(entry.msg ?? ""), ...fields].join(" ") + "\n";
}

export function createLogger(options: { level: LogLevel; format?: "console" | "json"; out?: NodeJS.WritableStream }): Logger {
  const out = options.out ?? process.stdout;
  if (options.format === "json") return pino({ level: options.level, base: undefined }, out);
  const console = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) out.write(consoleLine(line));
      done();
    },
  });
  return pino({ level: options.level, base: undefined }, console);
}
