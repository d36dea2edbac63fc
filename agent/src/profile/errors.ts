// The ways a CPU or heap profile can fail, as a code the API edge maps to a Connect
// code (api/profile-service.ts) and a message a person can act on.
export type ProfileErrorCode =
  /** hz or duration out of range. */
  | "invalid_argument"
  /** The agent observes no process (nothing listens on its port yet). */
  | "no_process"
  /** The service's process exited before the profile could start. */
  | "process_exited"
  /** A profile of one of the set's processes is already running. */
  | "busy"
  | "bpftrace_missing"
  /** No permission to load BPF programs (root or CAP_BPF+CAP_PERFMON), or to mount tracefs. */
  | "no_permission"
  /** bpftrace failed to start or stopped before the end. */
  | "bpftrace_failed"
  /** The V8 inspector of a Node process could not be opened or used (the profiler falls back to eBPF for it). */
  | "inspector_failed"
  /** The caller went away (or the agent is stopping) before the profile ended. */
  | "cancelled"
  /** Heap: nothing serves a pprof heap profile where the agent looked (/debug/pprof/heap on the port). */
  | "no_pprof"
  /** Heap: the process's runtime has no heap profile here yet (e.g. Node). */
  | "unsupported"
  /** Heap: the pprof endpoint answered, but with something that is not a heap profile, or too late. */
  | "pprof_failed";

export class ProfileError extends Error {
  override name = "ProfileError";
  constructor(
    readonly code: ProfileErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
