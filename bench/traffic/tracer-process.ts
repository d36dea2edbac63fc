// The request tracer in a process of its own, as in the agent (so its
// parsing does not slow the benchmark's client): started with the server's
// pid, it answers IPC messages with what it has seen.
//   → {type: "ready", bpftracePid} once running
//   ← {type: "seen", prefix}  → {type: "seen", count, durations (ms, for that prefix)}
//   ← {type: "status"}        → {type: "status", status}
import { HttpTracer, type ServedRequest } from "@coral/agent/observe/http";

const pid = Number(process.argv[2]);
const tracer = new HttpTracer({ pids: () => [pid] });
const seen: ServedRequest[] = [];
tracer.on("requests", (list) => {
  for (const r of list) seen.push(r);
});
const status = await tracer.start();
if (status.state !== "running") {
  process.send!({ type: "failed", reason: `the tracer is ${status.state}: ${status.reason}` });
  process.exit(1);
}
process.send!({ type: "ready", bpftracePid: status.bpftracePid });
process.on("message", (m: { type: string; prefix?: string }) => {
  if (m.type === "seen") {
    const match = seen.filter((r) => r.status === 200 && r.route.startsWith(m.prefix!));
    process.send!({ type: "seen", count: match.length, durations: match.map((r) => r.durationMs) });
  } else if (m.type === "status") process.send!({ type: "status", status: tracer.status() });
});
process.on("disconnect", () => void tracer.stop().then(() => process.exit(0)));
