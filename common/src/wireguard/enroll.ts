// Enrollment in a colony's WireGuard mesh, before any tunnel exists: the agent
// calls the colony's bootstrap endpoint over HTTPS, pinning the colony's CA by
// the fingerprint in its join token, proves it holds the colony secret (an
// HMAC, never the secret) and sends its WireGuard public key; the colony
// answers with the agent's mesh addresses and its own peer details.
import { X509Certificate, createHash } from "node:crypto";
import https from "node:https";
import type { TLSSocket } from "node:tls";
import { invitationKey, invitationProof, meshEnrollDigest, randomHex, signRegistration, type IdentityKey } from "@coral/proto";

export const ENROLL_PATH = "/v1/mesh/enroll";

export interface EnrollRequestJson {
  agent_id: string;
  wireguard_pubkey: string;
  /** The agent's Ed25519 key (base64). */
  agent_pubkey: string;
  /** Over meshEnrollDigest(agent_id, wireguard_pubkey), as in a Register request. */
  signature: { timestamp_ms: string; nonce: string; signature: string };
  /** The first time: the invitation from the join token. */
  invitation?: { invitation_id: string; hmac: string };
}

export interface EnrollResponseJson {
  colony_id: string;
  mesh_ipv4: string;
  mesh_ipv6: string;
  colony_pubkey: string;
  /** The colony's Ed25519 identity key; must match the join token's. */
  colony_identity_pubkey: string;
  colony_mesh_ipv4: string;
  colony_mesh_ipv6: string;
  connect_port: number;
}

/** The colony refused or the endpoint could not be trusted; `code` says which. */
export class EnrollmentError extends Error {
  override name = "EnrollmentError";
  constructor(
    readonly code: "untrusted-certificate" | "refused" | "revoked" | "unreachable" | "bad-answer",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** "sha256:<hex>" of a certificate's DER encoding. */
export function certificateFingerprint(der: Uint8Array): string {
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

/**
 * Checks a TLS peer's chain against a pinned CA fingerprint: some certificate
 * in the chain must have that fingerprint and must have signed the leaf.
 * Returns null when it holds, else why not.
 */
export function pinnedChainProblem(chainDer: Buffer[], pinned: string): string | null {
  if (chainDer.length === 0) return "the bootstrap endpoint sent no certificate";
  const leaf = new X509Certificate(chainDer[0]!);
  for (const der of chainDer) {
    if (certificateFingerprint(der) !== pinned) continue;
    const ca = new X509Certificate(der);
    if (leaf.checkIssued(ca) && leaf.verify(ca.publicKey)) return null;
  }
  const seen = chainDer.map((d) => certificateFingerprint(d)).join(", ");
  return `the bootstrap endpoint's certificate is not from the colony CA pinned in the join token (expected ${pinned}, got ${seen}); refusing to enroll (possible interception)`;
}

function peerChain(socket: TLSSocket): Buffer[] {
  const chain: Buffer[] = [];
  let cert = socket.getPeerCertificate(true);
  while (cert && cert.raw && !chain.some((c) => c.equals(cert.raw))) {
    chain.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return chain;
}

/**
 * POSTs an enrollment to https://<endpoint><ENROLL_PATH>. The TLS check is
 * ours (the pinned CA), not the system's: the colony's CA is in no trust store.
 */
export async function enrollWithColony(options: {
  /** host:port of the colony's public endpoint. */
  endpoint: string;
  caFingerprint: string;
  agentId: string;
  /** WireGuard public key. */
  publicKey: string;
  agentKey: IdentityKey;
  invitation?: { invitationId: string; invitationSecret: string } | undefined;
  /** The colony identity key from the join token: the answer must name it. */
  colonyIdentityPubkey: string;
  timeoutMs?: number;
}): Promise<EnrollResponseJson> {
  const timestampMs = BigInt(Date.now());
  const nonce = randomHex(16);
  const digest = await meshEnrollDigest(options.agentId, options.publicKey);
  const body: EnrollRequestJson = {
    agent_id: options.agentId,
    wireguard_pubkey: options.publicKey,
    agent_pubkey: options.agentKey.publicKey,
    signature: { timestamp_ms: timestampMs.toString(), nonce, signature: await signRegistration(options.agentKey, options.agentId, digest, timestampMs, nonce) },
  };
  if (options.invitation) {
    const key = await invitationKey(options.invitation.invitationSecret);
    body.invitation = {
      invitation_id: options.invitation.invitationId,
      hmac: await invitationProof(key, { agentId: options.agentId, agentPubkey: options.agentKey.publicKey, timestampMs, nonce }),
    };
  }
  const url = new URL(`https://${options.endpoint}${ENROLL_PATH}`);
  const payload = JSON.stringify(body);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request(
      url,
      { method: "POST", agent: false, rejectUnauthorized: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }, timeout: options.timeoutMs ?? 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    // Check the certificate before anything (the proof) is sent.
    req.on("socket", (socket) => {
      (socket as TLSSocket).once("secureConnect", () => {
        const problem = pinnedChainProblem(peerChain(socket as TLSSocket), options.caFingerprint);
        if (problem) req.destroy(new EnrollmentError("untrusted-certificate", problem));
        else req.end(payload);
      });
    });
    req.on("timeout", () => req.destroy(new EnrollmentError("unreachable", `the colony's bootstrap endpoint ${options.endpoint} did not answer within ${options.timeoutMs ?? 15_000} ms`)));
    req.on("error", (err) => {
      if (err instanceof EnrollmentError) reject(err);
      else reject(new EnrollmentError("unreachable", `the colony's bootstrap endpoint ${options.endpoint} is not reachable: ${err.message}`, { cause: err }));
    });
  });
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new EnrollmentError("bad-answer", `the bootstrap endpoint answered HTTP ${status} with something that is not JSON`);
  }
  if (status !== 200) {
    const message = typeof json.message === "string" ? json.message : `HTTP ${status}`;
    throw new EnrollmentError(status === 403 ? "revoked" : "refused", `the colony refused the enrollment: ${message}`);
  }
  const answer = json as unknown as EnrollResponseJson;
  for (const key of ["colony_id", "mesh_ipv4", "mesh_ipv6", "colony_pubkey", "colony_mesh_ipv4", "colony_mesh_ipv6"] as const)
    if (typeof answer[key] !== "string" || !answer[key]) throw new EnrollmentError("bad-answer", `the bootstrap answer lacks ${key}`);
  if (typeof answer.connect_port !== "number") throw new EnrollmentError("bad-answer", "the bootstrap answer lacks connect_port");
  if (answer.colony_identity_pubkey !== options.colonyIdentityPubkey)
    throw new EnrollmentError("untrusted-certificate", "the bootstrap endpoint answered for another colony identity key than the join token's; refusing it");
  return answer;
}
