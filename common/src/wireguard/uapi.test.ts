import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair, keyToHex } from "./keys.ts";
import {
  UapiClient,
  UapiError,
  UapiProtocolError,
  checkCidr,
  checkEndpoint,
  formatSetLines,
  formatSetRequest,
  isPortInUse,
  parseGetResponse,
  parseSetResponse,
} from "./uapi.ts";
import type { SetRequest } from "./uapi.ts";

const dev = generateKeyPair();
const p1 = generateKeyPair();
const p2 = generateKeyPair();
const psk = generateKeyPair().privateKey;
const hex = keyToHex;

describe("parseGetResponse", () => {
  it("parses a device without key or peers", () => {
    expect(parseGetResponse("listen_port=35962\nerrno=0\n\n")).toEqual({
      hasPrivateKey: false,
      publicKey: null,
      listenPort: 35962,
      fwmark: null,
      peers: [],
    });
  });

  it("parses a device with two peers (as wireguard-go prints it)", () => {
    const text = [
      `private_key=${hex(dev.privateKey)}`,
      "listen_port=41820",
      "fwmark=0",
      `public_key=${hex(p1.publicKey)}`,
      `preshared_key=${"0".repeat(64)}`,
      "protocol_version=1",
      "endpoint=10.200.0.2:41820",
      "last_handshake_time_sec=1700000000",
      "last_handshake_time_nsec=250000000",
      "tx_bytes=1234",
      "rx_bytes=5678",
      "persistent_keepalive_interval=25",
      "allowed_ip=10.42.0.2/32",
      "allowed_ip=fd42::2/128",
      `public_key=${hex(p2.publicKey)}`,
      `preshared_key=${hex(psk)}`,
      "protocol_version=1",
      "last_handshake_time_sec=0",
      "last_handshake_time_nsec=0",
      "tx_bytes=0",
      "rx_bytes=0",
      "persistent_keepalive_interval=0",
      "some_future_key=whatever",
      "errno=0",
      "",
      "",
    ].join("\n");
    const state = parseGetResponse(text);
    expect(state.hasPrivateKey).toBe(true);
    expect(state.publicKey).toBe(dev.publicKey);
    expect(state.listenPort).toBe(41820);
    expect(state.fwmark).toBe(0);
    expect(state.peers).toEqual([
      {
        publicKey: p1.publicKey,
        endpoint: "10.200.0.2:41820",
        allowedIps: ["10.42.0.2/32", "fd42::2/128"],
        lastHandshakeTimeSec: 1700000000,
        lastHandshakeTimeNsec: 250000000,
        lastHandshake: new Date(1700000000250),
        rxBytes: 5678,
        txBytes: 1234,
        persistentKeepaliveInterval: 25,
        hasPresharedKey: false,
        protocolVersion: 1,
      },
      {
        publicKey: p2.publicKey,
        endpoint: null,
        allowedIps: [],
        lastHandshakeTimeSec: 0,
        lastHandshakeTimeNsec: 0,
        lastHandshake: null,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepaliveInterval: 0,
        hasPresharedKey: true,
        protocolVersion: 1,
      },
    ]);
  });

  it.each([
    ["no trailing empty line", "listen_port=1\nerrno=0\n", UapiProtocolError, /does not end with an empty line/],
    ["no errno", "listen_port=1\n\n", UapiProtocolError, /does not end with errno=N/],
    ["empty", "\n\n", UapiProtocolError, /does not end with errno=N/],
    ["not key=value", "listen_port\nerrno=0\n\n", UapiProtocolError, /line 1 is not key=value/],
    ["bad integer", "listen_port=abc\nerrno=0\n\n", UapiProtocolError, /listen_port is not an integer/],
    ["port out of range", "listen_port=70000\nerrno=0\n\n", UapiProtocolError, /out of range/],
    ["bad peer key", "public_key=xyz\nerrno=0\n\n", TypeError, /public_key must be 64 hex digits/],
    ["errno from wireguard-go", "errno=-22\n\n", UapiError, /errno=-22 EINVAL/],
    ["positive errno", "errno=5\n\n", UapiError, /errno=5 EIO/],
  ])("rejects %s", (_name, text, type, message) => {
    expect(() => parseGetResponse(text)).toThrow(type);
    expect(() => parseGetResponse(text)).toThrow(message);
  });
});

