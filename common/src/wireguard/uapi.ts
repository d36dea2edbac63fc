// A small client of WireGuard's cross-platform UAPI text protocol
// (https://www.wireguard.com/xplatform/), spoken over the unix socket that
// wireguard-go opens at /var/run/wireguard/<ifname>.sock.
//
//   get=1\n\n            → key=value lines, then errno=N\n\n
//   set=1\n<lines>\n     → errno=N\n\n
//
// The parse/format functions are pure; UapiClient does the socket I/O.
import { isIP } from "node:net";
import { connect } from "node:net";
import { keyFromHex, keyToHex, publicKeyOf } from "./keys.ts";

export const UAPI_SOCKET_DIR = "/var/run/wireguard";

export function uapiSocketPath(ifname: string, dir = UAPI_SOCKET_DIR): string {
  return `${dir}/${ifname}.sock`;
}

export interface PeerState {
  /** base64 public key. */
  publicKey: string;
  /** "ip:port" or "[ip6]:port"; null when unknown. */
  endpoint: string | null;
  /** CIDRs, e.g. "10.42.0.2/32". */
  allowedIps: string[];
  lastHandshakeTimeSec: number;
  lastHandshakeTimeNsec: number;
  /** The last handshake as a Date, or null when there has been none. */
  lastHandshake: Date | null;
  rxBytes: number;
  txBytes: number;
  /** Seconds; 0 means off. */
  persistentKeepaliveInterval: number;
  hasPresharedKey: boolean;
  protocolVersion: number | null;
}

export interface DeviceState {
  hasPrivateKey: boolean;
  /** base64 public key derived from the device's private key; null without one. */
  publicKey: string | null;
  listenPort: number | null;
  fwmark: number | null;
  peers: PeerState[];
}

export interface DeviceConfig {
  /** base64 private key; null removes it. */
  privateKey?: string | null;
  /** UDP port; 0 picks a random one. */
  listenPort?: number;
  /** 0 removes it. */
  fwmark?: number;
  /** Removes every existing peer before the peers of this request are applied. */
  replacePeers?: boolean;
}

export interface PeerConfig {
  /** base64 public key. */
  publicKey: string;
  /** "ip:port" or "[ip6]:port"; numeric addresses only (the UAPI does not resolve names). */
  endpoint?: string;
  allowedIps?: string[];
  /** Seconds; 0 turns it off. */
  persistentKeepalive?: number;
  /** Replace the peer's allowed IPs instead of adding to them. Defaults to true. */
  replaceAllowedIps?: boolean;
  /** base64 preshared key; null removes it. */
  presharedKey?: string | null;
  /** Only change an existing peer; never create one. */
  updateOnly?: boolean;
}

export interface SetRequest {
  device?: DeviceConfig;
  peers?: PeerConfig[];
  /** base64 public keys of peers to remove. */
  removePeers?: string[];
}

/** The device answered with errno=N (N ≠ 0). */
export class UapiError extends Error {
  readonly errno: number;
  readonly operation: "get" | "set";
  constructor(operation: "get" | "set", errno: number, detail?: string) {
    super(`WireGuard UAPI ${operation} failed with errno=${errno}${errnoMeaning(errno)}${detail ? `: ${detail}` : ""}`);
    this.name = "UapiError";
    this.errno = errno;
    this.operation = operation;
  }
}

/** The text did not follow the UAPI protocol. */
export class UapiProtocolError extends Error {
  constructor(message: string) {
    super(`WireGuard UAPI protocol error: ${message}`);
    this.name = "UapiProtocolError";
  }
}

// wireguard-go answers with negative errnos (ipc.IpcError codes); others may not.
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM (operation not permitted)",
  5: "EIO (I/O error)",
  22: "EINVAL (invalid value in the request)",
  48: "EADDRINUSE (port in use)",
  95: "EOPNOTSUPP (unsupported key)",
  98: "EADDRINUSE (UDP port in use)",
  71: "EPROTO (protocol error in the request)",
};

