// Durable Object methods return results rather than throw, so the Connect
// code survives the RPC boundary exactly.
import { Code, ConnectError } from "@connectrpc/connect";

export type Result<T> = { ok: true; value: T } | { ok: false; code: Code; message: string };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(code: Code, message: string): Result<T> => ({ ok: false, code, message });

export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new ConnectError(result.message, result.code);
}
