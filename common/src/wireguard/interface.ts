// A userspace WireGuard interface: wireguard-go in the foreground as a child
// process (optionally inside a network namespace), configured through its UAPI
// socket, with addresses and link state set by iproute2.
import { spawn, execFile } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync, unlinkSync } from "node:fs";
import { delimiter, join } from "node:path";
import { connect } from "node:net";
import { PollTimeoutError, pollUntil, sleep } from "../async.ts";
import { publicKeyOf } from "./keys.ts";
import { UapiClient, UapiError, checkCidr, isPortInUse, uapiSocketPath, UAPI_SOCKET_DIR } from "./uapi.ts";
import type { DeviceState, PeerConfig } from "./uapi.ts";

export const INSTALL_COMMAND = "apt-get install -y --no-install-recommends wireguard-go wireguard-tools iproute2";
export const TUN_DEVICE = "/dev/net/tun";

export interface WireguardInterfaceOptions {
  /** Interface name, at most 15 characters; unique on the host (UAPI sockets are shared by all namespaces). */
  name: string;
  /** e.g. "10.42.0.1/16". */
  addressV4: string;
  /** e.g. "fd42::1/64". */
  addressV6?: string;
  /** UDP port; 0 picks one (read it back from listenPort after create). */
  listenPort: number;
  /** base64 private key. */
  privateKey: string;
  /** Network namespace (from `ip netns add`) to run the interface in. */
  netns?: string;
  /** Path or name of the wireguard-go binary; default "wireguard-go" on PATH. */
  binary?: string;
  /** How long to wait for the UAPI socket; default 10 s. */
  startTimeoutMs?: number;
  /** Directory of UAPI sockets; default /var/run/wireguard. */
  socketDir?: string;
}

/** Setup problem (not root, no TUN, binary missing, name in use, port in use …) with a clear message. */
export class WireguardSetupError extends Error {
  readonly code: "not-root" | "no-tun" | "binary-missing" | "iproute2-missing" | "bad-name" | "name-in-use" | "no-netns" | "port-in-use" | "start-failed" | "config-failed";
  constructor(code: WireguardSetupError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WireguardSetupError";
    this.code = code;
  }
}

const IFNAME = /^[A-Za-z0-9_=+.-]{1,15}$/;
const NETNS_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Finds an executable on PATH (or checks a path); null when missing. */
export function findExecutable(name: string): string | null {
  const candidates = name.includes("/") ? [name] : (process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

/** Why a userspace WireGuard interface cannot be created here, or null when it can. */
export function wireguardUnavailableReason(binary = "wireguard-go"): string | null {
  try {
    checkPrerequisites(binary);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Throws a WireguardSetupError unless root, /dev/net/tun, wireguard-go and ip are all present. */
export function checkPrerequisites(binary = "wireguard-go"): { binary: string; ip: string } {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new WireguardSetupError("not-root", `a WireGuard interface needs root (CAP_NET_ADMIN) to create a TUN device and assign addresses; running as uid ${process.getuid()}`);
  }
  if (!existsSync(TUN_DEVICE)) {
    throw new WireguardSetupError("no-tun", `no TUN device at ${TUN_DEVICE}; load the tun module (modprobe tun) or give the container the device (docker run --device /dev/net/tun --cap-add NET_ADMIN)`);
  }
  const wg = findExecutable(binary);
  if (!wg) {
    throw new WireguardSetupError("binary-missing", `${binary} not found on PATH; install it with: ${INSTALL_COMMAND}`);
  }
  const ip = findExecutable("ip");
  if (!ip) {
    throw new WireguardSetupError("iproute2-missing", `the ip command (iproute2) was not found on PATH; install it with: ${INSTALL_COMMAND}`);
  }
  return { binary: wg, ip };
}

/** Runs a command; resolves stdout, rejects with stderr in the message. */
export function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || stdout || err.message).trim();
        reject(new Error(`${cmd} ${args.join(" ")} failed: ${detail}`, { cause: err }));
      } else {
        resolve(stdout);
      }
    });
  });
}

