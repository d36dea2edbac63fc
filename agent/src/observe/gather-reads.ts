/**
 * bpftrace writes an event a line, and a pipe read as data comes is one read
 * and one 'data' event per line: at thousands of events a second, that was
 * half a tracer's CPU. After each read the pipe is left alone `pauseMs`:
 * what comes meanwhile gathers in the stream's buffer and the pipe, and once
 * those are full bpftrace waits on its write while its perf buffer gathers
 * events, so both sides handle them in bulk. That caps reading at ~5 MB/s
 * (measured, 5 ms pauses): above `busyBytesPerSecond` reads go on as data
 * comes, since a stalled bpftrace loses events once its perf buffer is full.
 */
import type { Readable } from "node:stream";

export const DEFAULT_GATHER_MS = 5;
const busyBytesPerSecond = 4 * 1000 * 1000;
/** How often the rate is looked at. */
const rateWindowMs = 250;

export function gatherReads(stream: Readable, pauseMs = DEFAULT_GATHER_MS): void {
  if (pauseMs <= 0) return;
  let windowStart = Date.now();
  let windowBytes = 0;
  let busy = false;
  stream.on("data", (chunk: string | Buffer) => {
    windowBytes += chunk.length;
    const now = Date.now();
    if (now - windowStart >= rateWindowMs) {
      busy = (windowBytes * 1000) / (now - windowStart) >= busyBytesPerSecond;
      windowStart = now;
      windowBytes = 0;
    }
    if (busy || stream.isPaused()) return;
    stream.pause();
    // Not unref'd: while paused, this timer may be all that keeps the loop going to read the rest.
    setTimeout(() => stream.resume(), pauseMs);
  });
}
