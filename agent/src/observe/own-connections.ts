// The agent's own connections to the services it observes (health probes,
// metric scrapes), by their local endpoint: the kernel tracer reports the
// services' accepts of them like any other, and they are not the app's
// traffic. Left in, every probe counted as an inbound connection from the
// agent's address (an edge in the topology, 12 a minute at 5 s probes) and
// made that service read its process tree and sockets again.
import type { Socket } from "node:net";

/**
 * How long an endpoint is remembered after its connection was made: the
 * accept's line comes within milliseconds, and a local client that gets the
 * same ephemeral port later must not be taken for the agent.
 */
const REMEMBER_MS = 5_000;

const endpoints = new Map<string, number>();

/** "127.0.0.1:54321" for a v4 address also when it is written v4-mapped ("::ffff:127.0.0.1"). */
function key(address: string, port: number): string {
  return `${address.startsWith("::ffff:") ? address.slice(7) : address}:${port}`;
}

/**
 * Remembers `socket`'s local endpoint (call right after creating it). For an
 * IP address Node issues connect() on the next tick: a tick queued now runs
 * right after it, before any I/O, so the endpoint is known before the
 * service's accept can be read from the kernel. A host name is looked up
 * first, and Node tries its addresses on handles of their own: its endpoint
 * is known only at 'connect', and an accept read before that still counts.
 */
export function markOwnConnection(socket: Socket): void {
  const bound = (): boolean => {
    const local = socket.address();
    if (!("port" in local) || local.port === 0) return false;
    remember(local.address, local.port);
    return true;
  };
  process.nextTick(() => bound() || socket.once("connect", bound));
}

function remember(address: string, port: number): void {
  const now = Date.now();
  // Forgotten in insertion order, which is age order.
  for (const [endpoint, at] of endpoints) {
    if (now - at < REMEMBER_MS) break;
    endpoints.delete(endpoint);
  }
  const endpoint = key(address, port);
  // Deleted first so that it moves to the end (a Map keeps a key's first place).
  endpoints.delete(endpoint);
  endpoints.set(endpoint, now);
}

/** Whether address:port is the local end of a connection the agent made lately. */
export function isOwnConnection(address: string, port: number): boolean {
  const at = endpoints.get(key(address, port));
  return at !== undefined && Date.now() - at < REMEMBER_MS;
}
