// The agent side of a logpoint in a process of its own, for the SIGKILL test:
// a logpoint on `file:line` (argv[3]) with `--expr` argv[4] in the pid given
// (2 s duration, 1 s watchdog margin); prints "attached", then "checked" once
// the first hit was checked and the recording breakpoint set, and waits to be killed.
import { NodeLineSession } from "../line-session.ts";

const s = await NodeLineSession.start({
  id: "node-test-logpoint-killed",
  pid: Number(process.argv[2]),
  kind: "logpoint",
  location: process.argv[3]!,
  expression: process.argv[4]!,
  durationMs: 2000,
  watchdogMarginMs: 1000,
});
console.log(`attached ${s.program.function.name}`);
const timer = setInterval(() => {
  if (s.checked) {
    console.log("checked");
    clearInterval(timer);
  }
}, 10);
// Kept alive until the test kills it (within its 2 s).
setInterval(() => undefined, 1000);
