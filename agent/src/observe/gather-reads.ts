/**
 * bpftrace writes an event a line, and a pipe read as data comes is one read
 * and one 'data' event per line: at thousands of events a second, that was
 * half a tracer's CPU. After each read the pipe is left alone `pauseMs`, so
 * the next read takes what gathered meanwhile; a full pipe only makes
 * bpftrace wait, while its perf buffer holds the events.
 */
import type { Readable } from "node:stream";

export const DEFAULT_GATHER_MS = 5;

export function gatherReads(stream: Readable, pauseMs = DEFAULT_GATHER_MS): void {
  if (pauseMs <= 0) return;
  stream.on("data", () => {
    if (stream.isPaused()) return;
    stream.pause();
    setTimeout(() => stream.resume(), pauseMs).unref();
  });
}