describe("parseSetResponse", () => {
  it.each([
    ["ok", "errno=0\n\n", null],
    ["einval", "errno=-22\n\n", /set failed with errno=-22 EINVAL/],
    ["port in use", "errno=-98\n\n", /EADDRINUSE/],
    ["garbage", "hello\n\n", /not key=value/],
    ["extra lines", "listen_port=1\nerrno=0\n\n", /unexpected lines/],
  ])("%s", (_name, text, error) => {
    if (error === null) expect(() => parseSetResponse(text)).not.toThrow();
    else expect(() => parseSetResponse(text)).toThrow(error);
  });

  it("recognises port-in-use errors", () => {
    const err = (() => {
      try {
        parseSetResponse("errno=-98\n\n");
      } catch (e) {
        return e;
      }
    })();
    expect(isPortInUse(err)).toBe(true);
    expect(isPortInUse(new UapiError("set", -22))).toBe(false);
    expect(isPortInUse(new Error("x"))).toBe(false);
  });
});

describe("formatSetLines", () => {
  const cases: Array<[string, SetRequest, string[]]> = [
    ["device key and port", { device: { privateKey: dev.privateKey, listenPort: 41820 } }, [`private_key=${hex(dev.privateKey)}`, "listen_port=41820"]],
    ["remove device key, fwmark, replace peers", { device: { privateKey: null, fwmark: 7, replacePeers: true } }, [`private_key=${"0".repeat(64)}`, "fwmark=7", "replace_peers=true"]],
    [
      "full peer",
      { peers: [{ publicKey: p1.publicKey, endpoint: "10.200.0.2:41820", allowedIps: ["10.42.0.2/32", "fd42::2/128"], persistentKeepalive: 25 }] },
      [`public_key=${hex(p1.publicKey)}`, "endpoint=10.200.0.2:41820", "persistent_keepalive_interval=25", "replace_allowed_ips=true", "allowed_ip=10.42.0.2/32", "allowed_ip=fd42::2/128"],
    ],
    [
      "peer adding allowed IPs without replacing",
      { peers: [{ publicKey: p1.publicKey, allowedIps: ["10.42.0.3/32"], replaceAllowedIps: false }] },
      [`public_key=${hex(p1.publicKey)}`, "allowed_ip=10.42.0.3/32"],
    ],
    ["peer clearing allowed IPs", { peers: [{ publicKey: p1.publicKey, replaceAllowedIps: true }] }, [`public_key=${hex(p1.publicKey)}`, "replace_allowed_ips=true"]],
    [
      "ipv6 endpoint, psk, update only",
      { peers: [{ publicKey: p2.publicKey, endpoint: "[fd00::2]:51820", presharedKey: psk, updateOnly: true }] },
      [`public_key=${hex(p2.publicKey)}`, "update_only=true", `preshared_key=${hex(psk)}`, "endpoint=[fd00::2]:51820"],
    ],
    ["remove peers", { removePeers: [p1.publicKey, p2.publicKey] }, [`public_key=${hex(p1.publicKey)}`, "remove=true", `public_key=${hex(p2.publicKey)}`, "remove=true"]],
    ["nothing", {}, []],
  ];
  it.each(cases)("%s", (_name, req, lines) => {
    expect(formatSetLines(req)).toEqual(lines);
  });

  it("frames a request with set=1 and an empty line", () => {
    expect(formatSetRequest({ device: { listenPort: 1 } })).toBe("set=1\nlisten_port=1\n\n");
    expect(formatSetRequest({})).toBe("set=1\n\n");
  });

  it.each([
    ["bad port", { device: { listenPort: 70000 } }, /listenPort must be an integer from 0 to 65535/],
    ["fractional port", { device: { listenPort: 1.5 } }, /listenPort/],
    ["bad key", { device: { privateKey: "nope" } }, /private key must be 32 bytes/],
    ["hostname endpoint", { peers: [{ publicKey: p1.publicKey, endpoint: "example.com:1" }] }, /numeric address/],
    ["endpoint without port", { peers: [{ publicKey: p1.publicKey, endpoint: "10.0.0.1" }] }, /endpoint must be/],
    ["newline injection", { peers: [{ publicKey: p1.publicKey, endpoint: "10.0.0.1:1\nremove=true" }] }, /endpoint must be/],
    ["bad cidr", { peers: [{ publicKey: p1.publicKey, allowedIps: ["10.42.0.2"] }] }, /allowed IP must be a CIDR/],
    ["cidr too wide", { peers: [{ publicKey: p1.publicKey, allowedIps: ["10.42.0.2/33"] }] }, /allowed IP must be a CIDR/],
    ["bad keepalive", { peers: [{ publicKey: p1.publicKey, persistentKeepalive: -1 }] }, /persistentKeepalive/],
  ] as Array<[string, SetRequest, RegExp]>)("rejects %s", (_name, req, error) => {
    expect(() => formatSetLines(req)).toThrow(error);
  });

  it.each([["1.2.3.4:5"], ["[::1]:65535"], ["[fd42::1]:41820"]])("accepts endpoint %s", (e) => expect(checkEndpoint(e)).toBe(e));
  it.each([["[1.2.3.4]:5"], ["::1:5"], ["1.2.3.4:0"], ["1.2.3.4:65536"]])("rejects endpoint %s", (e) => expect(() => checkEndpoint(e)).toThrow());
  it.each([["0.0.0.0/0"], ["::/0"], ["fd42::/64"]])("accepts cidr %s", (c) => expect(checkCidr(c)).toBe(c));
});

