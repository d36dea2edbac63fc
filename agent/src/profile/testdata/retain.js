// A Node target for the heap profile tests (node-heap.test.ts): retainBig
// keeps about 50 MiB of arrays live, retainSmall about 1 MiB, and churn
// allocates as much as retainBig but keeps none of it. V8's sampling heap
// profiler sees only what is allocated while it samples, so each keeps a ring
// of arrays and replaces one every 20 ms: within a second of any moment, all
// that retainBig and retainSmall hold was allocated anew.
//
// Prints "retaining" once both rings are full, for the test to wait on.
"use strict";

const { setInterval } = globalThis;

const MB = 1024 * 1024;
const SLOTS = 50;
const big = new Array(SLOTS);
const small = new Array(SLOTS);
let slot = 0;
let sink = 0;

// Each allocates its own arrays (new Array(n).fill(x): one object of about
// 8n bytes on V8's heap), so it is the leaf of its allocation stack. The test
// runs this with --no-turbo-inlining: an optimized tick with them inlined
// would be the only frame V8 names.
const DOUBLES = MB / 8;

function retainBig(i) {
  big[i] = new Array(DOUBLES).fill(i + 0.5);
}

function retainSmall(i) {
  small[i] = new Array(Math.floor(DOUBLES / SLOTS)).fill(i + 0.5);
}

function churn(i) {
  const garbage = new Array(DOUBLES).fill(i + 0.5);
  sink += garbage.length;
}

function tick() {
  retainBig(slot);
  retainSmall(slot);
  churn(slot);
  slot = (slot + 1) % SLOTS;
  if (sink < 0) process.exit(1); // never: keeps churn's arrays used
}

for (let i = 0; i < SLOTS; i++) tick();
setInterval(tick, 20);
process.stdout.write("retaining\n");
