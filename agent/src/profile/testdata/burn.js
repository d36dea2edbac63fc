// A CPU-bound Node target for the inspector profile tests (node-profile.test.ts),
// as burn.c is for eBPF: the main thread spends three quarters of its time in
// hotLoop and one quarter in warmLoop, returning to the event loop between rounds.
//
// A round lasts 0.618… (the golden ratio's fraction) of a period of the
// profiler's clock (argv[2] Hz, default 99), so successive samples fall at
// phases of the round spread as evenly as can be. Rounds are on wall-clock
// time, as V8's sampler is: a loop preempted by other work keeps both its
// time and the samples that fall in it.
//
// Prints "burning" once it runs, for the test to wait on.
"use strict";

const { performance, setImmediate } = globalThis;

const CHUNK = 20_000; // ~20 µs of work between clock reads, so reading the clock is a small share

function hotLoop(until) {
  let x = 0;
  while (performance.now() < until) for (let i = 0; i < CHUNK; i++) x = (x + i * i) % 1_000_003;
  return x;
}

function warmLoop(until) {
  let x = 0;
  while (performance.now() < until) for (let i = 0; i < CHUNK; i++) x = (x + i * 3) % 1_000_033;
  return x;
}

const hz = Number(process.argv[2]) || 99;
const roundMs = (1000 / hz) * 0.6180339887;
let t = performance.now();
let sum = 0;

// One round per turn of the event loop, as a server's work comes. The test
// runs this with --no-turbo-inlining: V8 names a function inlined into code
// optimized before the profiler started as its caller (round), which would
// hide the split the test measures.
function round() {
  sum += hotLoop(t + 0.75 * roundMs);
  sum += warmLoop(t + roundMs);
  // Rounds on a fixed grid: a loop that overshoots its end takes it from the next one.
  t += roundMs;
  if (sum < 0) process.exit(1); // never: keeps the loops' results used
  setImmediate(round);
}

process.stdout.write("burning\n");
round();