function ipArgs(netns: string | undefined, args: string[]): string[] {
  return netns ? ["-n", netns, ...args] : args;
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

export class WireguardInterface {
  readonly name: string;
  readonly netns: string | undefined;
  readonly publicKey: string;
  readonly addressV4: string;
  readonly addressV6: string | undefined;
  readonly uapi: UapiClient;
  /** The configured listen port (the actual one when 0 was asked for). */
  listenPort: number;

  private readonly child: ChildProcess;
  private readonly output: string[];
  private exited: Promise<void>;
  private hasExited = false;
  private closing: Promise<void> | null = null;

  private constructor(opts: WireguardInterfaceOptions, child: ChildProcess, output: string[], uapi: UapiClient) {
    this.name = opts.name;
    this.netns = opts.netns;
    this.publicKey = publicKeyOf(opts.privateKey);
    this.addressV4 = opts.addressV4;
    this.addressV6 = opts.addressV6;
    this.listenPort = opts.listenPort;
    this.child = child;
    this.output = output;
    this.uapi = uapi;
    this.exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    }).then(() => {
      this.hasExited = true;
    });
  }

  /** pid of the wireguard-go process. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True while wireguard-go runs. */
  get running(): boolean {
    return !this.hasExited && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts wireguard-go, configures key and port over UAPI, assigns addresses and brings the link up. */
  static async create(opts: WireguardInterfaceOptions): Promise<WireguardInterface> {
    const { binary, ip } = checkPrerequisites(opts.binary);
    if (!IFNAME.test(opts.name)) {
      throw new WireguardSetupError("bad-name", `interface name must be 1-15 characters of [A-Za-z0-9_=+.-], got ${JSON.stringify(opts.name)}`);
    }
    publicKeyOf(opts.privateKey); // validates the key before anything starts
    checkCidr(opts.addressV4, "addressV4");
    if (opts.addressV6 !== undefined) checkCidr(opts.addressV6, "addressV6");
    if (!Number.isInteger(opts.listenPort) || opts.listenPort < 0 || opts.listenPort > 65535) {
      throw new RangeError(`listenPort must be an integer from 0 to 65535, got ${opts.listenPort}`);
    }
    if (opts.netns !== undefined) {
      if (!NETNS_NAME.test(opts.netns) || !existsSync(`/var/run/netns/${opts.netns}`)) {
        throw new WireguardSetupError("no-netns", `network namespace ${JSON.stringify(opts.netns)} does not exist (create it with: ip netns add ${opts.netns})`);
      }
    }
    const socketPath = uapiSocketPath(opts.name, opts.socketDir ?? UAPI_SOCKET_DIR);
    if (existsSync(socketPath)) {
      if (await socketAnswers(socketPath)) {
        throw new WireguardSetupError("name-in-use", `a WireGuard interface named ${opts.name} already runs (its UAPI socket ${socketPath} answers); pick another name`);
      }
      try {
        unlinkSync(socketPath); // stale socket of a dead wireguard-go
      } catch {
        // wireguard-go will report it
      }
    }

    const cmd = opts.netns ? ip : binary;
    const args = opts.netns ? ["netns", "exec", opts.netns, binary, "-f", opts.name] : ["-f", opts.name];
    const child = spawn(cmd, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: process.env.LOG_LEVEL ?? "error" },
    });
    const output: string[] = [];
    const collect = (chunk: Buffer) => {
      output.push(chunk.toString("utf8"));
      if (output.length > 200) output.splice(0, output.length - 200);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    let spawnError: Error | null = null;
    child.once("error", (err) => {
      spawnError = err;
    });

    const uapi = new UapiClient(opts.name, { socketPath });
    const iface = new WireguardInterface(opts, child, output, uapi);
    try {
      const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
      await pollUntil(
        async () => {
          if (spawnError) throw new WireguardSetupError("start-failed", `could not start ${cmd}: ${(spawnError as Error).message}`, { cause: spawnError });
          if (!iface.running) {
            throw new WireguardSetupError("start-failed", `wireguard-go for ${opts.name} exited before opening its UAPI socket: ${iface.recentOutput() || "(no output)"}`);
          }
          return existsSync(socketPath) && (await socketAnswers(socketPath)) ? true : undefined;
        },
        { what: `wireguard-go to open ${socketPath}`, timeoutMs: startTimeoutMs, intervalMs: 20, onError: "throw" },
      ).catch((err: unknown) => {
        if (!(err instanceof PollTimeoutError)) throw err;
        throw new WireguardSetupError("start-failed", `wireguard-go for ${opts.name} did not open ${socketPath} within ${startTimeoutMs} ms: ${iface.recentOutput() || "(no output)"}`);
      });
      try {
        await uapi.setDevice({ privateKey: opts.privateKey, listenPort: opts.listenPort });
      } catch (err) {
        if (isPortInUse(err)) {
          throw new WireguardSetupError("port-in-use", `UDP port ${opts.listenPort} is already in use${opts.netns ? ` in network namespace ${opts.netns}` : ""}; WireGuard interface ${opts.name} cannot listen on it`, { cause: err });
        }
        throw new WireguardSetupError("config-failed", `configuring ${opts.name} over UAPI failed: ${(err as Error).message}`, { cause: err });
      }
      if (opts.listenPort === 0) iface.listenPort = (await uapi.get()).listenPort ?? 0;
      await run(ip, ipArgs(opts.netns, ["address", "add", opts.addressV4, "dev", opts.name]));
      if (opts.addressV6) await run(ip, ipArgs(opts.netns, ["-6", "address", "add", opts.addressV6, "dev", opts.name, "nodad"]));
      await run(ip, ipArgs(opts.netns, ["link", "set", "dev", opts.name, "up"]));
      // wireguard-go (re)binds its UDP socket when the device comes up; setting the
      // port again once up makes a bind failure surface here rather than only in its log.
      try {
        await uapi.setDevice({ listenPort: iface.listenPort });
      } catch (err) {
        if (isPortInUse(err)) {
          throw new WireguardSetupError("port-in-use", `UDP port ${iface.listenPort} is already in use${opts.netns ? ` in network namespace ${opts.netns}` : ""}; WireGuard interface ${opts.name} cannot listen on it`, { cause: err });
        }
        throw err;
      }
      return iface;
    } catch (err) {
      await iface.close().catch(() => undefined);
      if (err instanceof WireguardSetupError || err instanceof RangeError || err instanceof TypeError) throw err;
      if (err instanceof UapiError) throw new WireguardSetupError("config-failed", err.message, { cause: err });
      throw new WireguardSetupError("config-failed", `setting up ${opts.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The device's state over UAPI. */
  state(): Promise<DeviceState> {
    return this.uapi.get();
  }

  setPeer(peer: PeerConfig): Promise<void> {
    return this.uapi.setPeer(peer);
  }

  removePeer(publicKey: string): Promise<void> {
    return this.uapi.removePeer(publicKey);
  }

  /** The last lines wireguard-go printed. */
  recentOutput(): string {
    return this.output.join("").trim().split("\n").slice(-20).join("\n");
  }

  /** Stops wireguard-go and removes the interface; safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.running) {
      this.child.kill("SIGTERM");
      const stopped = await Promise.race([this.exited.then(() => true), sleep(3000).then(() => false)]);
      if (!stopped) {
        this.child.kill("SIGKILL");
        await Promise.race([this.exited, sleep(3000)]);
      }
    }
    // wireguard-go removes its TUN device on exit; make sure after a SIGKILL.
    const ip = findExecutable("ip");
    if (ip) {
      const exists = await run(ip, ipArgs(this.netns, ["link", "show", "dev", this.name])).then(
        () => true,
        () => false,
      );
      if (exists) await run(ip, ipArgs(this.netns, ["link", "delete", "dev", this.name])).catch(() => undefined);
    }
    try {
      if (existsSync(this.uapi.socketPath) && !(await socketAnswers(this.uapi.socketPath))) unlinkSync(this.uapi.socketPath);
    } catch {
      // already gone
    }
  }
}
