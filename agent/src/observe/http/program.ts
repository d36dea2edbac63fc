/** bpf/http-requests.bt.tmpl filled in with integers only. */
import { readFileSync } from "node:fs";
import { BPF_DIR } from "../../debug/program.ts";

let template: string | undefined;

/** Bytes captured per read or write (bpftrace 0.17 allows str() up to 200 bytes, BPFTRACE_STRLEN, one of them the NUL). */
export const DEFAULT_CAPTURE_BYTES = 160;
export const MAX_CAPTURE_BYTES = 199;

export function httpRequestsProgram(opts: { pids: readonly number[]; markPid: number; captureBytes?: number }): string {
  const cap = opts.captureBytes ?? DEFAULT_CAPTURE_BYTES;
  const ints = [...opts.pids, opts.markPid, cap];
  if (!ints.every((n) => Number.isSafeInteger(n) && n > 0)) throw new TypeError("pids, markPid and captureBytes must be positive integers");
  if (cap > MAX_CAPTURE_BYTES) throw new RangeError(`captureBytes is at most ${MAX_CAPTURE_BYTES}`);
  template ??= readFileSync(`${BPF_DIR}http-requests.bt.tmpl`, "utf8");
  const seed = opts.pids.map((p) => `  @svc[${p}] = 1;`).join("\n");
  return template
    .replace("{{SEED}}", seed)
    .replaceAll("{{MARK_PID}}", String(opts.markPid))
    .replaceAll("{{CAP}}", String(cap));
}