function errnoMeaning(errno: number): string {
  const name = ERRNO_NAMES[Math.abs(errno)];
  return name ? ` ${name}` : "";
}

/** True when err is a UAPI error that means "the listen port is in use". */
export function isPortInUse(err: unknown): boolean {
  return err instanceof UapiError && Math.abs(err.errno) === 98;
}

// ---------------------------------------------------------------- parsing

interface Pair {
  key: string;
  value: string;
  line: number;
}

function splitPairs(text: string): Pair[] {
  const body = text.endsWith("\n\n") ? text.slice(0, -2) : null;
  if (body === null) throw new UapiProtocolError("response does not end with an empty line");
  if (body === "") return [];
  return body.split("\n").map((raw, i) => {
    const eq = raw.indexOf("=");
    if (eq <= 0) throw new UapiProtocolError(`line ${i + 1} is not key=value: ${JSON.stringify(raw)}`);
    return { key: raw.slice(0, eq), value: raw.slice(eq + 1), line: i + 1 };
  });
}

function int(p: Pair, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^-?\d+$/.test(p.value)) throw new UapiProtocolError(`line ${p.line}: ${p.key} is not an integer: ${JSON.stringify(p.value)}`);
  const n = Number(p.value);
  if (!Number.isSafeInteger(n) || n > max) throw new UapiProtocolError(`line ${p.line}: ${p.key} is out of range: ${p.value}`);
  return n;
}

/** Takes the trailing errno=N off a response; throws UapiError when N ≠ 0. */
function takeErrno(pairs: Pair[], operation: "get" | "set"): Pair[] {
  const last = pairs[pairs.length - 1];
  if (!last || last.key !== "errno") throw new UapiProtocolError(`${operation} response does not end with errno=N`);
  const errno = int(last);
  if (errno !== 0) throw new UapiError(operation, errno);
  return pairs.slice(0, -1);
}

/** Parses the answer to get=1 (including its errno line and final empty line). */
export function parseGetResponse(text: string): DeviceState {
  const pairs = takeErrno(splitPairs(text), "get");
  const state: DeviceState = { hasPrivateKey: false, publicKey: null, listenPort: null, fwmark: null, peers: [] };
  let peer: PeerState | null = null;
  for (const p of pairs) {
    if (p.key === "public_key") {
      peer = {
        publicKey: keyFromHex(p.value, `line ${p.line}: public_key`),
        endpoint: null,
        allowedIps: [],
        lastHandshakeTimeSec: 0,
        lastHandshakeTimeNsec: 0,
        lastHandshake: null,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepaliveInterval: 0,
        hasPresharedKey: false,
        protocolVersion: null,
      };
      state.peers.push(peer);
      continue;
    }
    if (peer === null) {
      switch (p.key) {
        case "private_key":
          state.hasPrivateKey = !/^0*$/.test(p.value);
          state.publicKey = state.hasPrivateKey ? publicKeyOf(keyFromHex(p.value, `line ${p.line}: private_key`)) : null;
          break;
        case "listen_port":
          state.listenPort = int(p, 65535);
          break;
        case "fwmark":
          state.fwmark = int(p);
          break;
        default:
          // Unknown device keys are ignored, so newer implementations still parse.
          break;
      }
      continue;
    }
    switch (p.key) {
      case "endpoint":
        peer.endpoint = p.value === "" ? null : p.value;
        break;
      case "allowed_ip":
        peer.allowedIps.push(p.value);
        break;
      case "last_handshake_time_sec":
        peer.lastHandshakeTimeSec = int(p);
        break;
      case "last_handshake_time_nsec":
        peer.lastHandshakeTimeNsec = int(p);
        break;
      case "rx_bytes":
        peer.rxBytes = int(p);
        break;
      case "tx_bytes":
        peer.txBytes = int(p);
        break;
      case "persistent_keepalive_interval":
        peer.persistentKeepaliveInterval = int(p, 65535);
        break;
      case "preshared_key":
        peer.hasPresharedKey = !/^0*$/.test(p.value);
        break;
      case "protocol_version":
        peer.protocolVersion = int(p);
        break;
      default:
        break;
    }
  }
  for (const peer of state.peers) {
    if (peer.lastHandshakeTimeSec !== 0 || peer.lastHandshakeTimeNsec !== 0) {
      peer.lastHandshake = new Date(peer.lastHandshakeTimeSec * 1000 + Math.floor(peer.lastHandshakeTimeNsec / 1e6));
    }
  }
  return state;
}