describe("UapiClient against a fake UAPI socket", () => {
  let dir: string;
  let server: Server;
  const requests: string[] = [];
  let answer: (req: string, sock: Socket) => void = () => undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "uapi-"));
    server = createServer((sock) => {
      let buf = "";
      sock.setEncoding("utf8");
      sock.on("data", (chunk: string) => {
        buf += chunk;
        if (buf.endsWith("\n\n")) {
          requests.push(buf);
          answer(buf, sock);
        }
      });
    });
    await new Promise<void>((r) => server.listen(join(dir, "wgfake0.sock"), r));
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const client = () => new UapiClient("wgfake0", { socketDir: dir, timeoutMs: 1000 });

  it("sends get=1 and parses an answer split over several writes", async () => {
    answer = (_req, sock) => {
      sock.write(`listen_port=41820\npublic_key=${hex(p1.publicKey)}\nrx_bytes=1`);
      setTimeout(() => sock.write("0\nerrno=0\n"), 10);
      setTimeout(() => sock.write("\n"), 20);
    };
    const state = await client().get();
    expect(requests.at(-1)).toBe("get=1\n\n");
    expect(state.listenPort).toBe(41820);
    expect(state.peers[0]?.rxBytes).toBe(10);
  });

  it("sends setPeer and removePeer requests", async () => {
    answer = (_req, sock) => sock.end("errno=0\n\n");
    await client().setPeer({ publicKey: p1.publicKey, endpoint: "10.0.0.1:1", allowedIps: ["10.42.0.9/32"] });
    expect(requests.at(-1)).toBe(`set=1\npublic_key=${hex(p1.publicKey)}\nendpoint=10.0.0.1:1\nreplace_allowed_ips=true\nallowed_ip=10.42.0.9/32\n\n`);
    await client().removePeer(p1.publicKey);
    expect(requests.at(-1)).toBe(`set=1\npublic_key=${hex(p1.publicKey)}\nremove=true\n\n`);
    await client().setDevice({ privateKey: dev.privateKey, listenPort: 1 });
    expect(requests.at(-1)).toBe(`set=1\nprivate_key=${hex(dev.privateKey)}\nlisten_port=1\n\n`);
  });

  it("turns errno into UapiError", async () => {
    answer = (_req, sock) => sock.end("errno=-22\n\n");
    await expect(client().setDevice({ listenPort: 1 })).rejects.toThrow(UapiError);
    await expect(client().get()).rejects.toThrow(/get failed with errno=-22/);
  });

  it("reports a connection closed without an answer", async () => {
    answer = (_req, sock) => sock.end();
    await expect(client().get()).rejects.toThrow(/closed the connection without an answer/);
  });

  it("times out when the device does not answer", async () => {
    answer = () => undefined;
    await expect(client().get()).rejects.toThrow(/no answer within 1000 ms/);
  });

  it("says so when the socket does not exist", async () => {
    await expect(new UapiClient("wgnothere0", { socketDir: dir }).get()).rejects.toThrow(/has no UAPI socket .*is wireguard-go running/);
  });
});
