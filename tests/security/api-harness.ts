// Raw HTTP/1.1 against the colony's API port: the attacks need control that a
// Connect client does not give (a head without its body, a body without end,
// `Expect: 100-continue`), and answers read exactly as they come.
import { connect, type Socket } from "node:net";

export interface RawAnswer {
  /** Status lines in order: ["HTTP/1.1 100 Continue", "HTTP/1.1 401 Unauthorized"]. */
  statusLines: string[];
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The server closed the connection (after answering). */
  closedByServer: boolean;
  /** Body bytes handed to the socket before the server answered or closed (at most a chunk more than it took). */
  bodyBytesWritten: number;
  elapsedMs: number;
}

export interface RawRequest {
  path: string;
  headers: Record<string, string>;
  /** Bytes to send after the head (all at once), or none. */
  body?: Uint8Array;
  /** Keep sending chunked data of this size until the server answers or closes (up to `maxBytes`). */
  flood?: { chunkBytes: number; maxBytes: number };
  /** Give up after this long (ms). */
  timeoutMs?: number;
}

/**
 * Sends one request and waits for a complete answer; then up to
 * `closeWaitMs` for the server to close the connection (closedByServer).
 */
export function rawRequest(url: string, request: RawRequest & { closeWaitMs?: number }): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: hostname, port: Number(port) });
    let received = Buffer.alloc(0);
    let written = 0;
    let answer: RawAnswer | undefined;
    let closed = false;
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(closeWait);
      socket.destroy();
      if (err) reject(err);
      else resolve({ ...answer!, closedByServer: closed });
    };
    const deadline = setTimeout(
      () => done(new Error(`no complete answer within ${request.timeoutMs ?? 10_000} ms (got ${JSON.stringify(received.toString("latin1").slice(0, 200))})`)),
      request.timeoutMs ?? 10_000,
    );
    let closeWait: NodeJS.Timeout | undefined;

    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (answer) return;
      answer = parseAnswer(received, false, written, started);
      if (answer) closeWait = setTimeout(() => done(), request.closeWaitMs ?? 3_000);
    });
    const onClose = () => {
      closed = true;
      answer ??= parseAnswer(received, true, written, started);
      if (answer) done();
      else done(new Error(`the server closed without an answer (got ${JSON.stringify(received.toString("latin1").slice(0, 200))})`));
    };
    socket.on("end", onClose);
    socket.on("close", onClose);
    socket.on("error", () => undefined); // EPIPE/ECONNRESET once the server stops reading: expected

    const head =
      `POST ${request.path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
      Object.entries(request.headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("") +
      "\r\n";
    socket.write(head);
    if (request.body) {
      socket.write(request.body);
      written += request.body.byteLength;
    }
    if (request.flood) {
      const chunk = Buffer.alloc(request.flood.chunkBytes, 0x41);
      const frame = Buffer.concat([Buffer.from(`${chunk.byteLength.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
      const pump = () => {
        while (!answer && !closed && !socket.destroyed && written < request.flood!.maxBytes) {
          written += chunk.byteLength;
          if (!socket.write(frame)) return void socket.once("drain", pump);
        }
      };
      pump();
    }
  });
}

function parseAnswer(received: Buffer, closed: boolean, written: number, started: number): RawAnswer | undefined {
  const statusLines: string[] = [];
  let rest = received;
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const head = rest.subarray(0, end).toString("latin1").split("\r\n");
    statusLines.push(head[0]!);
    const status = Number(head[0]!.split(" ")[1]);
    rest = rest.subarray(end + 4);
    if (status === 100) continue;
    const headers = Object.fromEntries(
      head.slice(1).map((line) => {
        const i = line.indexOf(":");
        return [line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()];
      }),
    );
    const length = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
    if (length === undefined ? !closed : rest.byteLength < length) return undefined;
    const body = length === undefined ? rest : rest.subarray(0, length);
    return { statusLines, status, headers, body, closedByServer: closed, bodyBytesWritten: written, elapsedMs: Date.now() - started };
  }
}

/** Parses a Connect unary error body ({"code","message"}). */
export function connectError(answer: RawAnswer): { code: string; message: string } {
  return JSON.parse(answer.body.toString("utf8")) as { code: string; message: string };
}

/** Parses a Connect end-stream envelope's error (a streaming method's refusal). */
export function endStreamError(answer: RawAnswer): { code: string; message: string } | undefined {
  const body = answer.body;
  for (let offset = 0; offset + 5 <= body.byteLength; ) {
    const flags = body[offset]!;
    const length = body.readUInt32BE(offset + 1);
    const data = body.subarray(offset + 5, offset + 5 + length);
    if (flags & 0b10) return (JSON.parse(data.toString("utf8")) as { error?: { code: string; message: string } }).error;
    offset += 5 + length;
  }
  return undefined;
}