/** Parses the answer to set=1; throws UapiError on a non-zero errno. */
export function parseSetResponse(text: string): void {
  const rest = takeErrno(splitPairs(text), "set");
  if (rest.length > 0) throw new UapiProtocolError(`unexpected lines before errno in set response: ${rest.map((p) => p.key).join(", ")}`);
}

// ---------------------------------------------------------------- formatting

function port(value: unknown, what: string, min = 0): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > 65535) {
    throw new RangeError(`${what} must be an integer from ${min} to 65535, got ${String(value)}`);
  }
  return value;
}

/** Validates "ip:port" / "[ip6]:port" (numeric only); returns it unchanged. */
export function checkEndpoint(endpoint: string): string {
  const m = typeof endpoint === "string" ? /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(endpoint) : null;
  const host = m?.[1] ?? m?.[2];
  const ok = m && host && (m[1] ? isIP(m[1]) === 6 : isIP(m[2] ?? "") === 4) && Number(m[3]) >= 1 && Number(m[3]) <= 65535;
  if (!ok) {
    throw new TypeError(`endpoint must be "ipv4:port" or "[ipv6]:port" with a numeric address, got ${JSON.stringify(endpoint)}`);
  }
  return endpoint;
}

/** Validates a CIDR such as "10.42.0.2/32" or "fd42::2/128"; returns it unchanged. */
export function checkCidr(cidr: string, what = "allowed IP"): string {
  const m = typeof cidr === "string" ? /^([^/]+)\/(\d{1,3})$/.exec(cidr) : null;
  const family = m ? isIP(m[1] ?? "") : 0;
  const bits = m ? Number(m[2]) : -1;
  if (!m || family === 0 || bits > (family === 4 ? 32 : 128)) {
    throw new TypeError(`${what} must be a CIDR like "10.42.0.2/32" or "fd42::2/128", got ${JSON.stringify(cidr)}`);
  }
  return cidr;
}

/** The lines (without set=1 and the final empty line) that configure a device and peers. */
export function formatSetLines(req: SetRequest): string[] {
  const lines: string[] = [];
  const d = req.device;
  if (d) {
    if (d.privateKey !== undefined) {
      lines.push(`private_key=${d.privateKey === null ? "0".repeat(64) : keyToHex(d.privateKey, "private key")}`);
    }
    if (d.listenPort !== undefined) lines.push(`listen_port=${port(d.listenPort, "listenPort")}`);
    if (d.fwmark !== undefined) {
      if (!Number.isInteger(d.fwmark) || d.fwmark < 0 || d.fwmark > 0xffffffff) throw new RangeError(`fwmark must be a 32-bit unsigned integer, got ${d.fwmark}`);
      lines.push(`fwmark=${d.fwmark}`);
    }
    if (d.replacePeers) lines.push("replace_peers=true");
  }
  for (const p of req.peers ?? []) {
    lines.push(`public_key=${keyToHex(p.publicKey, "peer public key")}`);
    if (p.updateOnly) lines.push("update_only=true");
    if (p.presharedKey !== undefined) {
      lines.push(`preshared_key=${p.presharedKey === null ? "0".repeat(64) : keyToHex(p.presharedKey, "preshared key")}`);
    }
    if (p.endpoint !== undefined) lines.push(`endpoint=${checkEndpoint(p.endpoint)}`);
    if (p.persistentKeepalive !== undefined) lines.push(`persistent_keepalive_interval=${port(p.persistentKeepalive, "persistentKeepalive")}`);
    if (p.allowedIps !== undefined || p.replaceAllowedIps === true) {
      if (p.replaceAllowedIps ?? true) lines.push("replace_allowed_ips=true");
      for (const cidr of p.allowedIps ?? []) lines.push(`allowed_ip=${checkCidr(cidr)}`);
    }
  }
  for (const key of req.removePeers ?? []) {
    lines.push(`public_key=${keyToHex(key, "peer public key")}`, "remove=true");
  }
  return lines;
}

