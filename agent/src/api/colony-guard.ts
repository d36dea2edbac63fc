// The agent API's front door: decides from the request line and headers
// alone, before any body byte is read, whether a request may go on. A body
// announced over the cap gets 413; before the agent knows its colony's key,
// 503; without a fresh, unused signature by that key for this agent and path,
// 401. A refusal closes the connection with the body unread.
import { STATUS_CODES, type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { colonyCallHeader, colonyCallWindowMs, verifyColonyCall, type ColonyCallClaim } from "@coral/proto";
import { NonceLedger } from "@coral/common/nonce-ledger";

export interface ColonyGuardOptions {
  agentId: string;
  /** The pinned colony identity key (base64), or undefined before the agent knows it. */
  colonyPublicKey: () => string | undefined;
  maxBodyBytes: number;
  now?: () => number;
}

/** Called for a request whose headers passed, with what the colony signed. */
export type GuardedListener = (req: IncomingMessage, res: ServerResponse, claim: ColonyCallClaim) => void;

interface Refusal {
  status: number;
  code: "resource_exhausted" | "unavailable" | "unauthenticated";
  message: string;
}

// How long a refused connection stays open after the answer, unread, so the
// client reads the answer before the connection is reset under its upload.
const lingerMs = 2_000;

/**
 * Answers a Connect error (JSON) without reading the body: written on the
 * socket directly, since Node's response would drain the unread body before
 * closing. The socket is half-closed, left paused (the client's upload stops
 * at full buffers) and destroyed a moment later.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): void {
  const socket = req.socket;
  if (res.headersSent || socket.destroyed) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ code, message });
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`, "content-type: application/json", `content-length: ${Buffer.byteLength(body)}`, "connection: close"];
  socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), lingerMs).unref();
}

export function colonyGuard(options: ColonyGuardOptions, next: GuardedListener): RequestListener {
  const now = options.now ?? Date.now;
  const ledger = new NonceLedger(colonyCallWindowMs);

  async function check(req: IncomingMessage): Promise<Refusal | ColonyCallClaim> {
    const length = Number(req.headers["content-length"] ?? 0);
    if (length > options.maxBodyBytes)
      return { status: 413, code: "resource_exhausted", message: `request body of ${length} bytes is over this agent's limit of ${options.maxBodyBytes} bytes` };
    const key = options.colonyPublicKey();
    if (!key) return { status: 503, code: "unavailable", message: "this agent has not enrolled with its colony yet" };
    const header = req.headers[colonyCallHeader];
    const nowMs = now();
    const verified = await verifyColonyCall(key, Array.isArray(header) ? header[0] : header, {
      agentId: options.agentId,
      procedure: (req.url ?? "").split("?", 1)[0]!,
      nowMs,
    });
    if ("error" in verified) return { status: 401, code: "unauthenticated", message: verified.error };
    const verdict = ledger.use(verified.nonce, verified.timestampMs, nowMs);
    if (verdict === "replayed") return { status: 401, code: "unauthenticated", message: "this signature was already used: each colony call is signed afresh" };
    if (verdict === "full") return { status: 503, code: "unavailable", message: "too many colony calls in the last minutes; try again shortly" };
    return verified;
  }

  return function colonyGuard(req, res) {
    check(req).then(
      (result) => {
        if ("status" in result) return refuse(req, res, result.status, result.code, result.message);
        // A client that waits for "100 Continue" (see server.ts) gets it only now.
        if (/100-continue/i.test(req.headers.expect ?? "")) res.writeContinue();
        next(req, res, result);
      },
      () => refuse(req, res, 401, "unauthenticated", "the colony's signature could not be checked"),
    );
  };
}
