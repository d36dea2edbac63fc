// The logging shape this module needs; a pino Logger fits it.
export interface NatsLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

const ignore = () => {};
export const silentLogger: NatsLogger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