/** The full set=1 request text. */
export function formatSetRequest(req: SetRequest): string {
  const lines = formatSetLines(req);
  return `set=1\n${lines.map((l) => `${l}\n`).join("")}\n`;
}

export const GET_REQUEST = "get=1\n\n";

// ---------------------------------------------------------------- client

export interface UapiClientOptions {
  /** Directory of the UAPI sockets; defaults to /var/run/wireguard. */
  socketDir?: string;
  /** Full socket path; overrides socketDir. */
  socketPath?: string;
  /** Per-request timeout; default 5 s. */
  timeoutMs?: number;
}

/** Speaks the UAPI to one interface; every request uses a fresh connection. */
export class UapiClient {
  readonly ifname: string;
  readonly socketPath: string;
  readonly timeoutMs: number;

  constructor(ifname: string, options: UapiClientOptions = {}) {
    this.ifname = ifname;
    this.socketPath = options.socketPath ?? uapiSocketPath(ifname, options.socketDir);
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  async get(): Promise<DeviceState> {
    return parseGetResponse(await this.request(GET_REQUEST, "get"));
  }

  async set(req: SetRequest): Promise<void> {
    parseSetResponse(await this.request(formatSetRequest(req), "set"));
  }

  async setDevice(config: DeviceConfig): Promise<void> {
    await this.set({ device: config });
  }

  /** Adds or updates a peer. allowedIps replace the peer's current ones unless replaceAllowedIps is false. */
  async setPeer(peer: PeerConfig): Promise<void> {
    await this.set({ peers: [peer] });
  }

  async removePeer(publicKey: string): Promise<void> {
    await this.set({ removePeers: [publicKey] });
  }

  /** Sends a raw request and returns the raw answer up to and including the final empty line. */
  request(text: string, operation: "get" | "set"): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = connect(this.socketPath);
      let buf = "";
      let done = false;
      const finish = (err: Error | null, value?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(value ?? "");
      };
      const timer = setTimeout(
        () => finish(new Error(`WireGuard UAPI ${operation} on ${this.socketPath} got no answer within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      sock.setEncoding("utf8");
      sock.on("connect", () => sock.write(text));
      sock.on("data", (chunk: string) => {
        buf += chunk;
        // The answer ends with errno=N and an empty line.
        const m = /(^|\n)errno=-?\d+\n\n/.exec(buf);
        if (m) finish(null, buf.slice(0, m.index + m[0].length));
      });
      sock.on("error", (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT" || err.code === "ECONNREFUSED") {
          finish(new Error(`WireGuard interface ${this.ifname} has no UAPI socket at ${this.socketPath} (${err.code}); is wireguard-go running for it?`, { cause: err }));
        } else {
          finish(new Error(`WireGuard UAPI ${operation} on ${this.socketPath} failed: ${err.message}`, { cause: err }));
        }
      });
      sock.on("close", () => {
        finish(
          new UapiProtocolError(
            buf === ""
              ? `${this.socketPath} closed the connection without an answer to ${operation} (the request was not understood)`
              : `${this.socketPath} closed the connection before errno=N; got ${JSON.stringify(buf.slice(0, 200))}`,
          ),
        );
      });
    });
  }
}
