// What coral debug attach, logpoint and snapshot share once the colony has
// started the session: its folder, checked before anything is shown; the
// stream of its events until it ends (Ctrl+C detaches, a second Ctrl+C
// exits); and events.json with the session and every event.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { UprobeEventSchema, type UprobeEvent } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { DebugSessionSchema, type DebugService, type DebugSession } from "@coral/proto/gen/coral/colony/v1/debug_pb";

type DebugClient = Client<typeof DebugService>;

export const sessionIdPattern = /^[a-z0-9-]{1,80}$/;

/**
 * The folder events.json goes to: <output-dir>/<session id>. The id comes
 * from the colony's answer, so it must be a plain name (no "/", "..") that
 * stays inside the output folder, or nothing is written.
 */
export function sessionDir(outputDir: string, id: string): string {
  const base = resolve(outputDir);
  const dir = resolve(base, id);
  if (!sessionIdPattern.test(id) || dirname(dir) !== base)
    throw new Error(`the colony answered with a session id that is not a safe folder name (${JSON.stringify(id.slice(0, 80))}); nothing was written`);
  return dir;
}

export interface FollowedSession {
  /** As the stream last said it (ended). */
  session: DebugSession;
  events: UprobeEvent[];
  /** events.json */
  file: string;
}

/**
 * Follows a session the colony just started: checks its folder (detaching
 * it when the id is unsafe), calls `started`, streams its events to `print`
 * (with their 1-based index) until it ends, and saves them.
 */
export async function followSession(
  client: DebugClient,
  started: DebugSession,
  options: { outputDir: string; started?: (session: DebugSession) => void; print?: (event: UprobeEvent, session: DebugSession, index: number) => void },
): Promise<FollowedSession> {
  let session = started;
  // Checked now, before tracing: the id names a folder on this machine.
  let dir: string;
  try {
    dir = sessionDir(options.outputDir, session.sessionId);
  } catch (err) {
    await client.detachUprobe({ sessionId: session.sessionId }).catch(() => undefined);
    throw err;
  }
  options.started?.(session);
  // Ctrl+C detaches; the stream then ends with the session.
  let detaching = false;
  const onSigint = () => {
    if (detaching) process.exit(130);
    detaching = true;
    void client.detachUprobe({ sessionId: session.sessionId }).catch(() => undefined);
  };
  process.on("SIGINT", onSigint);
  const events: UprobeEvent[] = [];
  try {
    for await (const msg of client.streamUprobeEvents({ sessionId: session.sessionId })) {
      if (msg.session) session = msg.session;
      for (const e of msg.events) {
        events.push(e);
        options.print?.(e, session, events.length);
      }
      if (msg.done) break;
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
  await mkdir(dir, { recursive: true });
  const file = join(dir, "events.json");
  await writeFile(file, JSON.stringify({ session: toJson(DebugSessionSchema, session), events: events.map((e) => toJson(UprobeEventSchema, e)) }, null, 2) + "\n");
  return { session, events, file };
}
