// The agent side of a session in a process of its own, for the SIGKILL test:
// attaches to `add` of the pid given (2 s duration, 1 s watchdog margin),
// prints "attached" and waits to be killed.
import { NodeFunctionSession } from "../session.ts";

const s = await NodeFunctionSession.start({ id: "node-test-killed", pid: Number(process.argv[2]), functionName: "add", durationMs: 2000, watchdogMarginMs: 1000 });
console.log(`attached ${s.program.function.name}`);
// Kept alive until the test kills it (within its 2 s).
setInterval(() => undefined, 1000);
