// Start-up failures a person can act on: what is wrong, and what to do.

/** Another agent already holds this data folder (its local store is locked). */
export class AgentAlreadyRunningError extends Error {
  override name = "AgentAlreadyRunningError";
  /** A conflict with what runs here: the CLI exits with its usage/conflict code. */
  readonly exitCode = 2;
  constructor(
    readonly serviceName: string,
    readonly pid: number | null,
    readonly dataDir: string,
  ) {
    super(
      `an agent named ${serviceName} is already running here (${pid ? `pid ${pid}` : "its process holds the lock"}, data ${dataDir}); stop it${pid ? ` (kill ${pid})` : ""} or choose another name (coral connect <name>) or --data-dir`,
    );
  }
}

/**
 * The agent's SQLite store refuses a second opener: 'cannot open the agent
 * store …: could not set lock: another agent holds it (PID 1234)'; an earlier
 * agent's DuckDB file, met while importing it, says 'Could not set lock on
 * file "…": Conflicting lock is held in /usr/bin/node (PID 1234)'. The pid
 * from the message, or from the agent.pid file a daemon leaves, or null.
 */
export function lockHolder(err: unknown, pidFileText?: string): { locked: boolean; pid: number | null } {
  const message = err instanceof Error ? err.message : String(err);
  if (!/could not set lock|conflicting lock/i.test(message)) return { locked: false, pid: null };
  const fromMessage = /\(PID (\d+)\)/i.exec(message);
  if (fromMessage) return { locked: true, pid: Number(fromMessage[1]) };
  const fromFile = Number(pidFileText?.trim());
  return { locked: true, pid: Number.isInteger(fromFile) && fromFile > 1 ? fromFile : null };
}
