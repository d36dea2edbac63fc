// The bootstrap endpoint: the one TCP service on the colony's public address
// in wireguard mode (same port number as WireGuard's UDP). HTTPS with a
// certificate from the colony's own CA; one route, POST /v1/mesh/enroll.
import { once } from "node:events";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { ENROLL_PATH } from "@coral/common/wireguard";
import type { BootstrapCertificates } from "./bootstrap-ca.ts"; // type only: the x509 library stays unloaded
import { MeshRequestError, type ColonyMesh } from "./colony-mesh.ts";

const MAX_BODY = 16 * 1024;
const CODES: Record<number, string> = { 400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found", 405: "unimplemented", 413: "resource_exhausted", 500: "internal" };

export class BootstrapPortInUseError extends Error {
  override name = "BootstrapPortInUseError";
}

export interface BootstrapServer {
  port: number;
  close(): Promise<void>;
}

export async function startBootstrapServer(options: {
  host: string;
  port: number;
  certificates: BootstrapCertificates;
  mesh: ColonyMesh;
  connectPort: () => number;
  log: { warn(obj: object, msg?: string): void };
}): Promise<BootstrapServer> {
  const server = https.createServer({ cert: options.certificates.serverChainPem, key: options.certificates.serverKeyPem }, (req, res) => {
    const reply = (status: number, body: object) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, message: string) => reply(status, { code: CODES[status] ?? "unknown", message });
    if (req.url !== ENROLL_PATH) return fail(404, `no such path; the bootstrap endpoint serves POST ${ENROLL_PATH}`);
    if (req.method !== "POST") return fail(405, `use POST ${ENROLL_PATH}`);
    // Refused before a byte of the body is read; a chunked body is counted as it comes.
    if (Number(req.headers["content-length"] ?? 0) > MAX_BODY) {
      res.setHeader("connection", "close");
      return fail(413, `request body over ${MAX_BODY} bytes`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        fail(413, `request body over ${MAX_BODY} bytes`);
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => {
      if (size > MAX_BODY) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return fail(400, "body must be JSON");
      }
      options.mesh.enroll(body, options.connectPort()).then(
        (answer) => reply(200, answer),
        (err: unknown) => {
          if (err instanceof MeshRequestError) return fail(err.status, err.message);
          options.log.warn({ err: String(err) }, "enrollment failed");
          fail(500, "enrollment failed inside the colony; see its log");
        },
      );
    });
  });
  server.on("tlsClientError", () => undefined); // scanners and refused pins are not the colony's problem
  server.listen({ host: options.host, port: options.port, exclusive: true });
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([err]) => {
      const e = err as NodeJS.ErrnoException;
      if (e.code === "EADDRINUSE") throw new BootstrapPortInUseError(`TCP port ${options.port} on ${options.host} is already in use; the bootstrap endpoint cannot listen there (set colony.mesh.port to another port)`);
      throw e;
    }),
  ]);
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
