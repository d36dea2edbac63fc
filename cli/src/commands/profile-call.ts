// An on-demand profile call as `coral profile cpu` and `coral profile heap`
// make it: Ctrl-C cancels it (on the agent too, through the call's signal),
// and for the codes where the agent's own words say what to do (no process,
// busy, start net/http/pprof…) those words are the error; anything else is
// explained like every remote command's error.
import { Code, ConnectError } from "@connectrpc/connect";
import { explainError, type ColonyTarget } from "./remote.ts";

export async function cancellableProfile<T>(
  call: (signal: AbortSignal) => Promise<T>,
  opts: { target: ColonyTarget; cancelled: string; agentWords: readonly Code[]; done(): void },
): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    return await call(abort.signal);
  } catch (err) {
    if (abort.signal.aborted) throw new Error(opts.cancelled);
    const ce = ConnectError.from(err);
    if (opts.agentWords.includes(ce.code)) throw new Error(ce.rawMessage);
    throw explainError(err, opts.target);
  } finally {
    process.off("SIGINT", onSigint);
    opts.done();
  }
}

/** Codes whose message, from the agent, tells a person what to do. */
export const agentWordCodes = [Code.FailedPrecondition, Code.ResourceExhausted, Code.AlreadyExists] as const;
